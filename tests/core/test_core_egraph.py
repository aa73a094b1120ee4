import json

import pytest
from core_strategies import arith_terms, histories, naive_closure, play
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.egraph import Delta, EGraph, node_id
from agentnet_runtime.core.events import _RecentBatches
from agentnet_runtime.core.terms import parse


def test_ids_are_content_addresses_shared_by_replicas():
    a, b = EGraph("a"), EGraph("b")
    term = parse("(x + y) * z")
    assert a.add_term(term) == b.add_term(term)
    assert set(a._nodes) == set(b._nodes)
    x = a.lookup(parse("x"))
    assert x == node_id("x", ()) and len(x) == 16
    assert a.add_term(term) == a.lookup(term)  # adding again adds nothing
    assert len(a) == 5


def test_union_find_and_congruence():
    g = EGraph("a")
    fx, fy = g.add_term(parse("f(x)")), g.add_term(parse("f(y)"))
    x, y = g.lookup(parse("x")), g.lookup(parse("y"))
    assert not g.equivalent(parse("f(x)"), parse("f(y)"))
    assert g.union(x, y)
    assert not g.union(x, y)  # already one class
    assert g.find(x) == g.find(y) == min(x, y)  # a class is named by its smallest id
    g.rebuild()
    assert g.find(fx) == g.find(fy)  # congruence: x = y gives f(x) = f(y)
    assert g.equivalent(parse("f(x)"), parse("f(y)"))
    assert g.lookup(parse("f(z)")) is None
    assert not g.equivalent(parse("f(x)"), parse("f(z)"))


def test_unknown_ids_are_errors():
    g = EGraph("a")
    g.add_term(parse("x"))
    with pytest.raises(KeyError, match="unknown e-node id"):
        g.find("0" * 16)
    with pytest.raises(KeyError, match="unknown e-node id"):
        g.union(g.lookup(parse("x")), "f" * 16)
    with pytest.raises(KeyError, match="unknown e-node id"):
        g.add_node("+", ["0" * 16, "1" * 16])
    with pytest.raises(ValueError, match="replica id"):
        EGraph("")


@settings(max_examples=60)
@given(histories(max_ops=12))
def test_rebuild_matches_a_brute_force_congruence_closure(history):
    g = play(EGraph("a"), history)
    g.rebuild()
    assert {node: g.find(node) for node in naive_closure(g)} == naive_closure(g)


def test_colour_tags_merge_as_a_set():
    a, b = EGraph("a"), EGraph("b")
    a.add_term(parse("x + y"), Colour.RED)
    b.add_term(parse("x + y"), Colour.BLUE)
    b.add_term(parse("x"), Colour.GREEN)
    a.join(b)
    b.join(a)
    x_plus_y = a.lookup(parse("x + y"))
    assert a.tags(x_plus_y) == b.tags(x_plus_y) == (Colour.RED, Colour.BLUE)
    assert a.tags(a.lookup(parse("x"))) == (Colour.RED, Colour.BLUE, Colour.GREEN)
    assert a.digest() == b.digest()
    before = a.digest()
    a.join(b)  # nothing new: tags never regress or flip
    assert a.digest() == before


def test_clock_counts_events_and_delta_since_sends_only_what_is_new():
    a = EGraph("a")
    assert a.clock == {}
    a.add_term(parse("x + y"))
    a.add_term(parse("x * y"))  # same open batch: one event
    assert a.clock == {"a": 1}
    a.add_term(parse("z"))
    assert a.clock == {"a": 2}
    b = EGraph("b").join(a.delta_since({}))
    assert b.clock == {"a": 2}
    assert not a.delta_since(b.clock)  # b has everything
    a.add_term(parse("w"))
    delta = a.delta_since(b.clock)
    assert delta.node_count == 1 and [batch[:2] for batch in delta.batches] == [("a", 3)]


def test_early_deltas_wait_for_the_gap():
    a, b = EGraph("a"), EGraph("b")
    deltas = []
    for name in ("p", "q", "r"):
        clock = a.clock
        a.add_term(parse(name))
        deltas.append(a.delta_since(clock))
    b.join(deltas[2])
    b.join(deltas[1])
    assert b.clock == {}  # events 2 and 3 arrived but 1 is missing
    assert b.lookup(parse("r")) is not None
    b.join(deltas[0])
    assert b.clock == {"a": 3}
    assert b.digest() == a.digest()


