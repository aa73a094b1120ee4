"""The NATS adapter on a real nats-server: large messages in fragments; local snapshots."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from runtime_support import FAST, eventually, network, runtime_config

from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(30)


async def test_messages_larger_than_max_payload_arrive_whole(nats_server):
    sender, receiver = Transport(nats_server.url, name="sender"), Transport(nats_server.url, name="receiver")
    await sender.connect()
    await receiver.connect()
    received: list[dict] = []

    async def handler(subject, envelope, message):
        received.append(envelope)

    try:
        await receiver.subscribe("agent.1.state", handler)
        await receiver.nc.flush()
        big = {"blob": "x" * (3 * sender.nc.max_payload)}  # three times what one message may carry
        assert await sender.send("agent.1.state", 0, 1, big, {"lamport": 1})
        assert await sender.send("agent.1.state", 0, 1, {"small": True})
        await eventually(lambda: len(received) == 2, 10, "both messages")
        assert received[0]["body"] == big and received[0]["stamp"] == {"lamport": 1}
        sender.partition([{0}, {1}])
        assert not await sender.send("agent.1.state", 0, 1, {"dropped": True})
        sender.heal()
    finally:
        await sender.close()
        await receiver.close()


async def test_snapshot_restores_state_without_neighbours(tmp_path):
    settings = replace(FAST, snapshot_interval=60)
    config = runtime_config(network(9), "nats://127.0.0.1:1", agent_ids=[4], settings=settings, data_dir=str(tmp_path))
    first = AgentHost(config)
    await first.start()
    first.agents[4].submit(parse("x*(y+z)"))
    digest = first.agents[4].egraph.digest()
    await first.stop()  # NATS never answered; the snapshot is written on the way out
    assert (tmp_path / "snapshots" / "agent-4.json").exists()
    second = AgentHost(config)
    await second.start()
    try:
        assert second.agents[4].egraph.digest() == digest
        assert second.agents[4].replica != first.agents[4].replica  # a new life, a new replica id
    finally:
        await asyncio.wait_for(second.stop(), 10)
