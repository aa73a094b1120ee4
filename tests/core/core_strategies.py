"""Hypothesis strategies and small reference implementations shared by the core tests."""

import json
from collections import Counter

from hypothesis import currently_in_test_context, event
from hypothesis import strategies as st

from agentnet_runtime.core.clock import merge
from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.core.events import EPOCH_SECONDS
from agentnet_runtime.core.terms import INFIX, Term

VARIABLES = st.sampled_from(["a", "b", "c", "x", "y", "z", "foo", "_v1"])
NUMBERS = st.sampled_from(["0", "1", "2", "10", "2.5", "0.125"])


def terms(operators=tuple(INFIX), calls: bool = True, variables=VARIABLES, numbers=NUMBERS, max_leaves: int = 12):
    """Any term the language can print: infix operators, and f(...)/g(...) calls."""
    leaves = st.one_of(variables, numbers).map(Term)

    def extend(children):
        infix = st.tuples(st.sampled_from(operators), children, children).map(lambda t: Term(t[0], (t[1], t[2])))
        if not calls:
            return infix
        call = st.tuples(st.sampled_from(["f", "g"]), st.lists(children, min_size=1, max_size=3)).map(
            lambda t: Term(t[0], tuple(t[1]))
        )
        return infix | call

    return st.recursive(leaves, extend, max_leaves=max_leaves)


# Small arithmetic terms over few variables, so replicas share structure.
arith_terms = terms(
    ("+", "*"), calls=False, variables=st.sampled_from("abc"), numbers=st.sampled_from(["0", "1"]), max_leaves=5
)


@st.composite
def histories(draw, max_ops: int = 8, numbers=st.sampled_from(["0", "1"]), operators=("+", "*")):
    """A replica's local history, each op one event:

    - ("add", term): a small term over a, b, c and `numbers`, built with `operators`;
    - ("union", i, j): a union of any two classes the replica holds (subterms too, not only
      what was added): `play` takes the i-th and j-th of its e-node ids, in id order;
    - ("congruent", f, i, j): f(i) and f(j) of two such classes, then their union, so the
      congruence closure must merge f(i) and f(j) (and whatever else is built over them).
    """
    term = terms(operators, calls=False, variables=st.sampled_from("abc"), numbers=numbers, max_leaves=5)
    ops = []
    added = 0
    for _ in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["add", "union", "congruent"])) if added else "add"
        if kind == "add":
            ops.append(("add", draw(term)))
            added += 1
        elif kind == "union":
            ops.append(("union", draw(st.integers(0, 63)), draw(st.integers(0, 63))))
        else:
            ops.append(("congruent", draw(st.sampled_from(["f", "g"])), draw(st.integers(0, 63)), draw(st.integers(0, 63))))
    return ops


def play(egraph: EGraph, history, colour=None, stats: Counter | None = None) -> EGraph:
    """Apply a history to a replica; each op is one event (the clock is read after it).

    Counts in `stats` (and reports as hypothesis events) the unions that merged classes and
    those whose merge made others congruent (the closure merged more than the two classes).
    """
    stats = Counter() if stats is None else stats
    for op in history:
        if op[0] == "add":
            egraph.add_term(op[1]) if colour is None else egraph.add_term(op[1], colour)
        else:
            ids = sorted(egraph._nodes)
            a, b = ids[op[-2] % len(ids)], ids[op[-1] % len(ids)]
            if op[0] == "congruent":
                egraph.add_node(op[1], [a], colour or Colour.GREEN)
                egraph.add_node(op[1], [b], colour or Colour.GREEN)
            before = egraph.class_count()
            if egraph.union(a, b):
                stats["unions"] += 1
                if before - egraph.class_count() > 1:
                    stats["congruence merges"] += 1
        egraph.clock
    if currently_in_test_context():
        for name in ("unions", "congruence merges"):
            event(f"{name} > 0", bool(stats[name]))
    return egraph


def naive_closure(egraph: EGraph) -> dict[str, str]:
    """Congruence closure of an e-graph's node and union sets by brute-force fixpoint.

    Returns node id -> smallest id in its class, over node ids and union ends.
    """
    nodes = {node: egraph.node(node) for node in egraph._nodes}
    ids = set(nodes) | {end for pair in egraph._unions for end in pair}
    for op, kids in nodes.values():
        ids.update(kids)
    parent = {i: i for i in ids}

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    def join(a, b):
        a, b = find(a), find(b)
        if a != b:
            parent[max(a, b)] = min(a, b)
            return True
        return False

    for a, b in egraph._unions:
        join(a, b)
    changed = True
    while changed:
        changed = False
        shapes = {}
        for node, (op, kids) in nodes.items():
            shape = (op, *map(find, kids))
            if shape in shapes:
                changed |= join(shapes[shape], node)
            else:
                shapes[shape] = node
    return {i: find(i) for i in ids}


# --- networks of replicas that gossip, compact, restart and (under a budget) evict ------------


