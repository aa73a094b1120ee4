"""The CRDT laws, by property: join is commutative, associative and idempotent, and
replicas that exchange deltas in any order, with duplicates and losses repaired by
resending, converge to the same digest."""

import random
from collections import Counter

from core_strategies import arith_terms, histories, play
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.rewrites import ALL_RULES
from agentnet_runtime.core.extract import extract
from agentnet_runtime.core.saturate import Budget, saturate

COLOURS = st.sampled_from(list(Colour))


def test_histories_make_congruence_merges():
    """The join laws above are only as strong as the histories: they must union classes anywhere
    in a replica and make congruence merges (a union whose closure merges more), not only add terms."""
    seen: Counter = Counter()

    @settings(max_examples=200, database=None, derandomize=True)  # a fixed sample: the ratios below are of it, not of luck
    @given(histories())
    def run(history):
        stats: Counter = Counter()
        play(EGraph("a"), history, stats=stats)
        seen["histories"] += 1
        seen["with unions"] += stats["unions"] > 0
        seen["with congruence merges"] += stats["congruence merges"] > 0

    run()
    assert seen["with unions"] / seen["histories"] >= 0.5, seen
    assert seen["with congruence merges"] / seen["histories"] >= 0.2, seen


def replica(name, history, colour=Colour.GREEN):
    return play(EGraph(name), history, colour)


def joined(*replicas):
    """A fresh replica holding the join of full states, left to right."""
    result = EGraph("j")
    for other in replicas:
        result.join(other.delta_since({}))
    return result


def state(egraph):
    """Everything the join must agree on: digest (nodes, classes, tags) and the sets themselves."""
    return egraph.digest(), frozenset(egraph._nodes), frozenset(egraph._unions)


@settings(max_examples=80)
@given(histories(), histories(), COLOURS, COLOURS)
def test_join_is_commutative(first, second, colour_a, colour_b):
    a, b = replica("a", first, colour_a), replica("b", second, colour_b)
    assert state(joined(a, b)) == state(joined(b, a))
    assert state(a.fork("x").join(b)) == state(b.fork("y").join(a))  # joining replicas directly


@settings(max_examples=60)
@given(histories(), histories(), histories())
def test_join_is_associative(first, second, third):
    a, b, c = replica("a", first), replica("b", second, Colour.RED), replica("c", third, Colour.BLUE)
    left = joined(a, b).join(c.delta_since({}))
    right = EGraph("j").join(a.delta_since({})).join(joined(b, c).delta_since({}))
    assert state(left) == state(right)


@settings(max_examples=60)
@given(histories(), histories())
def test_join_is_idempotent(first, second):
    a, b = replica("a", first), replica("b", second)
    assert state(joined(a, a)) == state(joined(a))
    ab = joined(a, b)
    before = state(ab)
    ab.join(b.delta_since({}))
    ab.join(ab.delta_since({}))
    ab.join(a)
    assert state(ab) == before


@settings(max_examples=40)
@given(
    st.lists(st.lists(histories(max_ops=4), min_size=3, max_size=3), min_size=1, max_size=4),
    st.randoms(use_true_random=False),
)
def test_any_delivery_order_duplication_or_loss_converges(rounds, rng: random.Random):
    """Three replicas edit in rounds and gossip deltas that the network shuffles, duplicates
    and drops; anti-entropy (resend what the peer's clock lacks) repairs the losses."""
    replicas = [EGraph(name) for name in ("r0", "r1", "r2")]
    in_flight = []
    for edits in rounds:
        for egraph, history in zip(replicas, edits):
            play(egraph, history, rng.choice(list(Colour)))
        for sender in replicas:
            for receiver in replicas:
                if sender is not receiver:
                    delta = sender.delta_since(receiver.clock)
                    in_flight += [(receiver, delta)] * rng.choice([0, 1, 1, 2])  # lost, sent, duplicated
        rng.shuffle(in_flight)
        for receiver, delta in in_flight[: rng.randint(0, len(in_flight))]:
            receiver.join(delta)
        in_flight = in_flight[len(in_flight) // 2 :]  # some stay in flight, arriving late
    for receiver, delta in in_flight:
        receiver.join(delta)
    for _ in range(3):  # anti-entropy rounds: resend what each peer's clock has not seen
        for sender in replicas:
            for receiver in replicas:
                receiver.join(sender.delta_since(receiver.clock))
    digests = {egraph.digest() for egraph in replicas}
    assert len(digests) == 1
    assert digests == {joined(*replicas).digest()}
    assert all(egraph.clock == replicas[0].clock for egraph in replicas)
    for node in sorted(replicas[0]._nodes)[:4]:  # converged replicas extract the same terms
        assert len({str(extract(egraph, node)) for egraph in replicas}) == 1


@settings(max_examples=30)
@given(st.lists(arith_terms, min_size=1, max_size=3), histories(), histories())
def test_equality_proven_on_one_replica_holds_everywhere_after_merge(terms, other_b, other_c):
    prover = EGraph("prover")
    roots = [prover.add_term(term) for term in terms]
    saturate(prover, ALL_RULES, Budget(iterations=4, nodes=2_000))
    proven = [
        (s, t) for s, r in zip(terms, roots) for t, q in zip(terms, roots) if prover.find(r) == prover.find(q)
    ]
    b, c = replica("b", other_b), replica("c", other_c)
    b.join(prover)  # b hears from the prover directly
    c.join(b.delta_since(c.clock))  # c only through b
    for s, t in proven:
        assert b.equivalent(s, t) and c.equivalent(s, t)


@settings(max_examples=60)
@given(st.lists(histories(max_ops=4), min_size=1, max_size=4), histories(), st.randoms(use_true_random=False),
       st.booleans())
def test_an_adopted_delta_means_what_a_joined_one_does_without_entering_the_clock(chunks, own, rng, compacted):
    """What agents do with a stream component's deltas (EGraph.adopt): whatever order, duplicates and a
    checkpoint, the adopting replica ends with the contents a joining one has, and its clock holds only
    its own entry; its own event carries them on to a third replica."""
    stream = EGraph("stream.pod.worker")
    deltas = []
    for chunk in chunks:
        before = stream.clock
        play(stream, chunk, Colour.RED)
        deltas.append(stream.delta_since(before))
    if compacted:
        stream.compact(stream.clock)
        deltas.append(stream.delta_since({}))  # the whole state, as a checkpoint
    delivered = deltas + [rng.choice(deltas)]
    rng.shuffle(delivered)
    adopting, joining = replica("agent-0", own), replica("agent-1", own)
    for delta in delivered:
        adopting.adopt(delta)
        joining.join(delta)
    assert (adopting.digest(), frozenset(adopting._nodes)) == (joining.digest(), frozenset(joining._nodes))
    assert set(adopting.clock) <= {"agent-0"}
    events = adopting.clock.get("agent-0", 0)
    for delta in deltas:
        assert not adopting.adopt(delta)  # nothing new: no event
    assert adopting.clock.get("agent-0", 0) == events
    neighbour = EGraph("agent-2").join(adopting.delta_since({}))
    assert neighbour.digest() == joining.digest() and "stream.pod.worker" not in neighbour.clock
