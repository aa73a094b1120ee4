"""The timeline's clocks and its DuckDB store, on synthetic message exchanges."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.clock import compare
from agentnet_runtime.timeline import Event, Recorder, Timeline

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


def stamped(times: list[float]) -> list[Event]:
    return [Event(i % 3, f"{i % 3}.r", i + 1, i + 1, {}, "rewrite", "RED", time=t) for i, t in enumerate(times)]


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    times=st.lists(st.floats(0, 1_000, allow_nan=False), min_size=1, max_size=60, unique=True),  # wall clocks of distinct events
    in_order=st.booleans(),
    batch=st.integers(1, 20),
    max_events=st.integers(1, 40),
    max_age=st.floats(1, 1_000),
)
def test_retention_keeps_the_newest_within_age_and_count_and_says_what_it_dropped(
    tmp_path_factory, times, in_order, batch, max_events, max_age
):
    """A real DuckDB file; events arrive in batches, in time order or not. After pruning: nothing older
    than max_age, at most max_events, every event kept newer than every event not kept; what was
    dropped is counted (all of it when events arrive in time order; one arriving later than newer ones
    that were dropped is not stored, nor counted: it may be a replay), and a replay adds nothing."""
    path = tmp_path_factory.mktemp("retention") / "t.duckdb"
    events, now = stamped(sorted(times) if in_order else times), 1_000.0
    with Timeline(path, max_age=max_age, max_events=max_events) as timeline:
        for offset in range(0, len(events), batch):
            timeline.append(events[offset : offset + batch])
            assert timeline.count() <= max_events  # pruned by count after every insert
        timeline.prune(now)
        kept = timeline.query()
        report = timeline.retention()
        assert len(kept) <= max_events and all(e.time > now - max_age for e in kept)
        kept_keys = {e.key for e in kept}
        assert all(k.time > other.time for k in kept for other in events if other.key not in kept_keys)
        if in_order:
            assert report["dropped"] + len(kept) == len(events)
        else:
            assert report["dropped"] + len(kept) <= len(events)
        assert report["oldestKept"] == (min(e.time for e in kept) if kept else None)
        timeline.append(events)  # a replay (a new durable consumer reading the stream from its start)
        assert timeline.count() == len(kept) and timeline.retention()["dropped"] == report["dropped"]
    with Timeline(path) as reopened:  # what was dropped is remembered in the file
        assert reopened.retention()["dropped"] == report["dropped"]
