"""Liveness and readiness: /health answers while the process runs, /ready only while it can do its
work (NATS connected, its JetStream objects present), and the JetStream keeper puts back what a
restarted nats-server lost."""

from __future__ import annotations

import asyncio
import shutil

import httpx
import pytest
from prometheus_client import REGISTRY
from runtime_support import eventually, network, running, runtime_config

from agentnet_runtime import natsclient
from agentnet_runtime.agent.main import agent_app
from agentnet_runtime.config import NetworkConfig, load_config
from agentnet_runtime.local.up import network_document_from, run_network
from agentnet_runtime.natsbin import free_port
from agentnet_runtime.web import create_app

pytestmark = pytest.mark.timeout(60)


def client_of(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://process")


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict]:
    response = await client.get("/ready")
    return response.status_code, response.json()


async def _status(client: httpx.AsyncClient, expected: int) -> bool:
    return (await readiness(client))[0] == expected


def empty_the_store(nats_server) -> None:
    """Between stop() and start(): the server comes back with no streams or consumers at all."""
    shutil.rmtree(nats_server.store_dir / "jetstream")


async def test_ready_lists_the_reasons_and_health_stays_ok():
    reasons: list[str] = ["NATS disconnected", "JetStream consumer stream-red missing"]
    async with client_of(create_app("stream-red", ready=lambda: list(reasons))) as client:
        assert await readiness(client) == (503, {"status": "not ready", "app": "stream-red", "reasons": reasons})
        assert (await client.get("/health")).json() == {"status": "ok", "app": "stream-red"}  # liveness: unchanged
        reasons.clear()
        assert await readiness(client) == (200, {"status": "ready", "app": "stream-red"})
    # the kubelet's probes are no users' requests: a NATS outage must not read as an HTTP error ratio
    probe = {"app": "stream-red", "method": "GET", "route": "/ready", "status": "503"}
    assert REGISTRY.get_sample_value("agentnet_http_requests_total", probe) is None
    async with client_of(create_app("duck-colors")) as client:  # nothing to wait for
        assert (await readiness(client))[0] == 200


async def test_agents_are_not_ready_while_nats_is_away(nats_server):
    async with running(runtime_config(network(9), nats_server.url, agent_ids=range(3))) as host, \
            client_of(agent_app(host)) as client:  # fmt: skip
        assert await readiness(client) == (200, {"status": "ready", "app": "agent"})
        nats_server.stop()

        async def unready():
            status, body = await readiness(client)
            return status == 503 and body["reasons"] == [natsclient.NATS_DISCONNECTED]

        await eventually(unready, 20, "/ready to say NATS is disconnected")
        assert (await client.get("/health")).status_code == 200  # still alive: nothing to restart
        nats_server.start()
        await eventually(lambda: _status(client, 200), 20, "/ready once NATS is back")


async def test_the_keeper_makes_again_what_the_server_lost(nats_server):
    """A JetStream object counts only once seen on the current connection: after a restart with an
    empty store it is missing until made again, and one deleted while connected is made again too."""
    state = natsclient.NatsState()
    nc = await natsclient.connect(nats_server.url, state=state)
    js = nc.jetstream()
    keeper = natsclient.JetStreamKeeper([natsclient.work_stream(), natsclient.work_queue_consumer("stream-red", 1_000)], state)
    missing = ["JetStream stream AGENTNET_WORK missing", "JetStream consumer stream-red missing"]
    try:
        assert keeper.not_ready() == missing  # not looked for yet
        await keeper.check(js)
        assert keeper.not_ready() == []
        info = await js.consumer_info(natsclient.WORK_STREAM, "stream-red")
        assert info.config.filter_subject == "work.red" and info.config.ack_policy == "explicit"

        await js.delete_consumer(natsclient.WORK_STREAM, "stream-red")
        await keeper.check(js)
        assert (await js.consumer_info(natsclient.WORK_STREAM, "stream-red")).name == "stream-red"

        nats_server.stop()
        empty_the_store(nats_server)
        nats_server.start()
        await eventually(lambda: state.connected and state.connections == 2, 20, "the client to reconnect")
        assert keeper.not_ready() == missing  # seen before the restart: that says nothing now
        await keeper.check(js)
        assert keeper.not_ready() == []
        assert (await js.stream_info(natsclient.WORK_STREAM)).config.subjects == [natsclient.WORK_SUBJECTS]
    finally:
        await nc.close()


