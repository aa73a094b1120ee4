"""agent-orchestrator (/agents): membership from heartbeats, sync rounds, network status.

GET  /status        every agent of the network: alive | gone | unseen, last heartbeat age,
                    digest, size; converged = one digest among the alive agents
GET  /{id}          one agent
POST /sync-round    {"timeout"?}: one anti-entropy round through this component (below),
                    then a roll call (broadcast.heartbeat) so every status is fresh

Membership: every agent publishes agent.{id}.heartbeat each heartbeat interval (setting
`heartbeat_interval`, default the agents' own default). An agent silent for `gone_after`
intervals (default 2.5) is gone; its next heartbeat brings it back. 2.5, not 3: a killed
agent's last heartbeat came before it died, and it must be marked gone within three
intervals of dying; a live agent's heartbeats are at most 1.2 intervals apart (jitter).

A sync round over NATS (a cluster's orchestrator knows no agent URLs): the orchestrator
keeps a replica of the network's e-graph. It asks every agent for what the replica lacks
(agent.{id}.sync, the agents' own anti-entropy request, sent as an outside observer with a
negative id), then pushes each agent what that agent's clock says it lacks (agent.{id}.state).
One round leaves every agent that answered with the union of all of them. With setting
`sync_interval` > 0 it also runs rounds on its own.

The summary goes out on network.status every interval and on every membership change,
as an envelope like the agents' summaries, told apart by `"source": "orchestrator"`.

Shared with the other service components (they import it from here): `NetworkReplica`
(an e-graph that learns what the network knows, as an observer on NATS), `every` (a
periodic task) and `number` (a bounded number from a request).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter as Tally
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from prometheus_client import Counter, Gauge
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.transport import Transport, Unreachable
from agentnet_runtime.components import Service
from agentnet_runtime.config import ConfigError
from agentnet_runtime.core.clock import VectorClock
from agentnet_runtime.core.clock import validate as validate_clock
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.web import METRICS, RequestError, json_body

from .egraph_service import only_fields
from .streams import DERIVED

log = logging.getLogger("agentnet.orchestrator")

# Outside observers talk to agents with negative ids: never an agent's, so agents treat them
# as non-neighbours (no clock bookkeeping) yet answer them like anyone else. The stream
# components are -1, -2, -3 (streams.SENDER).
ORCHESTRATOR_ID = -4

# Metrics of this module (to move into web.METRICS).
AGENTS = Gauge("agentnet_orchestrator_agents", "Agents by membership state, as the orchestrator sees them", ["state"])
CONVERGED = Gauge("agentnet_orchestrator_converged", "1 when every alive agent reports one digest, else 0")
MEMBERSHIP_CHANGES = Counter("agentnet_orchestrator_membership_changes", "Agents marked gone or back", ["to"])
SYNC_ROUNDS = Counter("agentnet_orchestrator_sync_rounds", "Sync rounds run through the orchestrator")
REPLICA_NODES = Gauge("agentnet_observer_replica_nodes", "E-nodes in a component's replica of the network", ["component"])


# --- shared helpers ------------------------------------------------------------------------------


async def every(interval: float, action: Callable[[], Awaitable[Any]], source: str) -> None:
    """Run `action` every `interval` seconds until cancelled; a failure is counted and logged, not fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            await action()
        except Exception:
            METRICS.errors.labels(source, "timer").inc()
            log.exception("%s: periodic %s failed", source, getattr(action, "__name__", action))


def number(value: Any, field: str, low: float, high: float, *, integer: bool = False) -> float | int:
    """`value` (a JSON number or a query string) as a number in [low, high], or a 422 naming `field`."""
    kind = "an integer" if integer else "a number"
    rule = f"{kind} {low:g}..{high:g}"
    try:
        if isinstance(value, bool):
            raise ValueError
        parsed = float(value)
        if integer and parsed != int(parsed):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"{field} must be {kind} (got {value!r})", field=field, rule=rule) from None
    if not (math.isfinite(parsed) and low <= parsed <= high):
        raise RequestError(f"{field} must be {kind} {low:g}..{high:g} (got {value!r})", field=field, rule=rule)
    return int(parsed) if integer else parsed


