"""The NATS adapter on a real nats-server: large messages in fragments; every connection bounds how long
what it sent may go unacknowledged."""

from __future__ import annotations

import os
import socket

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_support import eventually, server_has_read

from agentnet_runtime import natsclient
from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.core.egraph import Delta, EGraph
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
        await server_has_read(receiver.nc)
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


async def test_a_delta_goes_to_another_process_in_its_wire_form_and_to_this_one_as_it_is(nats_server):
    source = EGraph("0.test")
    source.add_term(parse("x * (y + z)"))
    delta = source.delta_since({})
    sender, receiver = Transport(nats_server.url, name="sender"), Transport(nats_server.url, name="receiver")
    await sender.connect()
    await receiver.connect()
    received: dict[str, list] = {"other process": [], "this process": []}

    def keeper(where: str):
        async def handler(subject, envelope, message):
            received[where].append(envelope["body"])

        return handler

    try:
        await receiver.subscribe("agent.1.state", keeper("other process"))
        await server_has_read(receiver.nc)
        await sender.subscribe_inbox(2, keeper("this process"))
        assert await sender.send("agent.1.state", 0, 1, delta)
        assert await sender.send("agent.2.state", 0, 2, delta)
        await eventually(lambda: received["other process"], 10, "the delta in the other process")
        [wire] = received["other process"]
        assert wire == delta.to_wire()  # not orjson's rendering of the dataclass, which no reader takes
        assert EGraph("1.test").join(Delta.from_wire(wire)).digest() == source.digest()
        assert received["this process"] == [delta] and received["this process"][0] is delta  # neither encoded nor parsed
    finally:
        await sender.close()
        await receiver.close()


def unacknowledged_timeouts_to(port: int) -> list[int]:
    """TCP_USER_TIMEOUT (ms) of each of this process's TCP connections to `port`, read from its sockets' fds."""
    found = []
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            with socket.socket(fileno=os.dup(fd)) as sock:
                if sock.type == socket.SOCK_STREAM and sock.getpeername()[1:2] == (port,):
                    found.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))
        except OSError:  # closed meanwhile, or not connected
            continue
    return found


async def test_a_connection_bounds_how_long_sent_data_may_go_unacknowledged_after_a_reconnection_too(nats_server):
    """Without the bound, a server whose address vanished (its pod deleted) keeps nats-py from reconnecting
    for the ~15 minutes the kernel retransmits to it (nats-io/nats.py#671)."""
    transport = Transport(nats_server.url, name="bounded")
    await transport.connect()
    try:
        bound = natsclient.UNACKNOWLEDGED_SECONDS * 1000
        assert unacknowledged_timeouts_to(nats_server.port) == [bound]
        nats_server.stop()
        await eventually(lambda: not transport.connected, 10, "the disconnection")
        nats_server.start()
        await eventually(lambda: transport.connected, 20, "the reconnection")
        assert unacknowledged_timeouts_to(nats_server.port) == [bound]
    finally:
        await transport.close()


@settings(max_examples=200)
@given(sizes=st.lists(st.integers(0, 300), max_size=40), limit=st.integers(60, 400))
def test_packed_envelopes_fit_the_limit_and_account_for_every_item_in_order(sizes, limit):
    """Timeline batches for JetStream: each envelope fits, the items come out in order, and one too
    large for any envelope is left out yet accounted for (so a resend resumes at the right place)."""
    items = [orjson.dumps({"n": i, "pad": "x" * size}) for i, size in enumerate(sizes)]
    room = limit - len(b'{"from":3,"stamp":null,"body":[]}')
    envelopes = Transport.packed(3, items, limit)
    position = 0
    for count, data in envelopes:  # each accounts for the next `count` items: it carries those that fit
        assert len(data) <= limit
        body = orjson.loads(data)
        assert body["from"] == 3 and body["body"]
        assert body["body"] == [orjson.loads(item) for item in items[position : position + count] if len(item) <= room]
        position += count
    assert all(len(item) > room for item in items[position:])  # only what fits nowhere is left unaccounted