class Wall:
    """A wall clock a test moves by hand (seconds), for an EGraph's epochs."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@st.composite
def gossip(draw, replicas: int = 3, max_steps: int = 40):
    """A schedule for `replicas` replicas, one step at a time:

    - ("edit", r, history): replica r plays a history (see histories);
    - ("tick", r, epochs): r's wall clock moves on that many epochs (clocks drift apart);
    - ("send", src, dst, copies, fresh): src sends dst a delta since dst's real clock (fresh, as
      after a sync request) or since the clock src last heard from dst (stale: it may be below
      src's base, and get a checkpoint); 0 copies is a loss, 2 a duplicate;
    - ("deliver", k): the k-th message in flight (mod their number) arrives: any order;
    - ("compact", r, everything): r compacts what it and every peer it heard from share, or
      (everything) all it has, so that peers behind it get checkpoints;
    - ("restart", r, how): r's process restarts: "empty" or from its "snapshot" with a new boot,
      or "sealed": after a clean stop, from its last snapshot under the same replica id (a seal
      says that snapshot holds every event of the id, so numbering carries on; agent/snapshots.py).
    """
    nodes = st.integers(0, replicas - 1)
    steps = [("edit", 0, draw(histories(max_ops=3)))]
    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(st.sampled_from(["edit", "edit", "tick", "send", "send", "deliver", "deliver", "compact", "compact", "restart"]))
        if kind == "edit":
            steps.append(("edit", draw(nodes), draw(histories(max_ops=3))))
        elif kind == "tick":
            steps.append(("tick", draw(nodes), draw(st.integers(1, 3))))
        elif kind == "send":
            steps.append(("send", draw(nodes), draw(nodes), draw(st.sampled_from([0, 1, 1, 2])), draw(st.booleans())))
        elif kind == "deliver":
            steps.append(("deliver", draw(st.integers(0, 1000))))
        elif kind == "compact":
            steps.append(("compact", draw(nodes), draw(st.booleans())))
        else:  # a new life that soon says something, so peers hear of its boot
            restarted = draw(nodes)
            steps += [("restart", restarted, draw(st.sampled_from(["empty", "snapshot", "sealed"]))), ("edit", restarted, draw(histories(max_ops=2)))]
    return steps


class Network:
    """Replicas `<i>.<boot>` that run a gossip schedule; `settle()` is anti-entropy until quiet."""

    def __init__(self, size: int, max_nodes: int | None = None):
        self.max_nodes = max_nodes
        self.walls = [Wall() for _ in range(size)]
        self.boots = [10] * size  # hex boots a, b, c...: each restart a later one
        self.replicas = [EGraph(f"{i}.{self.boots[i]:x}", max_nodes, self.walls[i]) for i in range(size)]
        self.known = [[{} for _ in range(size)] for _ in range(size)]  # known[i][j]: j has seen this (i heard)
        self.in_flight: list = []  # (dst, src, delta)
        self.checkpoints = 0  # deltas sent that carried a checkpoint

    def run(self, schedule) -> "Network":
        for step in schedule:
            getattr(self, step[0])(*step[1:])
        return self

    def edit(self, r, history):
        play(self.replicas[r], history)

    def tick(self, r, epochs):
        self.walls[r].now += EPOCH_SECONDS * epochs

    def send(self, src, dst, copies, fresh):
        if src != dst:
            since = self.replicas[dst].clock if fresh else self.known[src][dst]
            delta = self.replicas[src].delta_since(since)
            self.checkpoints += delta.checkpoint is not None
            self.in_flight += [(dst, src, Delta.from_wire(json.loads(json.dumps(delta.to_wire()))))] * copies

    def deliver(self, k):
        if self.in_flight:
            dst, src, delta = self.in_flight.pop(k % len(self.in_flight))
            self.replicas[dst].join(delta)
            self.known[dst][src] = merge(self.known[dst][src], delta.clock)

    def compact(self, r, everything):
        own = self.replicas[r].clock
        if everything:
            self.replicas[r].compact(own)
        else:  # as an agent does (agent.compact)
            self.replicas[r].compact_seen_by([known for j, known in enumerate(self.known[r]) if j != r])

    def restart(self, r, how):
        if how != "sealed":
            self.boots[r] += 1
        replica = EGraph(f"{r}.{self.boots[r]:x}", self.max_nodes, self.walls[r])
        if how != "empty":
            replica.join(Delta.from_wire(json.loads(json.dumps(self.replicas[r].to_wire()))))
        self.replicas[r] = replica
        self.known[r] = [{} for _ in self.replicas]

    def settle(self, rounds: int = 8) -> bool:
        """Deliver what is in flight, then full anti-entropy rounds; True once every digest agrees."""
        while self.in_flight:
            self.deliver(0)
        for _ in range(rounds):
            self.exchange()
            if len({replica.digest() for replica in self.replicas}) == 1:
                self.exchange()  # and every replica hears every other's clock
                return True
        return False

    def exchange(self) -> None:
        """Every replica sends every other what its clock lacks, delivered at once."""
        for src in range(len(self.replicas)):
            for dst in range(len(self.replicas)):
                if src != dst:
                    self.send(src, dst, 1, True)
                    self.deliver(len(self.in_flight) - 1)