def positive_setting(service: Service, key: str, default: float, *, allow_zero: bool = False) -> float:
    """A float setting that must be > 0 (or >= 0 with `allow_zero`)."""
    rule = "must be a number >= 0" if allow_zero else "must be a number > 0"
    value = service.setting(key, default, float, rule)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"components[{service.name}].settings.{key} {rule} (got {value!r})")
    return value


class NetworkReplica:
    """An e-graph that learns what the network knows, as an outside observer on NATS.

    - `listen(streams=True)`: joins the deltas stream components publish on stream.derived.{colour};
    - `pull(agent)`: the agents' anti-entropy request with this replica's digest and clock;
      the reply carries what the replica lacks (or, if too large for a reply, comes as a
      state message to agent.{observer}.state, which `listen` also joins);
    - `push(agent, clock)`: sends an agent what its clock says it lacks.
    Join is idempotent, so duplicates and overlaps cost nothing but the decoding.
    """

    def __init__(self, transport: Transport, observer: int, component: str):
        self.transport, self.observer, self.component = transport, observer, component
        self.egraph = EGraph(f"observer.{component}")  # joins only: it never makes events of its own
        self.joined: Tally[str] = Tally()  # deltas joined, by source ("stream.blue", "agent.3", ...)
        self.rejected = 0

    async def listen(self, streams: bool) -> None:
        await self.transport.subscribe(subjects.for_agent(subjects.STATE, self.observer), self._on_state)
        if streams:
            await self.transport.subscribe(DERIVED.format(colour="*"), self._on_derived)

    def join(self, wire: Any, source: str) -> int:
        """Join a delta in wire form; returns the e-nodes that were new (0 for a malformed one, counted)."""
        try:
            delta = Delta.from_wire(wire)
        except ValueError as error:
            self.rejected += 1
            METRICS.errors.labels(self.component, "bad-delta").inc()
            log.warning("%s: ignoring a malformed delta from %s: %s", self.component, source, error)
            return 0
        before = len(self.egraph)
        self.egraph.join(delta)
        self.joined[source] += 1
        REPLICA_NODES.labels(self.component).set(len(self.egraph))
        return len(self.egraph) - before

    async def _on_state(self, subject: str, envelope: dict, message: Any) -> None:
        self.join(envelope["body"], f"agent.{envelope['from']}")

    async def _on_derived(self, subject: str, envelope: dict, message: Any) -> None:
        self.join(envelope["body"], "stream." + subject.rsplit(".", 1)[1])

    def status(self) -> dict[str, Any]:
        return {"nodes": len(self.egraph), "digest": self.egraph.digest(), "joined": dict(self.joined), "rejected": self.rejected}

    async def pull(self, agent: int, timeout: float) -> tuple[str, int, VectorClock | None]:
        """Anti-entropy with one agent: ("equal" | "pulled" | "pushed" | "unreachable" | "error", new e-nodes, its clock)."""
        request = {"digest": self.egraph.digest(), "clock": self.egraph.clock}
        try:
            reply = await self.transport.request(subjects.for_agent(subjects.SYNC, agent), self.observer, agent, request, None, timeout)
            answer = reply["body"]
            clock = validate_clock(answer["clock"])
            new = self.join(answer["delta"], f"agent.{agent}") if "delta" in answer else 0
        except Unreachable:
            return "unreachable", 0, None
        except (KeyError, TypeError, ValueError) as error:
            METRICS.errors.labels(self.component, "bad-sync-reply").inc()
            log.warning("%s: bad sync reply from agent %s: %s", self.component, agent, error)
            return "error", 0, None
        result = "pulled" if "delta" in answer else "pushed" if answer.get("pushed") else "equal"
        return result, new, clock

    async def push(self, agent: int, clock: VectorClock) -> int:
        """Send an agent every event its clock has not seen; returns the e-nodes sent."""
        delta = self.egraph.delta_since(clock)
        if not delta:
            return 0
        sent = await self.transport.send(subjects.for_agent(subjects.STATE, agent), self.observer, agent, delta.to_wire())
        return delta.node_count if sent else 0


