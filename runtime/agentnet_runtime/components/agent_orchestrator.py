"""agent-orchestrator (/agents): membership from heartbeats, sync rounds, network status.

GET  /status        every agent of the network: alive | gone | unseen, last heartbeat age,
                    digest, size; converged = every agent seen, one digest among the alive
GET  /{id}          one agent
POST /sync-round    {"timeout"?}: one anti-entropy round through this component (below),
                    then a roll call (broadcast.heartbeat) so every status is fresh

Membership: every agent process publishes its agents' heartbeats, in one agents.heartbeat
message, each heartbeat interval (setting
`heartbeat_interval`, default the agents' own default). The rules (gone after `gone_after`
silent intervals, default 2.5; converged) are core/membership.py's, which the dashboard shares.

A sync round over NATS (a cluster's orchestrator knows no agent URLs): the orchestrator
keeps a replica of the network's e-graph. It asks every agent for what the replica lacks
(agent.{id}.sync, the agents' own anti-entropy request, sent as an outside observer with a
negative id), then pushes each agent what that agent's clock says it lacks (agent.{id}.state).
One round leaves every agent that answered with the union of all of them. With setting
`sync_interval` > 0 it also runs rounds on its own.

The summary goes out on network.status every interval and after membership changes,
as an envelope like the agents' summaries, told apart by `"source": "orchestrator"`.
Changes are gathered until the next sweep (a tenth of an interval, at most 0.25 s): the summary
lists every agent, so one per change would make 1,000 agents joining cost 1,000 summaries of
1,000 agents each.

"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.components import Service
from agentnet_runtime.components.common import NetworkReplica, every, number, only_fields
from agentnet_runtime.core import membership
from agentnet_runtime.settings import OrchestratorSettings
from agentnet_runtime.web import RequestError, json_body

log = logging.getLogger("agentnet.orchestrator")


# Metrics of this module (to move into web.METRICS).
AGENTS = Gauge("agentnet_orchestrator_agents", "Agents by membership state, as the orchestrator sees them", ["state"])
CONVERGED = Gauge("agentnet_orchestrator_converged", "1 when every agent has been seen and the alive ones report one digest, else 0")
MEMBERSHIP_CHANGES = Counter("agentnet_orchestrator_membership_changes", "Agents marked gone or back", ["to"])
SYNC_ROUNDS = Counter("agentnet_orchestrator_sync_rounds", "Sync rounds run through the orchestrator")


# --- the orchestrator ----------------------------------------------------------------------------------


@dataclass
class Member(membership.Member):
    """What the orchestrator knows of one agent."""

    colour: str = ""

    def view(self, now: float) -> dict[str, Any]:
        age = self.age(now)
        age = None if age is None else round(age, 3)
        return {"agent": self.id, "colour": self.colour, "state": self.state, "last_heartbeat_age": age,
                "digest": self.digest, "size": self.nodes, "events": self.events, "returns": self.returns}  # fmt: skip


class AgentOrchestrator(Service):
    name = "agent-orchestrator"
    uses_nats = True
    settings_model = OrchestratorSettings

    def __init__(self, config):
        super().__init__(config)
        self.interval = self.settings.heartbeat_interval
        self.sync_timeout = self.settings.sync_timeout
        self.sync_interval = self.settings.sync_interval
        self.membership = membership.Membership(
            (Member(node.id, colour=node.colour) for node in config.network.nodes), self.interval, self.settings.gone_after
        )
        self.members = self.membership.members
        self.transport: Transport | None = None
        self.replica: NetworkReplica | None = None
        self._round = asyncio.Lock()
        self._changed = False  # membership changed since the last summary went out
        self._tasks: list[asyncio.Task] = []

    def routes(self) -> list[Route]:
        return [
            Route("/status", self.status_route),
            Route("/sync-round", self.sync_round_route, methods=["POST"]),
            Route("/{id}", self.agent_route),
        ]

    def health(self) -> dict[str, Any]:
        alive = self.membership.counts()[membership.ALIVE]
        return {"nats": "connected" if self.nc is not None and self.nc.is_connected else "connecting", "alive": alive}

    async def on_start(self) -> None:
        self.transport = Transport(self.config.nats_url, self.config.nats_auth)
        self.transport.nc = self.nc  # the Service's connection; Transport adds envelopes and fragments
        self.replica = NetworkReplica(self.transport, subjects.ORCHESTRATOR_ID, self.name)
        await self.replica.listen(streams=False)
        await self.transport.subscribe(subjects.HEARTBEATS, self._on_heartbeats)
        self._tasks = [
            asyncio.create_task(every(min(self.interval / 10, 0.25), self.sweep, self.name), name="membership"),
            asyncio.create_task(every(self.interval, self.publish_status, self.name), name="network-status"),
        ]
        if self.sync_interval > 0:
            self._tasks.append(asyncio.create_task(every(self.sync_interval, self.sync_round, self.name), name="sync-rounds"))
        await self.transport.send(subjects.BROADCAST_HEARTBEAT, subjects.ORCHESTRATOR_ID, None, {"roll_call": True})  # learn who is there now

    async def on_stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- membership -----------------------------------------------------------------------------

    async def _on_heartbeats(self, subject: str, envelope: dict, message: Any) -> None:
        now = time.monotonic()
        for agent, beat in subjects.beats_of(envelope["body"], self.config.network.name):
            change = self.membership.heartbeat(agent, beat, now)
            if change is not None:  # seen for the first time, or back: told at the next sweep
                member, was = change
                self._changed = True
                if was == membership.GONE:
                    MEMBERSHIP_CHANGES.labels("back").inc()
                    log.info("agent %s is back", member.id)

    async def sweep(self) -> None:
        """Mark agents silent for longer than `gone_after` as gone; refresh the gauges."""
        now = time.monotonic()
        gone = self.membership.sweep(now)
        for member in gone:
            MEMBERSHIP_CHANGES.labels("gone").inc()
            log.warning("agent %s is gone (no heartbeat for %.2fs)", member.id, member.age(now))
        for state, count in self.membership.counts().items():
            AGENTS.labels(state).set(count)
        CONVERGED.set(1 if self.membership.converged() else 0)
        if gone or self._changed:
            await self.publish_status()

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "source": "orchestrator",
            "network": self.config.network.name,
            "heartbeat_interval": self.interval,
            "gone_after": self.membership.gone_after,
            **self.membership.counts(),
            "converged": self.membership.converged(),
            "digests": len(self.membership.digests()),
            "agents": {str(member.id): member.view(now) for member in self.members.values()},
        }

    async def publish_status(self) -> None:
        self._changed = False
        if self.transport is not None:
            await self.transport.send(subjects.NETWORK_STATUS, subjects.ORCHESTRATOR_ID, None, self.status())

    # --- sync rounds ------------------------------------------------------------------------------

    async def sync_round(self, timeout: float | None = None) -> dict[str, Any]:
        """Pull from every agent what the replica lacks, push each what it lacks, then call the roll."""
        timeout = timeout or self.sync_timeout
        async with self._round:
            agents = sorted(self.members)
            pulled = await asyncio.gather(*(self.replica.pull(agent, timeout) for agent in agents))
            clocks = {agent: clock for agent, (_, _, clock) in zip(agents, pulled) if clock is not None}
            sent = dict(zip(clocks, await asyncio.gather(*(self.replica.push(a, c) for a, c in clocks.items()))))
            await self.transport.send(subjects.BROADCAST_HEARTBEAT, subjects.ORCHESTRATOR_ID, None, {"roll_call": True})
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
