"""stream-red / -blue / -green: terms over HTTP and the JetStream work queue, rewritten by the colour's
family, handed to the agents of that colour (and published), lag, competing consumers, refused input."""

from __future__ import annotations

import asyncio

import pytest
from component_support import component_config, serving
from engine_support import consumer_lag, metric, publish_work, quiet_agents
from runtime_support import eventually, running

from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(90)

DISTRIBUTED, EXPANDED = parse("x*(y+z)"), parse("x*y + x*z")


def stream_config(colour: str, nats_url: str, **settings: str):
    return component_config(f"stream-{colour}", nats_url, settings={"LAG_INTERVAL_MS": "100", **settings})


def proven_everywhere(host, a, b) -> bool:
    return all(agent.egraph.equivalent(a, b) for agent in host.agents.values())


async def test_apply_returns_the_derived_equalities_once(nats_server):
    async with serving("stream-blue", stream_config("blue", nats_server.url)) as (service, client):
        first = (await client.post("/apply", json={"term": "x*(y+z)"})).json()
        assert [str(DISTRIBUTED), str(EXPANDED)] in first["equalities"]
        assert first["newEqualities"] >= 1 and first["saturation"]["stop"] == "saturated"
        blue = [n.id for n in service.config.network.nodes if n.colour == "BLUE"]
        assert first["handedTo"] == blue and len(blue) == 3
        again = (await client.post("/apply", json={"terms": ["x*(y+z)"]})).json()
        assert again["equalitiesTotal"] == first["equalitiesTotal"]
        assert again["newEqualities"] == 0 and again["handedTo"] == []  # nothing new for the network
        status = (await client.get("/status")).json()
        assert status["processed"] == 2 and status["derived"] == first["newEqualities"] and status["events"] == 1


async def test_streams_feed_the_agents_and_publish_what_they_derived(nats_server):
    """x*(y+z) to stream-blue and x*y + x*z to stream-red, through the work queue: agents that do not
    rewrite at all end up holding both streams' equalities, and stream.derived.blue carries a delta."""
    published: list[dict] = []
    listener = Transport(nats_server.url)
    await listener.connect()

    async def keep(subject, envelope, message):
        published.append(envelope)

    await listener.subscribe("stream.derived.blue", keep)
    # The registry is the process's: earlier tests' terms are in it too, so count from here.
    processed_before = metric("agentnet_stream_terms_total", component="stream-blue", result="processed")
    try:
        async with running(quiet_agents(nats_server.url)) as host, \
                serving("stream-blue", stream_config("blue", nats_server.url)) as (blue, blue_client), \
                serving("stream-red", stream_config("red", nats_server.url)) as (red, red_client):  # fmt: skip
            queued = await blue_client.post("/terms", json={"term": "x*(y+z)"})
            assert queued.status_code == 202 and queued.json()["queued"] == 1
            assert (await red_client.post("/terms", json={"terms": ["x*y + x*z"]})).status_code == 202
            await eventually(lambda: proven_everywhere(host, DISTRIBUTED, EXPANDED), 20, "BLUE's equality on every agent")
            await eventually(lambda: proven_everywhere(host, EXPANDED, parse("z*x + x*y")), 20, "RED's equality on every agent")
            for stream, client in ((blue, blue_client), (red, red_client)):
                status = (await client.get("/status")).json()
                assert status["processed"] == 1 and status["derived"] >= 1 and status["lag"]["total"] == 0
                colour = stream.colour.value
                assert set(status["agents"]) == {str(n.id) for n in host.config.network.nodes if n.colour == colour}

                async def acked_by_all(client=client) -> bool:
                    agents = (await client.get("/status")).json()["agents"]
                    return all(agent["acked"] == 1 for agent in agents.values())

                await eventually(acked_by_all, 10, f"every {colour} agent to acknowledge the stream's event")
            assert metric("agentnet_stream_terms_total", component="stream-blue", result="processed") == processed_before + 1
            # The agents adopted what the streams derived as events of their own: no stream's id is in a clock.
            for agent in host.agents.values():
                assert set(agent.egraph.clock) <= {a.replica for a in host.agents.values()}, agent.egraph.clock
        await eventually(lambda: published, 5, "a delta on stream.derived.blue")
        assert published[0]["from"] == -2
        derived = EGraph("listener").join(Delta.from_wire(published[0]["body"]))
        assert derived.equivalent(DISTRIBUTED, EXPANDED)
    finally:
        await listener.close()