# --- the orchestrator ----------------------------------------------------------------------------------


@dataclass
class Member:
    """What the orchestrator knows of one agent."""

    id: int
    colour: str
    state: str = "unseen"  # unseen -> alive <-> gone
    last_seen: float | None = None  # time.monotonic() of its last heartbeat
    digest: str | None = None
    nodes: int = 0
    events: int = 0
    returns: int = 0  # times it came back after being gone

    def view(self, now: float) -> dict[str, Any]:
        age = None if self.last_seen is None else round(now - self.last_seen, 3)
        return {"agent": self.id, "colour": self.colour, "state": self.state, "last_heartbeat_age": age,
                "digest": self.digest, "size": self.nodes, "events": self.events, "returns": self.returns}  # fmt: skip


class AgentOrchestrator(Service):
    name = "agent-orchestrator"
    uses_nats = True

    def __init__(self, config):
        super().__init__(config)
        self.interval = positive_setting(self, "heartbeat_interval", config.agent.heartbeat_interval)
        self.gone_after = positive_setting(self, "gone_after", 2.5) * self.interval  # seconds
        self.sync_timeout = positive_setting(self, "sync_timeout", config.agent.sync_timeout)
        self.sync_interval = positive_setting(self, "sync_interval", 0.0, allow_zero=True)
        self.members = {node.id: Member(node.id, node.colour) for node in config.network.nodes}
        self.transport: Transport | None = None
        self.replica: NetworkReplica | None = None
        self._round = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []

    def routes(self) -> list[Route]:
        return [
            Route("/status", self.status_route),
            Route("/sync-round", self.sync_round_route, methods=["POST"]),
            Route("/{id}", self.agent_route),
        ]

    def health(self) -> dict[str, Any]:
        counts = Tally(member.state for member in self.members.values())
        return {"nats": "connected" if self.nc is not None and self.nc.is_connected else "connecting", "alive": counts["alive"]}

    async def on_start(self) -> None:
        self.transport = Transport(self.config.nats_url, self.config.nats_auth)
        self.transport.nc = self.nc  # the Service's connection; Transport adds envelopes and fragments
        self.replica = NetworkReplica(self.transport, ORCHESTRATOR_ID, self.name)
        await self.replica.listen(streams=False)
        await self.transport.subscribe(subjects.HEARTBEAT.format(id="*"), self._on_heartbeat)
        self._tasks = [
            asyncio.create_task(every(min(self.interval / 10, 0.25), self.sweep, self.name), name="membership"),
            asyncio.create_task(every(self.interval, self.publish_status, self.name), name="network-status"),
        ]
        if self.sync_interval > 0:
            self._tasks.append(asyncio.create_task(every(self.sync_interval, self.sync_round, self.name), name="sync-rounds"))
        await self.transport.send(subjects.BROADCAST_HEARTBEAT, ORCHESTRATOR_ID, None, {"roll_call": True})  # learn who is there now

    async def on_stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- membership -----------------------------------------------------------------------------

    async def _on_heartbeat(self, subject: str, envelope: dict, message: Any) -> None:
        beat = envelope["body"]
        member = self.members.get(envelope["from"])
        if member is None or not isinstance(beat, dict):
            return  # not an agent of this network
        member.last_seen = time.monotonic()
        member.digest, member.nodes, member.events = beat.get("digest"), int(beat.get("nodes", 0)), int(beat.get("events", 0))
        if member.state != "alive":
            if member.state == "gone":
                member.returns += 1
                MEMBERSHIP_CHANGES.labels("back").inc()
                log.info("agent %s is back", member.id)
            member.state = "alive"
            await self.publish_status()

    async def sweep(self) -> None:
        """Mark agents silent for longer than `gone_after` as gone; refresh the gauges."""
        now, changed = time.monotonic(), False
        for member in self.members.values():
            if member.state == "alive" and now - member.last_seen > self.gone_after:
                member.state = "gone"
                changed = True
                MEMBERSHIP_CHANGES.labels("gone").inc()
                log.warning("agent %s is gone (no heartbeat for %.2fs)", member.id, now - member.last_seen)
        counts = Tally(member.state for member in self.members.values())
        for state in ("alive", "gone", "unseen"):
            AGENTS.labels(state).set(counts[state])
        CONVERGED.set(1 if len(self._alive_digests()) == 1 else 0)
        if changed:
            await self.publish_status()

    def _alive_digests(self) -> set[str | None]:
        return {member.digest for member in self.members.values() if member.state == "alive"}

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        counts = Tally(member.state for member in self.members.values())
        alive_digests = self._alive_digests()
        return {
            "source": "orchestrator",
            "network": self.config.network.name,
            "heartbeat_interval": self.interval,
            "gone_after": self.gone_after,
            "alive": counts["alive"], "gone": counts["gone"], "unseen": counts["unseen"],
            "converged": len(alive_digests) == 1,
            "digests": len(alive_digests),
            "agents": {str(member.id): member.view(now) for member in self.members.values()},
        }  # fmt: skip

    async def publish_status(self) -> None:
        if self.transport is not None:
            await self.transport.send(subjects.NETWORK_STATUS, ORCHESTRATOR_ID, None, self.status())

    # --- sync rounds ------------------------------------------------------------------------------

    async def sync_round(self, timeout: float | None = None) -> dict[str, Any]:
        """Pull from every agent what the replica lacks, push each what it lacks, then call the roll."""
        timeout = timeout or self.sync_timeout
        async with self._round:
            agents = sorted(self.members)
            pulled = await asyncio.gather(*(self.replica.pull(agent, timeout) for agent in agents))
            clocks = {agent: clock for agent, (_, _, clock) in zip(agents, pulled) if clock is not None}
            sent = dict(zip(clocks, await asyncio.gather(*(self.replica.push(a, c) for a, c in clocks.items()))))
            await self.transport.send(subjects.BROADCAST_HEARTBEAT, ORCHESTRATOR_ID, None, {"roll_call": True})
            SYNC_ROUNDS.inc()
        report = {str(agent): {"result": result, "new": new, "sent": sent.get(agent, 0)}
                  for agent, (result, new, _) in zip(agents, pulled)}  # fmt: skip
        return {
            "reached": len(clocks),
            "unreachable": [agent for agent in agents if agent not in clocks],
            "agents": report,
            "replica": {"nodes": len(self.replica.egraph), "digest": self.replica.egraph.digest()},
        }

    # --- routes -------------------------------------------------------------------------------------

    async def status_route(self, request: Request) -> JSONResponse:
        return JSONResponse(self.status())

    async def agent_route(self, request: Request) -> JSONResponse:
        text = request.path_params["id"]
        if not text.isdigit():
            raise RequestError(f"agent id {text!r} is not an integer", field="id", rule="must be an integer agent id")
        member = self.members.get(int(text))
        if member is None:
            raise RequestError(
                f"agent {text} is not in network {self.config.network.name}", field="id",
                rule=f"must be an agent id 0..{len(self.members) - 1}", status=404,
            )  # fmt: skip
        return JSONResponse(member.view(time.monotonic()))

    async def sync_round_route(self, request: Request) -> JSONResponse:
        body = await json_body(request) if await request.body() else {}
        only_fields(body, ("timeout",))
        timeout = number(body["timeout"], "timeout", 0.01, 60) if "timeout" in body else None
        if self.nc is None or not self.nc.is_connected:
            raise RequestError("not connected to NATS yet", field="nats", rule="must be connected to sync", status=503)
        return JSONResponse(await self.sync_round(timeout))


def create(config) -> AgentOrchestrator:
    return AgentOrchestrator(config)
