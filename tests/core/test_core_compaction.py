"""Memory that follows knowledge: compaction into a checkpoint and the knowledge budget
(max_nodes), interleaved with any delivery order, duplication, loss-then-resend and restarts
with a new replica id, by property; and the CRDT laws under a budget."""

import json

import pytest
from core_strategies import Network, Wall, gossip, histories, play
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.core.events import EPOCH_SECONDS
from agentnet_runtime.core.retention import cutoff
from agentnet_runtime.core.terms import parse


def reference(network: Network) -> EGraph:
    """A fresh replica (same budget) that joined every replica's full state: what they must all hold."""
    result = EGraph("9.ref", network.max_nodes, Wall())
    for replica in network.replicas:
        result.join(Delta.from_wire(json.loads(json.dumps(replica.to_wire()))))
    return result


def assert_converged(network: Network) -> None:
    assert network.settle(), [replica.digest() for replica in network.replicas]
    assert {replica.digest() for replica in network.replicas} == {reference(network).digest()}
    assert all(replica.clock == network.replicas[0].clock for replica in network.replicas)
    digest = network.replicas[0].digest()
    for r in range(len(network.replicas)):  # everyone has heard everyone's clock: all of it compacts
        network.compact(r, False)
    for replica in network.replicas:
        assert replica.events_held() == 0 and replica.digest() == digest


@settings(max_examples=120)
@given(gossip())
def test_replicas_that_compact_and_restart_converge(schedule):
    assert_converged(Network(3).run(schedule))


@settings(max_examples=120)
@given(gossip(), st.sampled_from([3, 6, 12]))
def test_replicas_under_a_budget_converge_and_keep_within_it(schedule, max_nodes):
    network = Network(3, max_nodes).run(schedule)
    assert_converged(network)
    for replica in network.replicas:
        kept = {replica._epochs[node][0] for node in replica._nodes}
        assert len(replica) <= max_nodes or len(kept) == 1  # over it only inside one (the newest) epoch


def budgeted(history, epoch, max_nodes=5, name="1.a"):
    egraph = EGraph(name, max_nodes, Wall(epoch * EPOCH_SECONDS))
    play(egraph, history)
    return egraph


def joined(*replicas, max_nodes=5):
    result = EGraph("9.j", max_nodes, Wall())
    for other in replicas:
        result.join(other.delta_since({}))
    return result


EPOCHS = st.integers(0, 4)


@settings(max_examples=80)
@given(histories(), histories(), histories(), EPOCHS, EPOCHS, EPOCHS)
def test_join_under_a_budget_is_commutative_associative_idempotent(first, second, third, ea, eb, ec):
    a, b, c = budgeted(first, ea, name="1.a"), budgeted(second, eb, name="2.a"), budgeted(third, ec, name="3.a")
    assert joined(a, b).digest() == joined(b, a).digest()
    assert joined(joined(a, b), c).digest() == joined(a, joined(b, c)).digest()
    assert joined(a, a).digest() == joined(a).digest()
    ab = joined(a, b)
    assert ab.join(ab.delta_since({})).digest() == joined(a, b).digest()


@settings(max_examples=200)
@given(st.dictionaries(st.integers(1, 9), st.integers(0, 6)), st.dictionaries(st.integers(1, 9), st.integers(0, 6)),
       st.integers(1, 10))  # fmt: skip
def test_the_cutoff_only_rises_as_knowledge_grows(counts, more, max_nodes):
    """What makes eviction commute with joins (retention.py): more e-nodes never lower the cutoff,
    and the newest epoch is always kept."""
    grown = {epoch: counts.get(epoch, 0) + more.get(epoch, 0) for epoch in set(counts) | set(more)}
    assert cutoff(grown, max_nodes) >= cutoff(counts, max_nodes)
    present = [epoch for epoch, count in counts.items() if count]
    if present:
        assert cutoff(counts, max_nodes) <= max(present)
        kept = sum(count for epoch, count in counts.items() if epoch >= cutoff(counts, max_nodes))
        assert kept <= max_nodes or cutoff(counts, max_nodes) == max(present)


