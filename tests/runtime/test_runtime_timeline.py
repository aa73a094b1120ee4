"""The timeline's clocks and its DuckDB store, on synthetic message exchanges."""

from __future__ import annotations

import random

import pytest

from agentnet_runtime.core.clock import compare
from agentnet_runtime.timeline import Recorder, Timeline

pytestmark = pytest.mark.timeout(30)


def exchange(seed: int, agents: int = 4, steps: int = 300):
    """Random local events, sends and (possibly late, reordered) receives between agents."""
    rng, events, in_flight = random.Random(seed), [], []
    recorders = [Recorder(i, f"{i}.r", "RED", events.append) for i in range(agents)]
    for _ in range(steps):
        agent = rng.randrange(agents)
        roll = rng.random()
        if roll < 0.4:
            recorders[agent].record("send", f"agent.{(agent + 1) % agents}.state")
            in_flight.append(((agent + 1) % agents, recorders[agent].stamp()))
        elif roll < 0.8 and in_flight:
            to, stamp = in_flight.pop(rng.randrange(len(in_flight)))
            recorders[to].record("receive", f"agent.{to}.state", received=stamp)
        else:
            recorders[agent].record("rewrite")
    return events


def test_causal_order_is_consistent_with_happens_before(tmp_path):
    events = exchange(seed=7)
    with Timeline(tmp_path / "t.duckdb") as timeline:
        random.Random(1).shuffle(events)  # arrival order at the store does not matter
        assert timeline.append(events[:150]) == 150
        assert timeline.append(events[100:]) == len(events) - 150  # overlapping batch: only the new rows
        ordered = timeline.query()
    assert len(ordered) == len(events)
    for i, earlier in enumerate(ordered):
        for later in ordered[i + 1 :]:
            assert compare(later.clock, earlier.clock) != "before", (earlier, later)


def test_replay_does_not_duplicate_and_filters_work(tmp_path):
    events = exchange(seed=3)
    path = tmp_path / "t.duckdb"
    with Timeline(path) as timeline:
        timeline.append(events)
        assert timeline.append(events) == 0 and timeline.append(events + events) == 0
        assert timeline.count() == len(events)
    with Timeline(path) as reopened:
        assert reopened.count() == len(events)
        assert {e.kind for e in reopened.query(kind="send")} == {"send"}
        assert {e.origin for e in reopened.query(agent=2)} == {2}
        assert reopened.query(colour="BLUE") == []
        assert len(reopened.query(limit=5)) == 5
