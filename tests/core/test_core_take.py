"""Taking deltas (EGraph.take) and settling later, or copying the closure of a replica of the
same process that holds the same events (Closures), gives exactly the state that joining them
as they come gives: by property, with reads, local edits and duplicates interleaved."""

import random

from core_strategies import histories, naive_closure, play
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.egraph import Closures, EGraph
from agentnet_runtime.core.terms import parse


def state(egraph: EGraph):
    """What the replicas must agree on: digest, the sets, the classes and the clock."""
    digest = egraph.digest()  # (a read: settles first)
    classes = {node: egraph.find(node) for node in egraph._nodes}
    return digest, frozenset(egraph._nodes), frozenset(egraph._unions), classes, egraph.clock


@settings(max_examples=60)
@given(st.lists(st.lists(histories(max_ops=3), min_size=4, max_size=4), min_size=1, max_size=4),
       st.randoms(use_true_random=False))  # fmt: skip
def test_taking_deltas_and_reading_later_is_joining_them_as_they_come(rounds, rng: random.Random):
    """Three sources edit; a taker takes their deltas (duplicates too), reads now and then and edits
    locally; a joiner joins the same deltas and the taker's own events: they hold the same state."""
    sources = [EGraph(f"s{i}") for i in range(3)]
    taker, joiner = EGraph("x"), EGraph("j")
    for *edits, local in rounds:
        for source, history in zip(sources, edits):
            play(source, history, rng.choice(list(Colour)))
        deltas = [source.delta_since(taker.clock) for source in sources for _ in range(rng.choice([1, 1, 2]))]
        rng.shuffle(deltas)
        for delta in deltas:
            joiner.join(delta)
            assert taker.take(delta) >= 0
        if rng.random() < 0.5:  # a read settles
            assert len(taker) == len(joiner) and not taker.unsettled
        if rng.random() < 0.5:  # a local edit settles first
            play(taker, local, Colour.BLUE)
            joiner.join(taker.delta_since(joiner.clock))
    assert taker.clock == joiner.clock  # the clock moves at take, before anything settles
    assert state(taker)[:-1] == state(joiner)[:-1]
    assert {node: taker.find(node) for node in taker._nodes} == {
        node: root for node, root in naive_closure(taker).items() if node in taker._nodes
    }


def test_a_read_settles_and_a_checkpoint_is_joined_at_once():
    source = EGraph("s")
    source.add_term(parse("a*(b+c)"))
    taker = EGraph("x")
    taker.take(source.delta_since({}))
    assert taker.unsettled and taker.settled_len() == 0  # nothing applied yet
    assert taker.digest() == source.digest() and not taker.unsettled
    source.compact(source.clock)  # compacted: the next delta to a fresh replica carries a checkpoint
    fresh = EGraph("y")
    fresh.take(source.delta_since({}))
    assert not fresh.unsettled and fresh.digest() == source.digest()


def rebuilt(egraph: EGraph) -> EGraph:
    """A replica that joined exactly `egraph`'s events itself: the state those events make."""
    return EGraph("r").join(egraph.delta_since({}))


@settings(max_examples=60)
@given(histories(), st.lists(histories(max_ops=3), min_size=3, max_size=3), st.randoms(use_true_random=False))
def test_replicas_that_settle_at_the_same_events_copy_one_closure_and_go_on_independently(shared, afterwards, rng):
    """Three replicas of one process take the same events: the first to settle absorbs them and the
    others copy its closure. Each then edits and takes on its own, and each stays exactly the state
    its own events make (nothing is shared after the copy that one could change under another)."""
    source = play(EGraph("s"), shared)
    closures = Closures()
    takers = [EGraph(f"t{i}") for i in range(3)]
    for taker in takers:
        taker.closures = closures
        taker.take(source.delta_since({}))
    order = list(range(3))
    rng.shuffle(order)
    for i in order:
        takers[i].settle()
        takers[i].digest()  # kept up to date from here on, and copied with the closure
    assert closures.copies == 2  # one absorbed, two copied
    assert len({state(taker)[0] for taker in takers}) == 1
    for taker, history in zip(takers, afterwards):
        play(taker, history, Colour.RED)
    more = play(EGraph("m"), afterwards[0]).delta_since({})
    for taker in takers:
        taker.take(more)
    for taker in takers:
        assert state(taker)[:-1] == state(rebuilt(taker))[:-1]
        assert {node: taker.find(node) for node in taker._nodes} == {
            node: root for node, root in naive_closure(taker).items() if node in taker._nodes
        }


def test_a_replica_whose_events_differ_is_no_twin():
    closures = Closures()
    a, b = EGraph("a"), EGraph("b")
    a.closures = b.closures = closures
    source = EGraph("s")
    source.add_term(parse("a+b"))
    first = source.delta_since({})
    source.add_term(parse("c*d"))
    both = source.delta_since({})
    a.take(first)
    a.settle()
    b.take(both)
    b.add_term(parse("e"))  # settles b: the registry holds `a` at fewer events
    assert closures.copies == 0
    a.take(both)
    a.settle()  # b has its own event too: different events, so `a` absorbs
    assert closures.copies == 0 and a.digest() != b.digest()
