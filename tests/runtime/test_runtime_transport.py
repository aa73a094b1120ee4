"""The NATS adapter on a real nats-server: large messages in fragments."""

from __future__ import annotations

import pytest
from runtime_support import eventually

from agentnet_runtime.agent.transport import Transport

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
