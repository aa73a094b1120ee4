"""What several components share: the request checks (re-exported from request_checks.py), timers, and a replica of the
network kept by an outside observer on NATS."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as Tally
from typing import Any, Awaitable, Callable

from prometheus_client import Gauge

from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.transport import Transport, Unreachable
from agentnet_runtime.core.clock import VectorClock
from agentnet_runtime.core.clock import validate as validate_clock
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.natsclient import reraise_swallowed_cancel
from agentnet_runtime.refusals import BAD_DELTA, Refused
from agentnet_runtime.request_checks import number, only_fields, requested_terms, verdict_fields  # noqa: F401 (the components import them from here)
from agentnet_runtime.web import METRICS

log = logging.getLogger("agentnet.components")

REPLICA_NODES = Gauge("agentnet_observer_replica_nodes", "E-nodes in a component's replica of the network", ["component"])


# --- timers and the observer replica ------------------------------------------------------------


async def every(interval: float, action: Callable[[], Awaitable[Any]], source: str) -> None:
    """Run `action` every `interval` seconds until cancelled; a failure is counted and logged, not fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            await action()
        except Exception:
            METRICS.errors.labels(source, "timer").inc()
            log.exception("%s: periodic %s failed", source, getattr(action, "__name__", action))
        reraise_swallowed_cancel()


class NetworkReplica:
    """An e-graph that learns what the network knows, as an outside observer on NATS.

    - `listen(streams=True)`: joins the deltas stream components publish on stream.derived.{colour};
    - `pull(agent)`: the agents' anti-entropy request with this replica's digest and clock;
      the reply carries what the replica lacks (or, if too large for a reply, comes as a
      state message to agent.{observer}.state, which `listen` also joins);
    - `push(agent, clock)`: sends an agent what its clock says it lacks.
    Join is idempotent, so duplicates and overlaps cost nothing but the decoding.
    After each pull it compacts, as an agent does, the events every agent it has heard from has
    (their clocks in `heard`): its log then holds what is in flight, not the network's history.
    """

    def __init__(self, transport: Transport, observer: int, component: str):
        self.transport, self.observer, self.component = transport, observer, component
        self.egraph = EGraph(f"observer.{component}")  # joins only: it never makes events of its own
        self.joined: Tally[str] = Tally()  # deltas joined, by source ("stream.blue", "agent.3", ...)
        self.rejected = 0
        self.heard: dict[int, VectorClock] = {}  # agent -> the clock of its last sync reply

    async def listen(self, streams: bool) -> None:
        await self.transport.subscribe(subjects.for_agent(subjects.STATE, self.observer), self._on_state)
        if streams:
            await self.transport.subscribe(subjects.DERIVED.format(colour="*"), self._on_derived)

    def join(self, wire: Any, source: str) -> int:
        """Join a delta in wire form; returns the e-nodes that were new. A malformed one is counted and
        Refused (a ValueError): the transport warns about it, rate-limited."""
        try:
            delta = Delta.from_wire(wire)
        except ValueError as error:
            self.rejected += 1
            METRICS.errors.labels(self.component, "bad-delta").inc()
            raise Refused(BAD_DELTA, f"{self.component}, from {source}: {error}") from None
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
            self.heard[agent] = clock
            self.egraph.compact_seen_by(list(self.heard.values()))
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
