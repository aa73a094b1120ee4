"""Malformed NATS traffic, as anyone with a plain NATS client could publish it on agentnet's subjects."""

from __future__ import annotations

import json
import random

from agentnet_runtime.agent.transport import FRAGMENT

GOOD = json.dumps({"from": 1, "stamp": None, "body": {"clock": {"r1": 3}}}).encode()
HUGE = "1" + "0" * 40  # beyond 64 bits


def payloads(seed: int = 0) -> list[tuple[str, bytes]]:
    """(what it is, bytes) of messages that are not what any agentnet subject carries. Those named "body: ..."
    are envelopes whose body is wrong for every kind of agent message; a subject that ignores the body (the
    roll call, broadcast.heartbeat) takes them."""
    noise = random.Random(seed)
    return [
        ("empty", b""),
        ("truncated JSON", GOOD[: len(GOOD) // 2]),
        ("truncated JSON", GOOD[:-1]),
        *(("random bytes", noise.randbytes(noise.randint(1, 200))) for _ in range(4)),
        ("not UTF-8", b'{"from": 1, "body": "\xff\xfe"}'),
        ("huge number", f'{{"from": {HUGE}, "stamp": null, "body": {{}}}}'.encode()),
        ("body: huge number", f'{{"from": 1, "stamp": null, "body": {{"clock": {{"r1": {HUGE}}}}}}}'.encode()),
        ("body: huge number", b'{"from": 1, "stamp": null, "body": {"clock": {"r1": 1e308}}}'),
        ("no body", b'{"from": 1}'),  # the KeyError: 'body' of issue 19
        ("wrong shape", b"[]"),
        ("wrong shape", b'"a string"'),
        ("wrong shape", b"42"),
        ("wrong shape", b'{"from": "seven", "stamp": null, "body": {}}'),
        ("wrong shape", b'{"from": true, "stamp": null, "body": {}}'),
        ("wrong shape", b'{"from": 1, "stamp": "yesterday", "body": {}}'),
        ("wrong shape", b'{"from": 1, "stamp": {"lamport": -1}, "body": {}}'),
        ("body: wrong shape", b'{"from": 1, "stamp": null, "body": {"clock": "now"}}'),
        ("body: wrong shape", b'{"from": 1, "stamp": null, "body": {"clock": {"r1": -5}}}'),
        ("body: wrong shape", b'{"from": 1, "stamp": null, "body": {"clock": {"r1": "3"}, "digest": 7}}'),
        ("body: wrong shape", b'{"from": 1, "stamp": null, "body": {"digest": {"nested": [1, 2]}, "nodes": "many"}}'),
        ("body: wrong shape", b'{"from": 1, "stamp": null, "body": "not a delta"}'),
        ("body: wrong shape", b'{"from": 1, "stamp": null, "body": {"batches": 3}}'),
        ("nested deep", b"[" * 5000 + b"]" * 5000),
        ("deep term", b"(" * 3000 + b"x" + b")" * 3000),  # past Python's recursion limit
        ("long numeral", b"1" * 5000),  # past int()'s digit limit
    ]


FRAGMENTS = [  # (header, bytes): a fragment header that does not say "<id> <index> <count>"
    ("garbage", b"x"),
    ("id 5 2", b"x"),  # index past the count
    ("id 0 999999999", b"x"),  # a message of a billion parts
    ("id -1 2", b"x"),
]


def subjects(agents: int) -> list[str]:
    """Every subject agents and components listen on, for a network of `agents` agents."""
    return [
        *(f"agent.{agent}.{kind}" for agent in range(agents) for kind in ("state", "sync", "ack", "heartbeat")),
        "broadcast.heartbeat", "agents.heartbeat", "network.status", "stream.derived.red", "stream.derived.blue",
        "agent.-1.ack", "agent.-4.state", "agent.-6.state", "agent.-7.state",  # components' own inboxes
        "crdt.merge", "timeline.events", "timeline.retention", "work.red", "work.green",
    ]  # fmt: skip


async def publish_all(client, subject_list: list[str], seed: int = 0) -> int:
    """Publish every malformed payload and fragment on every subject; the number of messages sent."""
    sent = 0
    for subject in subject_list:
        for _, data in payloads(seed):
            await client.publish(subject, data)
            sent += 1
        for header, data in FRAGMENTS:
            await client.publish(subject, data, headers={FRAGMENT: header})
            sent += 1
    await client.flush()
    return sent
