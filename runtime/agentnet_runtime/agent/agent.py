"""One agent: a replica of the CRDT e-graph, its colour's rewrite family, and what it
knows about its neighbours. Pure bookkeeping: the host (host.py) moves the messages.

Replication, per neighbour n:
  - `known[n]`: a clock n is known to have seen (from its acks, sync replies and deltas);
  - `sent[n]`: how far deltas were pushed to n, optimistically (>= known[n]);
  - `settled[n]`: `sent[n]` as it was at the previous sync exchange with n.
A change is pushed as `delta_since(sent[n])`; a lost push is repaired by anti-entropy: a
sync exchange compares digests and answers with what the asker's clock has not seen and
was not pushed to it. A push made before the previous exchange has had a whole sync
interval to arrive; if n's clock still lacks it, it was lost (or n restarted empty), and
`known[n]` and `sent[n]` go back to n's own clock, so the sync answer and the next push
resend what n missed. Pushes made since may still be in flight: resending them at once
would only send everything twice in a burst.

Events another agent made travel down a spanning tree rooted at that agent (see Relay):
an agent pushes them only to the neighbours it is the tree parent of, and counts them
as sent to the others, which get them from their own parent. Should that parent be gone,
the exchange above finds them missing and resends, as for any loss. Events that arrive
off their tree (handed in by a component, such as another network's events brought by
transduction, whose replica ids look like ours; or resent by a neighbour) go on to every
neighbour from there.

At rest an agent need not ask: a neighbour whose digest equalled this replica's in an exchange
since this replica last changed, and whose heartbeats still say so, holds what it holds
(`out_of_step` leaves it out of the repair round). A lost push shows as a differing digest in
the next heartbeat, and any change of this replica brings back one exchange with each neighbour
(so clocks are still learned, and compaction still advances).

Compaction: after each sync exchange the agent drops into its checkpoint the events its own
clock and every neighbour's `known` clock share (pointwise minimum): no neighbour will ask for
them again, and anyone else who does gets the checkpoint (core/events.py).
Shared replicas (AgentSettings.share_replica): the agents of one process hold one e-graph
(SharedReplica). Replication between agents of one process would be a message in memory that
every one of n replicas joins, a burst costing n times each event; shared, each event is joined
once, and only neighbours hosted elsewhere get pushes, exchanges and clock bookkeeping. An
in-memory delivery is never lost, so those agents came to the same state anyway: the network
computes the same classes (only which of two congruent e-nodes carries a colour tag may differ).
The colours' rewrite families all run on the shared e-graph (AgentHost._searcher).
Retention: `max_nodes` is the e-graph's knowledge budget (core/retention.py); sync requests
carry the retention floor, so two replicas whose states differ only by it still converge.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from dataclasses import replace
from typing import Any, Callable, Collection, Mapping

from agentnet_runtime.config import AgentSettings, NodeConfig
from agentnet_runtime.core.clock import VectorClock, dominates, merge, raise_to
from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.counterexample import Counterexample, refute
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.core.rewrites import rules_for
from agentnet_runtime.core.saturate import Budget, Saturation, SaturationReport, StopReason
from agentnet_runtime.core.terms import Term, is_pattern_var
from agentnet_runtime.timeline.events import Event, Recorder

_KEEP_GOING = (StopReason.TIME, StopReason.ITERATIONS)
_NO_PARENT = -(2**31)  # no agent's id, nor a component's
# Events an agent keeps in memory for GET /agent/{id}/messages and /api/timeline (the durable
# record is the timeline component's); bounded so an idle-looking agent does not grow, and kept
# without their clocks (see Agent.recent).
RECENT_EVENTS = 256


def _constant_leaves(pattern: Term) -> list[Term]:
    if not pattern.args:
        return [] if is_pattern_var(pattern) else [pattern]
    return [leaf for arg in pattern.args for leaf in _constant_leaves(arg)]


def replica_name(agent: int, boot: str) -> str:
    """An agent's replica id: the agent's id, then when this life of it began (so a restart never reuses one;
    a start after a clean stop carries on the stopped life's id instead, see Agent.continue_as)."""
    return f"{agent}.{boot}"


def agent_of(replica: str) -> int | None:
    """The agent whose replica this is, or None (a component's replica, say)."""
    head, dot, _ = replica.partition(".")
    return int(head) if dot and head.isdigit() else None


class Relay:
    """Who passes on whose events: each agent's events travel down one breadth-first tree rooted at it.

    Flooding sends every event along every edge, and the triangles of a ramanujan graph
    deliver most events two or three times. In the tree each agent has one parent per
    origin; neighbours are visited lowest id first, so every agent computes the same trees.
    Events of an origin that is no agent of the network (a component) are flooded.
    """

    def __init__(self, neighbours: Mapping[int, tuple[int, ...]]):
        self._neighbours = {agent: sorted(adjacent) for agent, adjacent in neighbours.items()}
        self._size = max(self._neighbours, default=-1) + 1  # agent ids are 0..n-1
        # origin -> each agent's parent in the origin's tree, indexed by agent id: an array, not a dict,
        # since after a burst a process holds a tree per origin (n² entries, 4 bytes each instead of ~100)
        self._parents: dict[int, array] = {}

    def forwards(self, agent: int, origin: int | None, neighbour: int) -> bool:
        """Does `agent` push events made by `origin` on to `neighbour`?"""
        if origin not in self._neighbours:
            return True
        parents = self._parents.get(origin)
        if parents is None:  # one breadth-first search per origin, when its events first pass (no networkx: agents start fast)
            parents, queue = array("i", [_NO_PARENT]) * self._size, deque([origin])
            parents[origin] = origin
            while queue:
                node = queue.popleft()
                for adjacent in self._neighbours[node]:
                    if parents[adjacent] == _NO_PARENT:
                        parents[adjacent] = node
                        queue.append(adjacent)
            self._parents[origin] = parents
        return 0 <= neighbour < self._size and parents[neighbour] == agent


class SharedReplica:
    """The one e-graph of the agents of a process (`hosted`), who holds it, and whom its news concerns:
    `on_news` is called whenever an agent holding it learns something (AgentHost wakes its searchers)."""

    def __init__(self, replica: str, hosted: Collection[int], max_nodes: int | None = None):
        self.egraph = EGraph(replica, max_nodes)
        self.hosted = frozenset(hosted)
        self.members: list[Agent] = []
        self.on_news: Callable[[], None] | None = None


class Agent:
    def __init__(
        self, node: NodeConfig, replica: str, settings: AgentSettings, sink: Callable[[Event], None] | None = None,
        relay: Relay | None = None, max_nodes: int | None = None, shared: SharedReplica | None = None,
    ):  # fmt: skip
        self.id = node.id
        self.node = node
        self.colour = Colour(node.colour)
        self.neighbours = node.neighbours
        self.settings = settings
        self.rules = rules_for(self.colour)
        self._needs = [_constant_leaves(rule.lhs) for rule in self.rules]  # a rule cannot match without these
        self.budget = Budget(iterations=settings.rewrite_iterations, nodes=settings.node_cap, seconds=settings.rewrite_seconds)
        self.shared = shared
        if shared is None:
            self.egraph, self.group, self.local = EGraph(replica, max_nodes), [self], frozenset()
        else:
            self.egraph, self.group = shared.egraph, shared.members
            self.local = frozenset(n for n in node.neighbours if n in shared.hosted)  # neighbours holding this e-graph
            shared.members.append(self)
        # The neighbours replication is with: all, or those hosted elsewhere when the e-graph is shared.
        self.remote = tuple(n for n in node.neighbours if n not in self.local)
        # Keeps its place between passes: a pass searches only what changed since the last one
        # (what arrived from neighbours and what it rewrote), so it costs the news, not the e-graph.
        self.saturation = Saturation(self.egraph, self.rules, self.budget)
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)

        def keep(event: Event) -> None:
            # Kept without its vector clock, which holds an entry per replica heard of (n once the network
            # has talked): the API shows none, and the timeline gets the whole event from `sink`.
            self.recent.append(replace(event, clock={}))
            if sink is not None:
                sink(event)

        self.recorder = Recorder(node.id, replica, self.colour.value, keep)
        self.relay = relay  # None: push every event to every neighbour
        self._origins: dict[str, int | None] = {}  # replica id -> its agent, parsed once (None: flood its events)
        self.known: dict[int, VectorClock] = {n: {} for n in self.remote}
        self.sent: dict[int, VectorClock] = {n: {} for n in self.remote}
        self.settled: dict[int, VectorClock] = {n: {} for n in self.remote}
        self.peer_digests: dict[int, str] = {}
        self.in_step: dict[int, int] = {}  # neighbour -> e-graph version at which an exchange found its digest equal
        self.pending_acks: set[int] = set()
        self.resend: set[int] = set()  # neighbours found lacking what they were sent: the next push sends them everything
        # Per stream component (subjects.ADOPTED_SENDERS), per replica of it: how many of its events in a row
        # this agent adopted; what it acks to the component (not a clock entry: see adopt).
        self.adopted: dict[int, dict[str, int]] = {}
        self.dirty = False  # learned something the rewrite family has not been applied to
        self.last_input = self.last_rewrite = 0.0  # time.monotonic() of the last news and the last rewrite pass
        self.sent_count = self.received_count = self.syncs_completed = 0
        self.started = time.time()

    @property
    def replica(self) -> str:
        return self.egraph.replica

    def continue_as(self, replica: str) -> None:
        """Carry on the e-graph replica of an earlier life that stopped cleanly (agent/snapshots.py, seals);
        before this life has made any event. The timeline's recorder keeps this life's own id."""
        if self.egraph.version:
            raise RuntimeError(f"agent {self.id}: cannot take replica id {replica!r} after changing its e-graph")
        self.egraph.replica = replica

    # --- local input --------------------------------------------------------------

    def submit(self, term: Term) -> str:
        """Add a term (tagged with this agent's colour); returns its class id."""
        class_id = self.egraph.add_term(term, self.colour)
        self._news()
        self.recorder.record("submit", payload={"term": str(term), "class": class_id})
        return class_id

    def prove(self, lhs: Term, rhs: Term) -> tuple[bool | None, Counterexample | None]:
        """Add both sides (so the network works on them) and say what is known of them yet: True
        (proven equal), False (refuted, with the counterexample) or None (not proven yet)."""
        a, b = self.egraph.add_term(lhs, self.colour), self.egraph.add_term(rhs, self.colour)
        self._news()
        counterexample = None
        equal: bool | None = True
        if self.egraph.find(a) != self.egraph.find(b):
            counterexample = refute(lhs, rhs)
            equal = None if counterexample is None else False
        self.recorder.record("prove", payload={"lhs": str(lhs), "rhs": str(rhs), "equal": equal})
        return equal, counterexample

    def rewrite(self) -> SaturationReport | None:
        """One time-sliced pass of the colour's rewrite family; leaves `dirty` set if it ran out of slice."""
        if not self.dirty:
            return None
        if len(self.egraph) >= self.settings.node_cap or not self._any_rule_can_match():
            self.dirty = False
            return None
        version = self.egraph.version
        self.last_rewrite = time.monotonic()
        report = self.saturation.run()
        self.dirty = report.stop_reason in _KEEP_GOING
        if self.egraph.version != version:
            self.recorder.record(
                "rewrite", payload={"family": self.colour.value, "matches": report.matches, "nodes": report.nodes,
                                    "stop": report.stop_reason.value},
            )  # fmt: skip
        return report

    def rewritten_elsewhere(self) -> None:
        """Another agent of this colour searches this one's news (AgentHost._searcher), and what it derives
        comes here: take the news as searched, without searching it."""
        self.saturation.skip()
        self.dirty = False

    def _any_rule_can_match(self) -> bool:
        """False when every rule needs a constant (e.g. GREEN's 0 and 1) this replica lacks: skip the pass."""
        lookup = self.egraph.lookup
        return any(all(lookup(leaf) is not None for leaf in needs) for needs in self._needs)

    def _news(self) -> None:
        self.dirty = True
        self.last_input = time.monotonic()
        if self.shared is not None and self.shared.on_news is not None:
            self.shared.on_news()

    # --- replication ----------------------------------------------------------------

    def learn(self, neighbour: int, clock: VectorClock) -> None:
        """`neighbour` has seen `clock`."""
        if neighbour in self.known:
            raise_to(self.known[neighbour], clock)
            raise_to(self.sent[neighbour], clock)

    def receive(self, sender: int, delta: Delta) -> int:
        """Join a delta pushed by a neighbour; returns how many e-nodes were new here."""
        before, version = len(self.egraph), self.egraph.version
        self.egraph.join(delta)
        if self.relay is not None:
            for replica in {batch[0] for batch in delta.batches}:
                if not self.relay.forwards(sender, self._origin(replica), self.id):
                    self._origins[replica] = None  # it came off its tree: from here on, to every neighbour
        self.learn(sender, delta.clock)
        self.pending_acks.add(sender)
        if self.egraph.version != version:
            self._news()
        return len(self.egraph) - before

    def adopt(self, sender: int, delta: Delta) -> int:
        """Take what a stream component derived as this agent's own event (EGraph.adopt), so the component's
        replica ids (one per worker life and pod) never enter the network's clocks; returns how many e-nodes
        were new here. A gap in the component's events stops the count it is acked, so it sends them again."""
        before = len(self.egraph)
        if self.egraph.adopt(delta):
            self._news()
        counts = self.adopted.setdefault(sender, {})
        for origin, seq in sorted((batch[0], batch[1]) for batch in delta.batches):
            if seq == counts.get(origin, 0) + 1:
                counts[origin] = seq
        self.pending_acks.add(sender)
        return len(self.egraph) - before

    def ack_for(self, sender: int) -> VectorClock:
        """What an ack to `sender` says this agent holds: its clock, or to a stream component what it adopted."""
        adopted = self.adopted.get(sender)
        return dict(adopted) if adopted is not None else self.egraph.clock

    def deltas_to_push(self) -> list[tuple[int, Delta]]:
        """What each neighbour has not been sent yet, less what others relay to it; marks it all sent."""
        out = []
        clock = self.egraph.clock
        for n in self.remote:
            delta = self._unsent(n, clock, self.sent[n])
            if delta:
                out.append((n, delta))
        return out

    def _unsent(self, n: int, clock: VectorClock, seen: VectorClock) -> Delta:
        """The events of `clock` that neighbour `n` has not `seen` (nor been sent), less those others relay to it;
        marks them all sent to `n`."""
        sent = self.sent[n]
        if n in self.resend:
            self.resend.discard(n)
            others_relay = {}
        else:
            others_relay = {replica: seq for replica, seq in clock.items() if seq > seen.get(replica, 0) and not self._relays(replica, n)}
        delta = self.egraph.delta_since(merge(seen, others_relay) if others_relay else seen)
        if delta or others_relay:
            raise_to(sent, clock)
        return delta

    def _relays(self, replica: str, neighbour: int) -> bool:
        return self.relay is None or self.relay.forwards(self.id, self._origin(replica), neighbour)

    def _origin(self, replica: str) -> int | None:
        """The agent whose tree the replica's events travel down here; None: they go to every neighbour."""
        if replica not in self._origins:
            self._origins[replica] = agent_of(replica)
        return self._origins[replica]

    def sync_request(self) -> dict[str, Any]:
        return {"digest": self.egraph.digest(), "clock": self.egraph.clock, "floor": self.egraph.floor}

    def _exchanged(self, neighbour: int, clock: VectorClock) -> bool:
        """A sync exchange says `neighbour` has seen `clock`: resend what it should have had by now.
        True if it lacked some of that (lost, or it restarted with nothing)."""
        lost = neighbour in self.sent and not dominates(clock, self.settled[neighbour])
        if lost:
            # Pushed an interval ago and still missing. Its own clock is the truth: resend everything
            # from there, whatever it was thought to have, and what others relay to it too (its tree
            # parent may be gone or cut off): the next push would count that as sent once more.
            self.known[neighbour] = dict(clock)
            self.sent[neighbour] = dict(clock)
            self.resend.add(neighbour)
        self.learn(neighbour, clock)
        if neighbour in self.sent:
            self.settled[neighbour] = dict(self.sent[neighbour])
        self.compact()
        return lost

    def compact(self) -> None:
        """Drop into the checkpoint the events every neighbour is known to have (and this replica has): of a
        shared e-graph, every neighbour of every agent holding it."""
        self.egraph.compact_seen_by([clock for member in self.group for clock in member.known.values()])

    def answer_sync(self, sender: int, request: dict[str, Any]) -> dict[str, Any]:
        """Reply to a digest: equal, or the delta the asker's clock has not seen (less pushes still in flight)."""
        clock = request["clock"]
        self.egraph.raise_floor(request.get("floor", 0))
        lost = self._exchanged(sender, clock)
        self.peer_digests[sender] = request["digest"]
        reply = self.sync_request()
        if request["digest"] != reply["digest"]:
            # The transport encodes the delta if it leaves the process.
            if sender in self.sent and not lost:
                # Less pushes that may be in flight and what others relay to it (as a push would), all counted
                # as sent, so the next push does not carry it again: a burst's repair rounds sent what pushes
                # and relays were bringing anyway, and pushes then sent it once more.
                reply["delta"] = self._unsent(sender, self.egraph.clock, merge(clock, self.sent[sender]))
            else:  # everything it lacks (after a loss the next push resends too, should this answer be lost, but not all)
                reply["delta"] = self.egraph.delta_since(clock)
                self.resend.discard(sender)
        else:
            self._in_step(sender)
        return reply

    def absorb_sync_reply(self, neighbour: int, reply: dict[str, Any]) -> tuple[str, int]:
        """Take a neighbour's sync reply; returns ("equal" | "pulled" | "pushed", new e-nodes).

        "pushed": the delta was too large for a reply and comes as a state message instead.
        """
        new = 0
        self.egraph.raise_floor(reply.get("floor", 0))
        if "delta" in reply:
            before, version = len(self.egraph), self.egraph.version
            self.egraph.join(Delta.from_wire(reply["delta"]))
            new = len(self.egraph) - before
            if self.egraph.version != version:
                self._news()
        self._exchanged(neighbour, reply["clock"])
        self.peer_digests[neighbour] = reply["digest"]
        if reply["digest"] == self.egraph.digest():
            self._in_step(neighbour)
        self.syncs_completed += 1
        if "delta" in reply:
            return "pulled", new
        return ("pushed" if reply.get("pushed") else "equal"), new

    def _in_step(self, neighbour: int) -> None:
        if neighbour in self.known:
            self.in_step[neighbour] = self.egraph.version

    def in_step_by_digest(self) -> None:
        """Neighbours whose last heard digest is this replica's hold its present state: in step, as an
        exchange that found the digests equal would say (at start, so equal replicas skip the catch-up)."""
        digest = self.egraph.digest()
        for neighbour, theirs in self.peer_digests.items():
            if theirs == digest:
                self._in_step(neighbour)

    def out_of_step(self) -> list[int]:
        """Neighbours a repair round should visit: all but those known to hold this replica's present state."""
        version, digest, peers = self.egraph.version, self.egraph.digest(), self.peer_digests
        return [n for n in self.remote if self.in_step.get(n) != version or peers.get(n) != digest]

    # --- reporting ----------------------------------------------------------------------

    def agreeing_neighbours(self) -> list[int]:
        digest = self.egraph.digest()
        return [n for n in self.neighbours if n in self.local or self.peer_digests.get(n) == digest]

    def heartbeat(self) -> dict[str, Any]:
        return {"agent": self.id, "digest": self.egraph.digest(), "nodes": len(self.egraph),
                "events": sum(self.egraph.clock.values()), "time": time.time()}  # fmt: skip

    def state(self, node: str) -> dict[str, Any]:
        """What GET /agent/{id}/state answers: deployment guide 001's fields first (e-nodes,
        neighbours, messages and syncs counted since this run started), then the replica's own."""
        return {
            "agent_id": self.id,
            "node_id": node,  # the pod (or host) running the agent
            "egraph_nodes": len(self.egraph),
            "neighbors": list(self.neighbours),
            "messages_received": self.received_count,
            "messages_sent": self.sent_count,
            "syncs_completed": self.syncs_completed,
            "uptime_seconds": round(time.time() - self.started, 3),
            "replica": self.replica,
            "colour": self.colour.value,
            "polarity": self.colour.polarity,
            "display": self.node.display,
            "clock": self.egraph.clock,
            "lamport": self.recorder.lamport,
            "digest": self.egraph.digest(),
            "agreeing_neighbors": self.agreeing_neighbours(),
        }