async def test_a_reconnection_is_counted_before_the_client_says_connected(nats_server):
    """nats-py says connected, then makes a round trip, then calls its reconnected callback. A count kept in
    that callback let readiness pass in between, with the objects seen on the old connection (CI: stream-red
    ready after a restart with an empty store, its consumer not made yet). Every loop turn is sampled, so the
    sampler runs inside that round trip."""
    state = natsclient.NatsState()
    nc = await natsclient.connect(nats_server.url, state=state)
    keeper = natsclient.JetStreamKeeper([natsclient.work_stream()], state)
    samples: list[tuple[bool, list[str]]] = []

    async def sample() -> None:
        while True:
            samples.append((state.connected, keeper.not_ready()))
            await asyncio.sleep(0)

    try:
        await keeper.check(nc.jetstream())
        nats_server.stop()
        await eventually(lambda: not state.connected, 20, "the client to see the server gone")
        sampler = asyncio.create_task(sample())
        nats_server.start()
        await eventually(lambda: state.connected, 20, "the client to reconnect")
        sampler.cancel()
        connected = [missing for up, missing in samples if up]
        assert connected, "no sample after the reconnection"
        assert all(missing == ["JetStream stream AGENTNET_WORK missing"] for missing in connected), connected[:3]
    finally:
        await nc.close()


async def test_up_answers_ready_for_the_whole_process(nats_server, tmp_path):
    """`agentnet up` mounts everything on one port: /ready at the root covers the agents and every
    component, each component's own /ready under its prefix covers just it."""
    body = {"metadata": {"name": "up"}, "spec": {"agents": 4, "topology": {"kind": "ring"},
            "components": [{"name": "stream-red"}, {"name": "duck-colors"}]}}  # fmt: skip
    net = NetworkConfig.from_json(network_document_from(body))
    port = free_port()
    config = load_config(env={}, network=net, agent_ids=tuple(range(net.size)), nats_url=nats_server.url,
                         http_host="127.0.0.1", http_port=port, data_dir=str(tmp_path))  # fmt: skip
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_network(config, stop, started=started))
    try:
        await asyncio.wait_for(started.wait(), 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await eventually(lambda: _status(client, 200), 20, "the whole process ready")
            assert (await client.get("/stream/red/ready")).json() == {"status": "ready", "app": "stream-red"}
            nats_server.stop()

            async def every_part_unready():
                status, body = await readiness(client)
                return status == 503 and set(body["reasons"]) == {"NATS disconnected", "stream-red: NATS disconnected"}

            await eventually(every_part_unready, 20, "the agents and stream-red to be unready")
            assert (await client.get("/colors/ready")).status_code == 200  # duck-colors needs no NATS
            assert (await client.get("/stream/red/ready")).json()["reasons"] == ["NATS disconnected"]
            nats_server.start()
            await eventually(lambda: _status(client, 200), 20, "the whole process ready again")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_refusal_stays_the_reason_through_the_hang_up_that_follows_it():
    """The server hangs up after refusing our credentials, and nats-py may report the reset after the
    refusal (a real server does both, in either order, so this feeds the callbacks the order that
    flipped /ready to 'disconnected' between attempts and failed a readiness test under load). A
    server that is not there at all is a disconnection again."""
    state = natsclient.NatsState()
    on_error = state.callbacks()["error_cb"]
    await on_error(Exception("nats: 'Authorization Violation'"))
    await on_error(ConnectionResetError(104, "Connection reset by peer"))
    assert state.not_ready() == [natsclient.NATS_AUTHORIZATION]
    await on_error(ConnectionRefusedError(111, "Connection refused"))
    assert state.not_ready() == [natsclient.NATS_DISCONNECTED]
