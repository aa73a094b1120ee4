"""interaction-timeline: real agents' events through a JetStream stream on a real nats-server (and, as
under `agentnet up`, straight into the same DuckDB file), queried with filters in causal order; events
published while it is down are stored once it is back, exactly once; retention says what it dropped;
bad filters are refused by name."""

from __future__ import annotations

import dataclasses
import datetime
import json

import nats
import pytest
from prometheus_client import REGISTRY
from component_support import component_config, serving
from runtime_support import FAST, eventually, running, runtime_config

from agentnet_runtime.agent.main import open_timeline
from agentnet_runtime.config import Retention
from agentnet_runtime.core.clock import compare
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(60)

NAME = "interaction-timeline"


def errors_counted() -> float:
    return REGISTRY.get_sample_value("agentnet_errors_total", {"source": NAME, "kind": "bad-events"}) or 0


async def query(client, **params) -> list[dict]:
    response = await client.get("/query", params=params)
    assert response.status_code == 200, response.text
    return response.json()["events"]


def ids(events) -> list[tuple[str, int]]:
    """Events by identity (replica, seq), in a fixed order: for comparing what two queries returned."""
    return sorted((e["replica"], e["seq"]) for e in events)


async def test_agents_events_over_nats_are_stored_once_and_queried_in_causal_order(nats_server, tmp_path):
    config = component_config(NAME, nats_server.url, data_dir=str(tmp_path / "data"))
    async with serving(NAME, config) as (service, client):
        # These agents have no DuckDB file: they publish their events on timeline.events.
        async with running(runtime_config(config.network, nats_server.url, settings=FAST)) as host:
            host.agents[0].submit(parse("x*(y+z)"))
            host.wake(host.agents[0])
            await eventually(lambda: host.settle(0), 10, "the agents to settle")
        # Stopping flushes each agent's last events, "stop" among them.
        await eventually(lambda: len(service.timeline.query(kind="stop")) == 9, 10, "every agent's stop event")
        events = await query(client, limit=100_000)
        assert len(events) == service.timeline.count() and {e["kind"] for e in events} >= {"start", "submit", "send", "receive", "stop"}
        positions = [(e["lamport"], e["origin"], e["seq"]) for e in events]
        assert positions == sorted(positions)
        for i, earlier in enumerate(events[:300]):  # no event is listed before one that happened before it
            assert all(compare(later["clock"], earlier["clock"]) != "before" for later in events[i + 1 : 300])

        assert {e["origin"] for e in await query(client, agent=3)} == {3}
        assert {e["kind"] for e in await query(client, kind="receive")} == {"receive"}
        blue = await query(client, colour="blue")
        assert blue and {e["colour"] for e in blue} == {"BLUE"}
        assert {e["origin"] for e in blue} == {n.id for n in config.network.nodes if n.colour == "BLUE"}
        # since/until split the run exactly: a time with events on both sides of it, and each
        # query returns precisely the events on its side (an empty answer would not pass).
        times = sorted({e["time"] for e in events})
        assert len(times) > 1
        middle = times[len(times) // 2]
        assert ids(await query(client, since=middle)) == ids(e for e in events if e["time"] >= middle)
        iso = datetime.datetime.fromtimestamp(middle, datetime.timezone.utc).isoformat()
        assert await query(client, since=iso) == await query(client, since=datetime.datetime.fromisoformat(iso).timestamp())
        assert ids(await query(client, until=middle)) == ids(e for e in events if e["time"] < middle)
        assert len(await query(client, limit=5)) == 5

        # The same batch again (NATS may deliver twice, an agent may resend): nothing is added.
        # A malformed batch after it is refused, and counted: then the replay has been handled
        # (the stream delivers in order, and both are stored in one append at most).
        refused = errors_counted()
        publisher = await nats.connect(nats_server.url)
        await publisher.publish("timeline.events", json.dumps({"from": 0, "stamp": None, "body": events[:50]}).encode())
        await publisher.publish("timeline.events", json.dumps({"from": 0, "stamp": None, "body": [{**events[0], "seq": "one"}]}).encode())
        await publisher.flush()
        await publisher.close()
        await eventually(lambda: errors_counted() == refused + 1, 5, "the malformed batch to be refused")
        assert service.timeline.count() == len(events) == len(await query(client, limit=100_000))


def recorded(host) -> int:
    """Events the host's agents have recorded so far (each agent numbers its own 1, 2, ...)."""
    return sum(agent.recorder.seq for agent in host.agents.values())


def handed_over(host) -> int:
    """Events a stopped host stored in the stream: all it recorded but any still in its buffer
    (a handler still running during the last flush can record one after it)."""
    return recorded(host) - len(host.events)


async def test_events_published_while_the_timeline_is_down_are_stored_once_it_is_back(nats_server, tmp_path):
    config = component_config(NAME, nats_server.url, data_dir=str(tmp_path / "data"))
    agents = runtime_config(config.network, nats_server.url, settings=FAST)
    async with serving(NAME, config) as (service, _):
        async with running(agents) as first:
            first.agents[0].submit(parse("x*(y+z)"))
            first.wake(first.agents[0])
            await eventually(lambda: first.settle(0), 10, "the agents to settle")
            await first.flush_events()
            await eventually(lambda: service.timeline.count() == recorded(first), 10, "the first events to be stored")
        first_consumer = service.durable
    # The timeline is down (its durable consumer stays on the server); the agents go on and then stop.
    async with running(agents) as second:
        second.agents[4].submit(parse("a*b+a*c"))
        second.wake(second.agents[4])
        await eventually(lambda: second.settle(0), 10, "the agents to settle")
    published = handed_over(first) + handed_over(second)  # (the second run's agents are new replicas)
    # It comes back as a new pod on the same claim (a Deployment names pods anew): the same consumer goes on.
    config = dataclasses.replace(config, pod_name="timeline-pod-after-a-restart")
    async with serving(NAME, config) as (service, client):
        assert service.durable == first_consumer
        await eventually(lambda: service.timeline.count() == published, 15, "the events published while it was down")
        events = await query(client, limit=100_000)
        assert len(events) == published == len({(e["replica"], e["seq"]) for e in events})  # no duplicates
        assert {e["payload"].get("term") for e in events if e["kind"] == "submit"} == {"x * (y + z)", "a * b + a * c"}
        # A redelivery of everything (a new consumer reading the stream from its start) adds nothing.
        js = service.nc.jetstream()
        await js.delete_consumer("AGENTNET_TIMELINE", service.durable)
        service.keeper.wake()
        last = (await js.stream_info("AGENTNET_TIMELINE")).state.last_seq
        await eventually(lambda: _acknowledged(js, service.durable, last), 15, "the redelivery of the whole stream")
        assert service.timeline.count() == published


async def _acknowledged(js, durable: str, last: int) -> bool:
    """Has the (re-made) consumer had every message of the stream up to `last` acknowledged?"""
    from nats.js.errors import NotFoundError

    try:
        info = await js.consumer_info("AGENTNET_TIMELINE", durable)
    except NotFoundError:
        return False
    return info.ack_floor.stream_seq >= last


async def test_retention_drops_the_oldest_and_the_query_says_so(nats_server, tmp_path):
    """maxEvents 40: once every batch in the stream is stored, 40 events are kept and the query, /retention,
    the gauge and the dashboard say how many were dropped and the oldest time kept. (Batches of different
    agent processes arrive in no particular time order; one older than what was already dropped is not
    stored nor counted, so the count is at most, not exactly, what the agents recorded beyond 40.)"""
    document_config = component_config(NAME, nats_server.url, data_dir=str(tmp_path / "data"))
    network = dataclasses.replace(document_config.network, retention=Retention(None, 3600, 40))
    config = document_config.with_(network=network)
    async with serving(NAME, config) as (service, client), serving("dashboard", config) as (_, dashboard):
        async with running(runtime_config(network, nats_server.url, settings=FAST)) as host:
            host.agents[0].submit(parse("x*(y+z)"))
            host.wake(host.agents[0])
            await eventually(lambda: host.settle(0), 10, "the agents to settle")
        total = recorded(host)
        js = service.nc.jetstream()
        last = (await js.stream_info("AGENTNET_TIMELINE")).state.last_seq  # the host has stored all it recorded
        await eventually(lambda: _acknowledged(js, service.durable, last), 15, "every batch to be stored")
        body = (await client.get("/query", params={"limit": 100_000})).json()
        kept, retention = body["events"], body["retention"]
        assert len(kept) == 40 and 0 < retention["dropped"] <= total - 40
        assert retention["oldestKept"] == min(e["time"] for e in kept)
        assert retention["maxEvents"] == 40 and retention["maxAgeSeconds"] == 3600
        assert (await client.get("/retention")).json() == retention
        assert REGISTRY.get_sample_value("agentnet_timeline_dropped_events") == retention["dropped"]

        async def dashboard_says():  # the dashboard hears it on timeline.retention and shows it
            shown = (await dashboard.get("/state")).json()["timeline"]["retention"]
            return shown == {"dropped": retention["dropped"], "oldestKept": retention["oldestKept"]}

        await eventually(dashboard_says, 10, "the dashboard to show what retention dropped")


async def test_agents_writing_the_file_in_the_same_process_are_seen(nats_server, tmp_path):
    """As under `agentnet up`: agents append to <data dir>/timeline.duckdb directly, the component reads it."""
    config = component_config(NAME, nats_server.url, data_dir=str(tmp_path / "data"))
    agents = runtime_config(config.network, nats_server.url, settings=FAST, data_dir=str(tmp_path / "data"))
    timeline = open_timeline(agents)
    try:
        async with serving(NAME, config) as (_, client), running(agents, timeline=timeline) as host:
            host.agents[5].submit(parse("a*b"))

            async def submitted():
                return await query(client, kind="submit")

            (event,) = await eventually(submitted, 10, "the submit event in the shared file")
            assert event["origin"] == 5 and event["payload"]["term"] == "a * b"
    finally:
        timeline.close()


@pytest.mark.parametrize(
    "params, field, rule",
    [
        ({"agent": "x"}, "agent", "integer"),
        ({"agent": 9}, "agent", "0..8"),
        ({"kind": "jump"}, "kind", "one of"),
        ({"colour": "purple"}, "colour", "RED"),
        ({"since": "yesterday"}, "since", "ISO 8601"),
        ({"until": "nan"}, "until", "epoch seconds"),
        ({"since": 10, "until": 5}, "until", "later than since"),
        ({"limit": 0}, "limit", "1..100000"),
        ({"order": "desc"}, "order", "allowed"),
    ],
)
async def test_bad_filters_name_the_parameter(nats_server, params, field, rule):
    async with serving(NAME, component_config(NAME, nats_server.url)) as (_, client):
        response = await client.get("/query", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field and rule in response.json()["rule"], response.json()
