"""Membership from heartbeats: the one rule (gone after 2.5 silent intervals) and the one meaning of
converged that agent-orchestrator and the dashboard share."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentnet_runtime.core.membership import ALIVE, GONE, GONE_AFTER, UNSEEN, Member, Membership

INTERVAL = 2.0


def network(agents: int = 3, **kwargs) -> Membership:
    return Membership((Member(i) for i in range(agents)), INTERVAL, **kwargs)


def beat(digest: str | None = "d", nodes: int = 1, events: int = 1) -> dict:
    return {"digest": digest, "nodes": nodes, "events": events}


def test_the_rule_is_two_and_a_half_intervals():
    assert GONE_AFTER == 2.5 and network().gone_after == 2.5 * INTERVAL


def test_unseen_alive_gone_and_back():
    members = network(1)
    assert members.counts() == {ALIVE: 0, GONE: 0, UNSEEN: 1}
    member = members.members[0]
    assert members.heartbeat(0, beat(nodes=4, events=7), now=10.0) == (member, UNSEEN)
    assert (member.state, member.nodes, member.events, member.age(11.0)) == (ALIVE, 4, 7, 1.0)
    assert members.heartbeat(0, beat(), now=11.0) is None  # already alive: no change to announce
    assert members.sweep(now=11.0 + 2.5 * INTERVAL) == []  # exactly at the bound: still alive
    assert members.sweep(now=11.0 + 2.5 * INTERVAL + 0.01) == [member] and member.state == GONE
    assert members.sweep(now=100.0) == []  # gone once, not again
    assert members.heartbeat(0, beat(), now=101.0) == (member, GONE) and member.state == ALIVE and member.returns == 1


def test_heartbeats_from_outside_the_network_are_ignored():
    members = network(2)
    for sender in (2, -1, "0", None, True, [0]):
        assert members.heartbeat(sender, beat(), now=1.0) is None
    assert members.counts()[UNSEEN] == 2


def test_a_malformed_count_records_nothing():
    members = network(1)
    with pytest.raises(ValueError):
        members.heartbeat(0, {"digest": "d", "nodes": "many"}, now=1.0)
    assert members.members[0].state == UNSEEN and members.members[0].last_seen is None


def test_converged_needs_every_agent_seen_and_one_digest_among_the_alive():
    members = network(3)
    assert not members.converged()  # nobody seen
    members.heartbeat(0, beat("a"), now=0.0)
    members.heartbeat(1, beat("a"), now=0.0)
    assert not members.converged() and members.digest() is None  # agent 2 may hold anything
    members.heartbeat(2, beat("b"), now=1.0)
    assert not members.converged() and members.digests() == {"a", "b"}
    members.heartbeat(2, beat("a"), now=1.0)
    assert members.converged() and members.digest() == "a"
    members.sweep(now=0.0 + 2.5 * INTERVAL + 0.5)  # 0 and 1 silent too long; 2 alone agrees with itself
    assert members.counts() == {ALIVE: 1, GONE: 2, UNSEEN: 0} and members.converged()
    members.heartbeat(1, beat(None), now=6.0)  # an agent with no digest yet agrees with nobody
    assert not members.converged()


@pytest.mark.parametrize("interval, gone_after", [(0, 2.5), (-1, 2.5), (1, 0)])
def test_bad_bounds_are_refused(interval, gone_after):
    with pytest.raises(ValueError, match="must be positive"):
        Membership([Member(0)], interval, gone_after)


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from("ab"), st.floats(0, 0.9 * INTERVAL)), max_size=40))
def test_the_meanings_agree(beats):
    """Whatever the heartbeats, the states add up, the gone are exactly the silent, and converged is its definition."""
    members, now = network(4), 0.0
    for agent, digest, pause in beats:
        now += pause
        members.heartbeat(agent, beat(digest), now)
        members.sweep(now)
    assert sum(members.counts().values()) == 4
    for member in members.members.values():
        if member.last_seen is None:
            assert member.state == UNSEEN
        else:
            assert (member.state == GONE) == (now - member.last_seen > members.gone_after)
    alive = [m for m in members.members.values() if m.state == ALIVE]
    expected = all(m.state != UNSEEN for m in members.members.values()) and len({m.digest for m in alive}) == 1
    assert members.converged() == expected
