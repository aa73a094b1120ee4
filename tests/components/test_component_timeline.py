"""interaction-timeline: real agents' events over NATS (and, as under `agentnet up`, straight into
the same DuckDB file), queried with filters in causal order; bad filters are refused by name."""

from __future__ import annotations

import datetime
import json

import nats
import pytest
from prometheus_client import REGISTRY
from component_support import component_config, serving
from runtime_support import FAST, eventually, running, runtime_config

from agentnet_runtime.agent.main import open_timeline
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
        middle = events[len(events) // 2]["time"]
        assert all(e["time"] >= middle for e in await query(client, since=middle))
        iso = datetime.datetime.fromtimestamp(middle, datetime.timezone.utc).isoformat()
        assert await query(client, since=iso) == await query(client, since=datetime.datetime.fromisoformat(iso).timestamp())
        assert all(e["time"] < middle for e in await query(client, until=middle))
        assert len(await query(client, limit=5)) == 5

        # The same batch again (NATS may deliver twice, an agent may resend): nothing is added.
        # A malformed batch after it is refused, and counted: then the replay has been handled.
        refused = errors_counted()
        publisher = await nats.connect(nats_server.url)
        await publisher.publish("timeline.events", json.dumps({"from": 0, "stamp": None, "body": events[:50]}).encode())
        await publisher.publish("timeline.events", json.dumps({"from": 0, "stamp": None, "body": [{**events[0], "seq": "one"}]}).encode())
        await publisher.flush()
        await publisher.close()
        await eventually(lambda: errors_counted() == refused + 1, 5, "the malformed batch to be refused")
        await service.flush()  # (the replay arrived before the malformed batch)
        assert service.timeline.count() == len(events) == len(await query(client, limit=100_000))


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
