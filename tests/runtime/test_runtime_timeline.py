"""The timeline's clocks and its DuckDB store, on synthetic message exchanges."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.clock import compare
from agentnet_runtime.timeline import Event, Recorder, Timeline
from agentnet_runtime.timeline.events import KEYFRAME_EVERY

pytestmark = pytest.mark.timeout(30)


def exchange(seed: int, agents: int = 4, steps: int = 300, whole: dict | None = None):
    """Random local events, sends and (possibly late, reordered) receives between agents; `whole` gets the
    clock each recorder held at each of its events, by (replica, seq)."""
    rng, events, in_flight = random.Random(seed), [], []

    def keep(event: Event) -> None:
        events.append(event)
        if whole is not None:
            whole[event.replica, event.seq] = dict(recorders[event.origin].clock)

    recorders = [Recorder(i, f"{i}.r", "RED", keep) for i in range(agents)]
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


def test_an_event_keeps_only_what_changed_but_one_in_keyframe_every(tmp_path):
    events: list[Event] = []
    recorder = Recorder(0, "0.r", "RED", events.append)
    recorder.record("start")
    recorder.record("receive", received={"lamport": 9, "clock": {f"{i}.r": 3 for i in range(1, 500)}})
    for _ in range(KEYFRAME_EVERY):
        recorder.record("send")
    assert not events[0].partial and events[0].clock == {"0.r": 1}
    assert events[1].partial and len(events[1].clock) == 500  # what the receive raised, and its own entry
    sends = events[2:]
    assert [e.clock for e in sends if e.partial] == [{"0.r": e.seq} for e in sends if e.partial]
    assert [e.seq for e in events if not e.partial] == [1, KEYFRAME_EVERY + 1]
    assert events[KEYFRAME_EVERY].clock == {**recorder.clock, "0.r": KEYFRAME_EVERY + 1} and len(recorder.clock) == 500
    with Timeline(tmp_path / "t.duckdb") as timeline:
        timeline.append(events)
        assert [e.clock for e in timeline.query()][2] == {"0.r": 3, **{f"{i}.r": 3 for i in range(1, 500)}}


@pytest.mark.timeout(120)  # every append past max_events prunes: hundreds of DuckDB statements an example
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), steps=st.integers(1, 320), batch=st.integers(4, 120), in_order=st.booleans(),
       max_events=st.none() | st.integers(1, 300))  # fmt: skip
@example(seed=0, steps=200, batch=4, in_order=True, max_events=1)  # every replica's rows dropped, more to come
def test_a_query_answers_the_whole_clock_each_event_had(tmp_path_factory, seed, steps, batch, in_order, max_events):
    """Most stored clocks are partial; a query answers the clock the recorder held at each event, whatever the
    order batches arrive in and whatever retention dropped before (when the dropped arrived first). An event
    arriving after retention made a later one whole may be left out of that one's clock (as a lost event
    is): a clock may say less than there was, never more."""
    whole: dict = {}
    events = exchange(seed, steps=steps, whole=whole)
    if not in_order:
        random.Random(seed).shuffle(events)
    with Timeline(tmp_path_factory.mktemp("clocks") / "t.duckdb", max_events=max_events) as timeline:
        for offset in range(0, len(events), batch):
            timeline.append(events[offset : offset + batch])
        answered = timeline.query()
    assert answered and all(not event.partial for event in answered)
    if in_order or max_events is None:
        assert all(event.clock == whole[event.replica, event.seq] for event in answered)
    else:
        assert all(compare(event.clock, whole[event.replica, event.seq]) in ("equal", "before") for event in answered)
        assert all(event.clock[event.replica] == event.seq for event in answered)


def test_a_file_from_before_partial_clocks_opens_and_reads(tmp_path):
    import duckdb

    path = tmp_path / "t.duckdb"
    with duckdb.connect(str(path)) as old:  # the schema and a row as written before the partial column
        old.execute("CREATE TABLE events (key BIGINT PRIMARY KEY, origin INTEGER, replica VARCHAR, seq BIGINT, lamport BIGINT,"
                    " kind VARCHAR, colour VARCHAR, subject VARCHAR, clock VARCHAR, payload VARCHAR, time DOUBLE)")  # fmt: skip
        old.execute("INSERT INTO events VALUES (1, 0, '0.r', 1, 1, 'start', 'RED', '', '{\"0.r\": 1, \"1.r\": 4}', '{}', 1.0)")
    events: list[Event] = []
    recorder = Recorder(0, "0.x", "RED", events.append)
    for kind in ("start", "send", "send"):
        recorder.record(kind)
    with Timeline(path) as timeline:
        assert timeline.append(events) == 3
        assert [e.clock for e in timeline.query()] == [{"0.r": 1, "1.r": 4}, {"0.x": 1}, {"0.x": 2}, {"0.x": 3}]


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


@pytest.mark.timeout(120)  # 4 s alone; 30 s was crossed under make test's load, inside a DuckDB query
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


def test_the_timeline_component_takes_partial_events_and_refuses_a_partial_of_another_type():
    from agentnet_runtime.components.interaction_timeline import decode

    recorder = Recorder(0, "0.r", "RED")
    recorder.record("start")
    partial = recorder.record("send")
    assert partial.partial and decode(partial.to_dict()) == partial
    for wrong in (1, "yes", [True]):
        with pytest.raises(TypeError, match="partial"):
            decode({**partial.to_dict(), "partial": wrong})
    with pytest.raises(TypeError, match="seq"):
        decode({**partial.to_dict(), "seq": True})  # a bool is still no count
