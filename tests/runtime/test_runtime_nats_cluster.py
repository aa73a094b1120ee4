"""Clients of a managed NATS cluster (the operator's configuration run by real nats-servers on
loopback, rig.natscluster): they verify the servers against the network's CA, and when their
server goes they carry on through another, with the work queue's stream kept on three servers."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from agentnet_runtime import natsclient
from agentnet_runtime.config import ConfigError, NatsAuth
from rig.natscluster import LoopbackCluster, loopback_material

RED = "stream-red"  # the identity that queues work.red and keeps the work queue's stream (permissions.py)


@pytest.fixture(scope="module")
def cluster():
    with LoopbackCluster(3) as running:
        yield running


async def connected_port(client) -> int:
    return client.connected_url.port


async def test_a_client_verifies_the_servers_against_the_networks_ca(cluster):
    """Without the CA, or with another one, the handshake fails: the client refuses a server it cannot verify."""
    other_ca = loopback_material(cluster.network).ca_cert
    for auth in (replace(cluster.auth(RED), tls_ca=None), replace(cluster.auth(RED), tls_ca=other_ca)):
        nats = __import__("nats")
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            await nats.connect(natsclient.server_urls(cluster.url), allow_reconnect=False, connect_timeout=5,
                               max_reconnect_attempts=0, **auth.connect_options())  # fmt: skip
    client = await natsclient.connect(cluster.url, cluster.auth(RED))
    assert client.is_connected and client.connected_url.scheme == "tls"
    await client.close()


def test_a_ca_that_is_no_certificate_is_refused_naming_the_setting(tmp_path):
    bad = tmp_path / "ca.crt"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="AGENTNET_NATS_CA_FILE"):
        NatsAuth().with_ca_file(str(bad)).connect_options()
    with pytest.raises(ConfigError, match="AGENTNET_NATS_CA_FILE.*cannot read"):
        NatsAuth().with_ca_file(str(tmp_path / "missing.crt"))
    assert NatsAuth().with_ca_file(None) == NatsAuth()


def test_a_url_list_is_every_server():
    assert natsclient.server_urls("tls://a:4222, tls://b:4222,,tls://c:4222") == ["tls://a:4222", "tls://b:4222", "tls://c:4222"]
    assert natsclient.server_urls("nats://one:4222") == ["nats://one:4222"]


async def test_work_survives_the_loss_of_the_clients_server(cluster):
    """Messages acknowledged by the R3 work-queue stream before and after the client's own server
    stops are all there, and the client is on another server without being told."""
    state = natsclient.NatsState()
    client = await natsclient.connect(cluster.url, cluster.auth(RED), state=state)
    js = client.jetstream()
    async with asyncio.timeout(60):
        while True:  # the cluster's JetStream leader is elected first
            try:
                await natsclient.work_stream(3).create(js)
                break
            except Exception:
                await asyncio.sleep(0.5)
    before = [await js.publish(natsclient.work_subject("RED"), f"before {i}".encode()) for i in range(20)]
    first = await connected_port(client)
    (victim,) = [s for s in cluster.servers if s.port == first]
    victim.stop()
    try:
        async with asyncio.timeout(60):
            while not (client.is_connected and client.connected_url.port != first):
                await state.wait_changed(1.0)
        after = []
        async with asyncio.timeout(60):
            while len(after) < 20:  # a new stream leader may be elected meanwhile: retry what timed out
                try:
                    # the same Nats-Msg-Id: a retry of a publish stored but not acknowledged is not stored twice
                    after.append(await js.publish(natsclient.work_subject("RED"), f"after {len(after)}".encode(),
                                                  headers={"Nats-Msg-Id": f"after-{len(after)}"}))
                except Exception:
                    await asyncio.sleep(0.2)
        assert state.connections >= 2  # a reconnection: the JetStreamKeeper looks again
        info = await js.stream_info(natsclient.WORK_STREAM)
        assert info.state.messages == 40 and [a.seq for a in before + after] == list(range(1, 41))
    finally:
        victim.start()
        await client.close()