def test_parent_before_child_is_fine():
    a = EGraph("a")
    a.add_term(parse("x"))
    clock = a.clock
    a.add_term(parse("f(x, y)"))
    b = EGraph("b").join(a.delta_since(clock))  # has f(x, y) and y but not x
    assert b.lookup(parse("f(x, y)")) is None
    b.join(a.delta_since({}))
    assert b.digest() == a.digest() and b.equivalent(parse("f(x, y)"), parse("f(x, y)"))


@settings(max_examples=40)
@given(histories(), histories())
def test_wire_round_trip_through_json(first, second):
    a = play(EGraph("a"), first)
    a.join(play(EGraph("b"), second))
    wire = json.loads(json.dumps(a.to_wire()))
    restored = EGraph.from_wire(wire)
    assert restored.replica == "a"
    assert restored.digest() == a.digest()
    assert restored.clock == a.clock
    assert EGraph.from_wire(wire, replica="c").replica == "c"
    delta_wire = json.loads(json.dumps(a.delta_since({"a": 1}).to_wire()))
    assert Delta.from_wire(delta_wire) == a.delta_since({"a": 1})


def test_wire_is_compact_and_plain():
    a = EGraph("agent-3")
    a.union(a.add_term(parse("x * 1")), a.add_term(parse("x")))
    wire = a.to_wire()
    assert wire["kind"] == "agentnet.egraph.state" and wire["replica"] == "agent-3"
    assert wire["clock"] == {"agent-3": 1}
    [[origin, seq, nodes, unions, tags, epoch]] = wire["batches"]
    assert (origin, seq, tags) == ("agent-3", 1, []) and type(epoch) is int and epoch > 0
    assert sorted(row[2] for row in nodes) == ["*", "1", "x"]
    assert all(isinstance(value, (str, int)) for row in nodes for value in row)
    assert len(unions) == 1


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda w: w.update(kind="something"), "not an e-graph delta"),
        (lambda w: w.update(version=99), "unsupported e-graph wire version"),
        (lambda w: w["batches"][0][2][0].__setitem__(2, "-"), "does not match its content"),
        (lambda w: w["batches"][0][2][0].__setitem__(1, 99), "malformed e-node"),
        (lambda w: w.update(clock={"a": -1}), "vector clock"),
        (lambda w: w["batches"][0].__setitem__(1, "one"), "malformed batch header"),
        (lambda w: w.pop("batches"), "malformed e-graph wire form"),
        (lambda w: w["batches"][0].__setitem__(5, -1), "epoch must be a non-negative int"),
        (lambda w: w.update(floor="high"), "floor must be a non-negative int"),
        (lambda w: w.update(checkpoint={"base": {}, "nodes": [["0" * 16, [1], "x"]], "unions": []}), "epochs must be a list of 4"),
        (lambda w: w.update(checkpoint={"base": {}, "nodes": [["0" * 16, [1, 1, 0, 0], "x"]], "unions": []}), "does not match its content"),
        (lambda w: w.update(checkpoint={"base": {}, "nodes": [], "unions": [["a", "b", 1]]}), "malformed checkpoint union"),
    ],
)
def test_from_wire_rejects_bad_input(tamper, message):
    a = EGraph("a")
    a.add_term(parse("x + y"))
    wire = a.to_wire()
    tamper(wire)
    with pytest.raises(ValueError, match=message):
        EGraph.from_wire(wire)


@settings(max_examples=30)
@given(st.lists(arith_terms, min_size=1, max_size=5))
def test_fork_and_stats(terms):
    a = EGraph("a")
    for term in terms:
        a.add_term(term)
    b = a.fork("b")
    assert b.replica == "b" and b.digest() == a.digest() and len(b) == len(a)
    stats = a.stats()
    assert stats["nodes"] == len(a) and stats["digest"] == a.digest() and stats["clock"] == a.clock
    json.dumps(stats)


def test_memo_of_recent_wire_batches_keeps_a_bounded_window_oldest_out_first():
    """The memo of checked and written wire batches holds about `rows` e-nodes; the oldest batch goes first."""
    recent = _RecentBatches(rows=100)

    def batch(nodes: int) -> tuple:
        return ("origin", 1, tuple(range(nodes)), (), (), 1)

    for key in range(30):
        recent.put(key, batch(9), [key])  # 10 rows each, counting the batch itself
    assert recent.rows == 100
    assert [key for key in range(30) if recent.get(key) is not None] == list(range(20, 30))
    recent.put(25, batch(4), [25])  # a batch put again replaces its old rows and goes to the end
    recent.put(30, batch(9), [30])
    assert recent.rows <= 100 and recent.get(25) is not None and recent.get(20) is None
    recent.put("state", batch(11), ["state"])  # larger than a tenth of the window: not kept
    assert recent.get("state") is None
