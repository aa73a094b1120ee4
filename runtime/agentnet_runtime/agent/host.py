"""AgentHost: the agents of one process on one NATS connection and one event loop.

By default the agents of a process hold one e-graph (agent.py, shared replicas), so what
follows concerns their neighbours in other processes; with `share_replica` off each agent
holds its own and its neighbours in this process are handled alike, in memory.

Each agent has a worker that wakes when something changed: it pushes deltas to its
neighbours (agent.{n}.state) and acknowledges what it received (agent.{n}.ack) at once,
and runs a time-sliced rewrite pass of its colour's family once its inbox is quiet; of
the agents of one colour in this process, one searches for all (AgentHost._searcher), the
others take what it derives (as deltas, or at once from a shared e-graph, whose every
change wakes each colour's searcher).
Timers run anti-entropy rounds (agent.{n}.sync request/reply with digests), heartbeats,
timeline flushes and, with a data directory, snapshots (snapshots.py; only of e-graphs that
changed since their last one). What goes to an agent of this process stays in memory
(transport.py), so a whole network in one process (`agentnet up`) sends nothing at rest
but one agents.heartbeat and one network.status per interval.

At rest the cost follows the edges: an agent's heartbeat (its digest) goes to its neighbours
only (agent.{id}.heartbeat only for those hosted elsewhere), and a repair round visits only
the neighbours not known to hold the agent's present state (Agent.out_of_step): a change, a
differing heartbeat or a lost push brings the exchanges back.

A restarted agent gets a fresh replica id (agent id + start time), so it never reuses a
sequence number of its previous life; it restores its snapshot before it connects (so it
is ready with that state), then catches up from its neighbours' replies.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Awaitable, Callable

import orjson

from agentnet_runtime import natsclient
from agentnet_runtime.config import RuntimeConfig
from agentnet_runtime.refusals import BAD_DELTA, Refused
from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.egraph import Delta
from agentnet_runtime.timeline.events import Event
from agentnet_runtime.web import METRICS

from . import snapshots, subjects
from .agent import Agent, Relay, SharedReplica, replica_name
from .transport import Transport, Unreachable

log = logging.getLogger("agentnet.agent")


class AgentHost:
    """Runs `config.agent_ids`; `timeline` (a timeline.Timeline), if set before start(), stores events."""

    def __init__(self, config: RuntimeConfig, timeline=None):
        self.config = config
        self.settings = config.agent
        self.timeline = timeline
        boot = format(time.time_ns() // 1_000_000, "x")
        self.events: list[Event] = []
        relay = Relay({node.id: node.neighbours for node in config.network.nodes})
        hosted, max_nodes = sorted(config.agent_ids), config.network.retention.max_nodes
        self.shared = None  # one e-graph for all hosted agents, named after the lowest (agent.py, shared replicas)
        if self.settings.share_replica and len(hosted) > 1:
            self.shared = SharedReplica(replica_name(hosted[0], boot), hosted, max_nodes)
            self.shared.on_news = self._shared_news
        self.agents: dict[int, Agent] = {
            i: Agent(config.network.nodes[i], replica_name(i, boot), self.settings, self.events.append, relay,
                     max_nodes=max_nodes, shared=self.shared)
            for i in hosted
        }
        self.transport = Transport(config.nats_url, config.nats_auth, name=f"agentnet-{config.network.name}-{config.pod_name}")
        self.ready = asyncio.Event()  # connected and subscribed
        self.started = time.time()
        self._listeners: dict[int, list[Agent]] = {}  # neighbour id -> hosted agents that listen to it
        for agent in self.agents.values():
            for n in agent.neighbours:
                self._listeners.setdefault(n, []).append(agent)
        # Neighbours hosted elsewhere: their heartbeats come over NATS, and ours go to them.
        self._remote = sorted(n for n in self._listeners if n not in self.agents)
        self._published = [a for a in self.agents.values() if any(n not in self.agents for n in a.neighbours)]
        self._wake = {i: asyncio.Event() for i in self.agents}
        self._gauges = {i: (METRICS.egraph_nodes.labels(str(i)), METRICS.clock_progress.labels(str(i)),
                            METRICS.convergence.labels(str(i))) for i in self.agents}  # looked up once, set every beat  # fmt: skip
        self._busy: set[int] = set()
        self._by_colour: dict[Colour, list[Agent]] = {colour: [] for colour in Colour}  # hosted agents, lowest id first
        for i in sorted(self.agents):
            self._by_colour[self.agents[i].colour].append(self.agents[i])
        for agent in self.agents.values():
            if self._searcher(agent) is not agent:
                agent.saturation.skip()  # watching the e-graph for a search it leaves to another costs every join
        self._snapshot_holders = [agent for agent in self.agents.values() if self._holds_snapshot(agent)]
        self._absorbed: set[int] = set()  # other agents whose snapshots the shared e-graph joined at start
        self._tasks: list[asyncio.Task] = []
        # agent id -> (e-graph version, own events) of its newest snapshot
        self._snapshotted: dict[int, tuple[int, int]] = {}
        self._stopping = False
        self._writing: set[asyncio.Future] = set()  # timeline appends and snapshot writes in worker threads

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start in the background (connecting may wait for NATS); `ready` is set once subscribed."""
        for agent in self.agents.values():
            if self.snapshotting:
                await self._load_snapshot(agent)
            agent.recorder.record("start", payload={"pod": self.config.pod_name, "size": len(agent.egraph)})
        self._spawn(self._connect_and_run(), "agents")
        self._spawn(self._every(self.settings.timeline_flush, self.flush_events), "timeline")
        if self.snapshotting:
            self._spawn(self._every(self.settings.snapshot_interval, self.save_snapshots), "snapshots")

    async def stop(self) -> None:
        self._stopping = True
        for agent in self.agents.values():
            agent.recorder.record("stop", payload={"size": len(agent.egraph), "digest": agent.egraph.digest()})
        await natsclient.cancel_until_done(self._tasks)
        self._tasks.clear()
        await asyncio.gather(*self._writing, return_exceptions=True)  # a cancel does not stop a thread
        await self.transport.unsubscribe()  # no more messages, so no more events after the last flush
        await self.flush_events()
        if self.snapshotting:
            await self.save_snapshots()
            await self._write(self._seal_snapshots)
        await self.transport.close()

    def not_ready(self) -> list[str]:
        """Why these agents cannot do their work now (GET /ready); empty when they can."""
        return self.transport.state.not_ready() or ([] if self.ready.is_set() else ["agents not subscribed to NATS yet"])

    def _spawn(self, coroutine: Awaitable, name: str) -> None:
        if self._stopping:  # (a swallowed cancel let _connect_and_run go on)
            coroutine.close()
            return
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def _connect_and_run(self) -> None:
        await self.transport.connect()
        for i in self.agents:
            await self.transport.subscribe_inbox(i, self._on_inbox)
        for n in self._remote:
            await self.transport.subscribe(subjects.for_agent(subjects.HEARTBEAT, n), self._on_heartbeat)
        await self.transport.subscribe(subjects.BROADCAST_HEARTBEAT, self._on_roll_call)
        for agent in self.agents.values():
            self._spawn(self._worker(agent), f"agent-{agent.id}")
            self._wake[agent.id].set()
        if self.settings.sync_interval > 0:
            self._spawn(self._every(self.settings.sync_interval, self.repair_round), "anti-entropy")
        self._spawn(self._every(self.settings.heartbeat_interval, self.heartbeat), "heartbeat")
        self.ready.set()
        # A (re)started agent catches up at once, from the neighbours whose digest differs or is not heard
        # yet: the heartbeat hands hosted neighbours each other's digests, so a fresh network exchanges
        # nothing (a full round of 1,000 agents was thousands of exchanges before it could serve).
        await self.heartbeat()
        for agent in self.agents.values():
            agent.in_step_by_digest()
        await self.repair_round()

    async def _write(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a write in a worker thread, shielded and tracked: a timer cancelled at stop would
        otherwise leave it running unseen, racing the final flush or snapshot (and a reader after
        stop() returned would miss what it writes)."""
        future = asyncio.ensure_future(asyncio.to_thread(function, *args))
        self._writing.add(future)
        future.add_done_callback(self._writing.discard)
        return await asyncio.shield(future)

    async def _every(self, interval: float, action: Callable[[], Awaitable]) -> None:
        """Run `action` every `interval` seconds (jittered, so processes do not beat in step). The flag, not
        only the cancel, ends it: a cancel that meets a NATS request (JetStream publish, sync) can be
        swallowed by nats-py, and the loop would then go on while stop() waits for it."""
        while not self._stopping:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            try:
                await action()
            except Exception:
                METRICS.errors.labels("agent", "timer").inc()
                log.exception("periodic %s failed", getattr(action, "__name__", action))

    # --- the worker: push, acknowledge, rewrite ------------------------------------------------

    def _holds_snapshot(self, agent: Agent) -> bool:
        """Does `agent` keep a snapshot of its e-graph: every agent does, or the lowest of those sharing one."""
        return self.shared is None or agent is self.shared.members[0]

    def wake(self, agent: Agent) -> None:
        self._wake[agent.id].set()

    def _shared_news(self, source: Agent | None = None) -> None:
        """The shared e-graph changed: the searcher of each colour (but `source`, whose rewrite it was) has
        news to search, and the agents with neighbours elsewhere have something to push."""
        now = time.monotonic()
        for peers in self._by_colour.values():
            searcher = self._searcher(peers[0]) if peers else None
            if searcher is not None and searcher is not source:
                searcher.dirty, searcher.last_input = True, now
                self.wake(searcher)
        for agent in self._published:
            self.wake(agent)

    async def _worker(self, agent: Agent) -> None:
        """Push and acknowledge at once; rewrite once the agent's inbox has been quiet for a
        moment (a rewrite pass costs the whole e-graph, so one pass per burst, not per message)."""
        wake, settings = self._wake[agent.id], self.settings
        while not self._stopping:
            await wake.wait()
            self._busy.add(agent.id)
            try:
                await asyncio.sleep(settings.batch_delay)  # let a burst of messages pile up
                wake.clear()
                await self._push(agent)
                now = time.monotonic()
                if agent.dirty and (now - agent.last_input >= settings.batch_delay or now - agent.last_rewrite >= settings.rewrite_gap):
                    version = agent.egraph.version
                    if self._searcher(agent) is not agent:
                        agent.rewritten_elsewhere()
                        METRICS.rewrite_passes.labels(str(agent.id), "left").inc()
                    else:
                        report = agent.rewrite()
                        if report is not None:
                            METRICS.rewrite_passes.labels(str(agent.id), "run").inc()
                            METRICS.rewrites.labels(str(agent.id)).inc(report.matches)
                    if agent.egraph.version != version:
                        if self.shared is not None:
                            self._shared_news(agent)
                        await self._push(agent)
                if agent.dirty:
                    wake.set()
            finally:
                self._busy.discard(agent.id)

    def _searcher(self, agent: Agent) -> Agent:
        """Who searches `agent`'s news for its rewrite family: the first hosted agent of its colour (lowest
        id) not partitioned from it, often itself. Every event reaches every agent, so that one's replica
        comes to hold all `agent` holds, and what it derives comes back here as deltas. With every agent
        searching, the n agents of a colour derived the same e-nodes n times, and each of those n events
        went to every agent: a burst's work grew with the square of the network."""
        for peer in self._by_colour[agent.colour]:
            if peer is agent or not self.transport.cut(peer.id, agent.id):
                return peer
        return agent

    async def _push(self, agent: Agent) -> None:
        """Deltas to neighbours (when eager) and acks for what arrived, but to those just pushed to: a delta
        carries its sender's clock, which is all an ack would say (half the messages of a burst were acks)."""
        pushed = set()
        if self.settings.eager:
            for n, delta in agent.deltas_to_push():
                if await self._send(agent, subjects.STATE, n, delta, {"to": n, "nodes": delta.node_count}):
                    pushed.add(n)
        for n in sorted(agent.pending_acks - pushed):
            await self._send(agent, subjects.ACK, n, {"clock": agent.ack_for(n)}, {"to": n})
        agent.pending_acks.clear()

    async def _send(self, agent: Agent, template: str, to: int, body: Any, summary: dict) -> bool:
        subject = subjects.for_agent(template, to)
        agent.recorder.record("send", subject, summary)
        sent = await self.transport.send(subject, agent.id, to, body, agent.recorder.stamp())
        if sent:
            agent.sent_count += 1
            METRICS.messages.labels(str(agent.id), "out", subject.rsplit(".", 1)[1]).inc()
        return sent

    async def settle(self, timeout: float = 30.0) -> bool:
        """Wait until no hosted agent has work left (for tests and benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while not self.settled():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def settled(self) -> bool:
        """No hosted agent has work left: nothing to rewrite, push or acknowledge (GET /status says it too:
        agents that share an e-graph hold one digest at once, while its rewriting may go on)."""
        return not self._busy and not any(w.is_set() for w in self._wake.values()) and not any(
            a.dirty or a.pending_acks for a in self.agents.values()
        )

    # --- incoming messages ---------------------------------------------------------------------

    async def _on_inbox(self, subject: str, envelope: dict, message: Any) -> None:
        to, kind = subjects.parse(subject)
        agent = self.agents.get(to)
        if agent is None or kind not in subjects.INBOX_KINDS:
            return  # our own heartbeat, or a stray subject
        sender, body, stamp = envelope["from"], envelope["body"], envelope.get("stamp")
        agent.received_count += 1
        METRICS.messages.labels(str(agent.id), "in", kind).inc()
        if kind == "state":
            try:
                delta = Delta.from_wire(body)
            except ValueError as error:  # the transport warns (rate-limited) and counts it
                METRICS.errors.labels("agent", "bad-delta").inc()
                raise Refused(BAD_DELTA, f"agent {agent.id}, from {sender}: {error}") from None
            new = agent.adopt(sender, delta) if sender in subjects.ADOPTED_SENDERS else agent.receive(sender, delta)
            agent.recorder.record("receive", subject, {"from": sender, "nodes": delta.node_count, "new": new}, stamp)
            self.wake(agent)
        elif kind == "ack":
            agent.learn(sender, body["clock"])
            agent.recorder.record("receive", subject, {"from": sender}, stamp)
        elif message.reply:  # sync
            agent.recorder.record("receive", subject, {"from": sender}, stamp)
            reply = agent.answer_sync(sender, body)
            agent.recorder.record("send", message.reply, {"to": sender, "reply": "sync", "equal": "delta" not in reply})
            if not await self.transport.respond(message, agent.id, reply, agent.recorder.stamp()):
                # Too large for a reply: push the delta as a (fragmented) state message instead.
                delta = reply.pop("delta")
                await self._send(agent, subjects.STATE, sender, delta, {"to": sender, "reply": "sync"})
                reply["pushed"] = True
                await self.transport.respond(message, agent.id, reply, agent.recorder.stamp())

    async def _on_heartbeat(self, subject: str, envelope: dict, message: Any) -> None:
        self._heard(envelope["from"], envelope["body"]["digest"])

    def _heard(self, sender: int, digest: str) -> None:
        """A neighbour's heartbeat: note its digest with the hosted agents it neighbours (unless cut off)."""
        for agent in self._listeners.get(sender, ()):
            if not self.transport.cut(sender, agent.id):
                agent.peer_digests[sender] = digest

    async def _on_roll_call(self, subject: str, envelope: dict, message: Any) -> None:
        await self.heartbeat()

    # --- anti-entropy ---------------------------------------------------------------------------

    async def sync_agent(self, agent: Agent, neighbours: tuple[int, ...] | None = None) -> dict[int, dict]:
        """Exchange digests with each neighbour and pull what this agent lacks; result per neighbour."""

        async def with_neighbour(n: int) -> tuple[int, dict]:
            subject = subjects.for_agent(subjects.SYNC, n)
            agent.recorder.record("send", subject, {"to": n})
            try:
                reply = await self.transport.request(
                    subject, agent.id, n, agent.sync_request(), agent.recorder.stamp(), self.settings.sync_timeout
                )
                agent.recorder.record("receive", subject, {"from": n, "reply": "sync"}, reply.get("stamp"))
                result, new = agent.absorb_sync_reply(n, reply["body"])
            except Unreachable:
                result, new = "unreachable", 0
            except (ValueError, KeyError, TypeError) as error:
                METRICS.errors.labels("agent", "bad-sync-reply").inc()
                log.warning("agent %s: bad sync reply from %s: %s", agent.id, n, error)
                result, new = "error", 0
            METRICS.syncs.labels(str(agent.id), result).inc()
            return n, {"result": result, "new": new}

        results = dict(await asyncio.gather(*(with_neighbour(n) for n in (agent.remote if neighbours is None else neighbours))))
        agent.recorder.record("sync", payload={str(n): r["result"] for n, r in results.items()})
        self.wake(agent)  # push what neighbours lack, rewrite what arrived
        return results

    async def sync_round(self) -> dict[int, dict[int, dict]]:
        """One anti-entropy round: every hosted agent syncs with each of its neighbours (elsewhere, if shared)."""
        return await self._round({agent: agent.remote for agent in self.agents.values() if agent.remote})

    async def repair_round(self) -> dict[int, dict[int, dict]]:
        """The timer's round: every hosted agent syncs with the neighbours it is out of step with (none at rest)."""
        if self.shared is not None:  # its agents may have no neighbour elsewhere, whose exchanges would compact it
            self.shared.members[0].compact()
        visits = {agent: agent.out_of_step() for agent in self.agents.values()}
        return await self._round({agent: neighbours for agent, neighbours in visits.items() if neighbours})

    async def _round(self, visits: dict[Agent, tuple[int, ...] | list[int]]) -> dict[int, dict[int, dict]]:
        if not (self.transport.connected or all(n in self.agents for ns in visits.values() for n in ns)):
            return {}
        results = await asyncio.gather(*(self.sync_agent(agent, tuple(ns)) for agent, ns in visits.items()))
        return {agent.id: result for agent, result in zip(visits, results)}

    # --- heartbeats, status, metrics ------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Every hosted agent's heartbeat to its neighbours (in memory here, on NATS to other processes'),
        all of them in one agents.heartbeat for observers, and this process's summary; refresh gauges."""
        beats = {}
        for agent in self.agents.values():
            beat = beats[agent.id] = agent.heartbeat()
            nodes, progress, convergence = self._gauges[agent.id]
            nodes.set(beat["nodes"])
            progress.set(beat["events"])
            convergence.set(len(agent.agreeing_neighbours()) / max(1, len(agent.neighbours)))
            self._heard(agent.id, beat["digest"])
        for agent in self._published:
            await self.transport.send(subjects.for_agent(subjects.HEARTBEAT, agent.id), agent.id, None, beats[agent.id])
        if self.agents:
            first = next(iter(self.agents))
            body = subjects.heartbeats(self.config.network.name, self.config.pod_name, beats)
            await self.transport.send(subjects.HEARTBEATS, first, None, body)
            await self.transport.send(subjects.NETWORK_STATUS, first, None, self.status())

    def status(self) -> dict[str, Any]:
        agents = {}
        for agent in self.agents.values():
            agreeing = agent.agreeing_neighbours()
            agents[str(agent.id)] = {
                "colour": agent.colour.value, "digest": agent.egraph.digest(), "size": len(agent.egraph),
                "neighbours_agreeing": len(agreeing), "neighbours": len(agent.neighbours),
            }  # fmt: skip
        digests = {a["digest"] for a in agents.values()}
        return {
            "network": self.config.network.name,
            "pod": self.config.pod_name,
            "nats": {"url": self.config.nats_url, "connected": self.transport.connected},
            "agents": agents,
            "converged": len(digests) == 1 and all(a["neighbours_agreeing"] == a["neighbours"] for a in agents.values()),
            "settled": self.settled(),
            "uptime": round(time.time() - self.started, 3),
        }

    def digests(self) -> dict[int, str]:
        return {i: agent.egraph.digest() for i, agent in self.agents.items()}

    # --- timeline ------------------------------------------------------------------------------

    async def flush_events(self) -> None:
        """Hand recorded events to the timeline (DuckDB, in a worker thread), or store them in the
        timeline's JetStream stream, which keeps them until the timeline component has them."""
        if not self.events:
            return
        batch = self.events.copy()
        self.events.clear()
        start = time.perf_counter()
        if self.timeline is not None:
            await self._write(self.timeline.append, batch)
            METRICS.timeline_flush.observe(time.perf_counter() - start)
            METRICS.timeline_events.labels("duckdb").inc(len(batch))
            return
        sent = 0
        if self.transport.connected:
            items = [orjson.dumps(event.to_dict()) for event in batch]
            for count, data in self.transport.packed(batch[0].origin, items, self.transport.max_payload):
                first = batch[sent]  # the batch's first event names it, so a resend is recognised
                if not await self.transport.store(subjects.TIMELINE_EVENTS, data, f"{first.replica}#{first.seq}+{count}",
                                                  natsclient.timeline_stream):  # fmt: skip
                    break
                sent += count
        if sent < len(batch):
            self.events[:0] = batch[sent:][-self.settings.max_buffered_events:]  # kept for the next flush (MAX_BUFFER_SIZE)
        METRICS.timeline_events.labels("nats").inc(sent)

    # --- snapshots -------------------------------------------------------------------------------

    @property
    def snapshotting(self) -> bool:
        return self.config.data_dir is not None and self.settings.snapshot_interval > 0

    async def _load_snapshot(self, agent: Agent) -> None:
        seal = await asyncio.to_thread(snapshots.take_seal, self.config.data_dir, agent.id)
        restored = await asyncio.to_thread(snapshots.read, self.config.data_dir, agent.id)
        replica = snapshots.continued_replica(seal, restored, agent.id)
        if replica is not None and self._holds_snapshot(agent):  # (the lowest of a shared e-graph's agents loads first)
            agent.continue_as(replica)
        if restored.state is None:
            return
        if not self._holds_snapshot(agent):  # left by an earlier packing: kept until the shared one holds it
            self._absorbed.add(agent.id)
        agent.egraph.join(restored.state)
        agent.dirty = True  # its rewrite family has not seen this state yet
        if self.shared is not None:
            self._shared_news()  # nor have the families the other colours' searchers run on the shared e-graph
        self._snapshotted[agent.id] = (agent.egraph.version, restored.state.clock.get(agent.replica, 0))
        log.info("agent %s: restored %d e-nodes from the %s snapshot %s", agent.id, len(agent.egraph), restored.source, restored.path)

    async def save_snapshots(self) -> None:
        """Snapshot every e-graph that changed since its last snapshot."""
        for agent in self._snapshot_holders:
            version = agent.egraph.version
            if self._snapshotted.get(agent.id, (None,))[0] != version:
                wire = agent.egraph.to_wire()
                await self._write(snapshots.write, self.config.data_dir, agent.id, wire)
                self._snapshotted[agent.id] = (version, wire["clock"].get(agent.replica, 0))
                if self._absorbed:
                    await self._write(snapshots.discard, self.config.data_dir, sorted(self._absorbed))
                    self._absorbed.clear()

    def _seal_snapshots(self) -> None:
        """Last thing of a clean stop: each newest snapshot holds all its agent's events, so the next start may
        carry on its replica id (snapshots.py, seals)."""
        for agent in self._snapshot_holders:
            version, count = self._snapshotted.get(agent.id, (None, 0))
            if version == agent.egraph.version:  # (nothing changed since: no event after the snapshot either)
                snapshots.seal(self.config.data_dir, agent.id, agent.replica, count)
