"""Hypothesis strategies and small reference implementations shared by the core tests."""

from collections import Counter

from hypothesis import currently_in_test_context, event
from hypothesis import strategies as st

from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.egraph import EGraph
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