def test_compaction_drops_acknowledged_events_and_a_late_peer_gets_a_checkpoint():
    a, b = EGraph("1.a"), EGraph("2.a")
    for i in range(5):
        a.add_term(parse(f"x{i} + y{i}"))
        a.clock
    b.join(a.delta_since(b.clock))
    assert a.events_held() == 5
    a.compact(b.clock)  # b has everything a has
    assert a.events_held() == 0 and a.clock == {"1.a": 5}
    a.add_term(parse("z"))
    news = a.delta_since(b.clock)  # b is above the base: events only
    assert news.checkpoint is None and [batch[1] for batch in news.batches] == [6]
    late = EGraph("3.a")
    full = a.delta_since(late.clock)  # below the base: the whole state, then the events above the base
    assert full.checkpoint is not None and full.checkpoint.base == {"1.a": 5}
    assert [batch[1] for batch in full.batches] == [6]
    late.join(Delta.from_wire(json.loads(json.dumps(full.to_wire()))))
    assert late.digest() == a.digest() and late.clock == a.clock
    assert late.delta_since({"1.a": 5}).checkpoint is None  # the checkpoint raised its base: it can answer


def test_a_snapshot_of_a_compacted_replica_restores_its_state_and_clock():
    a = EGraph("1.a")
    for i in range(3):
        a.union(a.add_term(parse(f"x{i} * 1")), a.add_term(parse(f"x{i}")))
        a.clock
    a.compact(a.clock)
    a.add_term(parse("w"))
    restored = EGraph.from_wire(json.loads(json.dumps(a.to_wire())), replica="1.b")
    assert (restored.digest(), len(restored), restored.clock) == (a.digest(), len(a), a.clock)


def test_an_eviction_keeps_the_newest_epochs_and_rewriting_starts_over():
    from agentnet_runtime.core.rewrites import ALL_RULES
    from agentnet_runtime.core.saturate import Budget, Saturation

    wall = Wall()
    egraph = EGraph("1.a", max_nodes=4, wall=wall)
    saturation = Saturation(egraph, ALL_RULES, Budget(iterations=2))
    egraph.add_term(parse("a + 0"))
    saturation.run()
    egraph.clock
    wall.now += EPOCH_SECONDS
    egraph.add_term(parse("b * c"))
    egraph.clock  # 3 + 3 e-nodes > 4: the older epoch goes
    assert egraph.lookup(parse("a")) is None and egraph.lookup(parse("b * c")) is not None
    assert egraph.evictions == 1 and egraph.floor == 1 + int(wall.now // EPOCH_SECONDS)
    egraph.add_term(parse("b + 0"))
    saturation.run()  # searches the rebuilt e-graph, not the matches it remembered
    assert egraph.find(egraph.add_term(parse("b + 0"))) == egraph.find(egraph.add_term(parse("b")))


@pytest.mark.parametrize("bad", [0, -5, 2.5, "10"])
def test_a_bad_budget_is_refused_naming_the_field(bad):
    with pytest.raises(ValueError, match="max_nodes must be a positive int"):
        EGraph("1.a", max_nodes=bad)


@settings(max_examples=30)
@given(histories())
def test_a_version_1_snapshot_still_restores(history):
    a = play(EGraph("1.a"), history)
    wire = a.to_wire()
    wire["version"] = 1
    for batch in wire["batches"]:
        batch.pop()  # version 1 had no epochs
    wire.pop("floor")
    assert EGraph.from_wire(wire).digest() == a.digest()


def test_the_schedules_reach_checkpoints_restarts_and_evictions():
    """The properties above are only as strong as the schedules: they must make peers get
    checkpoints, restart and (under a budget) evict, not only add and deliver."""
    seen = {"schedules": 0, "checkpoints": 0, "restarts": 0, "evictions": 0}

    @settings(max_examples=150, database=None)
    @given(gossip())
    def run(schedule):
        network = Network(3, max_nodes=6).run(schedule)
        network.settle()
        seen["schedules"] += 1
        seen["checkpoints"] += network.checkpoints > 0
        seen["restarts"] += any(boot > 10 for boot in network.boots)
        seen["evictions"] += any(replica.evictions for replica in network.replicas)

    run()
    for what in ("checkpoints", "restarts", "evictions"):
        assert seen[what] / seen["schedules"] >= 0.1, seen