async def test_what_no_agent_acknowledged_is_sent_again(nats_server):
    """Work done before the agents are up (nobody listening) reaches them once they are."""
    config = stream_config("blue", nats_server.url, REDELIVER_MS="100")
    async with serving("stream-blue", config) as (_, client):
        assert (await client.post("/apply", json={"term": "x*(y+z)"})).json()["newEqualities"] >= 1
        await asyncio.sleep(0.3)  # sent (to no one) and due again
        async with running(quiet_agents(nats_server.url)) as host:
            await eventually(lambda: proven_everywhere(host, DISTRIBUTED, EXPANDED), 20, "the equality on every agent")


async def test_work_queued_while_no_stream_runs_shows_as_lag_and_is_done_later(nats_server):
    config = stream_config("green", nats_server.url)
    async with serving("stream-green", config):
        pass  # creates the durable consumer, then goes away
    await publish_work(nats_server.url, "GREEN", [f"v{i} * 1 + 0".encode() for i in range(30)] + [b"x*("])
    assert await consumer_lag(nats_server.url, "stream-green") == 31
    async with serving("stream-green", config) as (_, client):

        async def drained():
            status = (await client.get("/status")).json()
            return status if status["lag"]["total"] == 0 and status["processed"] + status["rejected"] == 31 else None

        status = await eventually(drained, 30, "the backlog to be done")
        assert status["processed"] == 30 and status["rejected"] == 1  # the bad message is dropped, not redelivered
        await eventually(lambda: metric("agentnet_stream_lag", component="stream-green") == 0, 5, "the lag gauge at 0")
    assert await consumer_lag(nats_server.url, "stream-green") == 0


async def test_a_worker_process_that_dies_is_replaced_and_its_batch_done_again(nats_server):
    async with serving("stream-blue", stream_config("blue", nats_server.url)) as (service, client):
        first_replica = service.replica_id
        service.worker.process.kill()
        await service.worker.process.wait()
        assert (await client.post("/terms", json={"term": "x*(y+z)"})).status_code == 202

        async def done():
            status = (await client.get("/status")).json()
            return status if status["processed"] == 1 and status["lag"]["total"] == 0 else None

        status = await eventually(done, 30, "the term to be rewritten by a new worker")
        assert status["replica"] != first_replica and status["events"] == 1 and status["derived"] >= 1


async def test_replicas_of_a_stream_share_its_work(nats_server):
    config = stream_config("red", nats_server.url, BATCH_SIZE="4")
    async with serving("stream-red", config) as (first, client), serving("stream-red", config) as (second, _):
        assert first.replica_id != second.replica_id
        response = await client.post("/terms", json={"terms": [f"a{i} + b{i}" for i in range(40)]})
        assert response.json()["queued"] == 40
        await eventually(lambda: first.processed + second.processed >= 40, 30, "40 terms processed")
        await asyncio.sleep(0.2)  # a duplicate delivery would show up here
        assert first.processed + second.processed == 40  # each term once: one consumer, competing replicas


@pytest.mark.parametrize(
    "path, body, field, rule",
    [
        ("/terms", {}, "term", "exactly one of"),
        ("/terms", {"terms": []}, "terms", "list of 1.."),
        ("/terms", {"terms": ["x", "y +"]}, "terms[1]", "must be a term"),
        ("/terms", {"term": "x", "priority": 1}, "priority", "allowed fields"),
        ("/apply", {"term": 3}, "term", "must be a term"),
        ("/apply", {"term": "x", "terms": ["y"]}, "term", "exactly one of"),
    ],
)
async def test_bad_input_names_the_field(nats_server, path, body, field, rule):
    async with serving("stream-red", stream_config("red", nats_server.url)) as (_, client):
        response = await client.post(path, json=body)
        assert 400 <= response.status_code < 500, response.text
        answer = response.json()
        assert answer["field"] == field and rule in answer["rule"], answer
        assert (await client.post(path, content=b"[")).json()["field"] == "body"
