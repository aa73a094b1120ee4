"""The columnar snapshot format: any replica's state (compacted, under a budget, restarted, with
events in flight) comes back exactly, and a damaged file is refused with a clear error."""

from __future__ import annotations

import gzip
import lzma

import orjson
import pytest
from core.core_strategies import Network, gossip
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.agent import snapshot_format, snapshots
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.core.terms import parse


def canonical(wire: dict) -> dict:
    """A wire form with the checkpoint's e-nodes in id order (the format keeps them in table order)."""
    wire = orjson.loads(orjson.dumps(wire))
    if wire.get("checkpoint"):
        wire["checkpoint"]["nodes"].sort()
    return wire


@settings(max_examples=120)
@given(gossip(), st.sampled_from([None, 3, 6, 12]), st.integers(0, 2))
def test_any_replica_state_round_trips_exactly(schedule, max_nodes, which):
    network = Network(3, max_nodes).run(schedule)
    replica = network.replicas[which]
    wire = replica.to_wire()
    data = snapshot_format.encode(wire)
    assert data.startswith(snapshot_format.MAGIC)
    decoded = snapshot_format.decode(data)
    assert canonical(decoded) == canonical(wire)
    restored = EGraph("9.restored", max_nodes).join(Delta.from_wire(decoded))
    assert (restored.digest(), len(restored), restored.clock, restored.floor) == (replica.digest(), len(replica), replica.clock, replica.floor)
    assert restored.events_held() == replica.events_held()


def test_a_snapshot_is_far_smaller_than_gzipped_json():
    graph = EGraph("1.a")
    for i in range(300):
        graph.add_term(parse(f"a{i}*(b{i}+c{i})+d{i}"))
    wire = graph.to_wire()
    columnar, json_gz = len(snapshot_format.encode(wire)), len(gzip.compress(orjson.dumps(wire)))
    assert columnar * 3 < json_gz, (columnar, json_gz)


def damaged(data: bytes) -> list[tuple[str, bytes]]:
    head = len(snapshot_format.MAGIC)
    raw = lzma.decompress(data[head:])
    size = int.from_bytes(raw[:4], "little")
    header = orjson.loads(raw[4 : 4 + size])
    future = dict(header, format=snapshot_format.FORMAT + 1)
    short = dict(header, columns=[[name, code, length + 1000] for name, code, length in header["columns"]])

    def rebuilt(new_header: dict, body: bytes = raw[4 + size :]) -> bytes:
        head_bytes = orjson.dumps(new_header)
        return snapshot_format.MAGIC + lzma.compress(len(head_bytes).to_bytes(4, "little") + head_bytes + body)

    body, offset = bytearray(raw[4 + size :]), 0
    for name, code, length in header["columns"]:
        if name == "kids":
            body[offset] = 127  # the first child reference now points before the table's start
        offset += length * {"B": 1, "b": 1, "h": 2, "i": 4, "q": 8}[code]

    return [
        ("not an agentnet snapshot", b"PK\x03\x04" + data),
        ("snapshot: ", data[: len(data) // 2]),  # a lost tail: xz refuses it
        ("unsupported snapshot format", rebuilt(future)),
        ("runs past the end of the file", rebuilt(short)),
        ("refers to a row that is not before it", rebuilt(header, bytes(body))),
    ]


def test_a_damaged_snapshot_is_refused_saying_what_is_wrong():
    graph = EGraph("1.a")
    for i in range(20):
        graph.add_term(parse(f"x{i}*(y+{i})"))
    for expected, data in damaged(snapshot_format.encode(graph.to_wire())):
        with pytest.raises(ValueError, match=expected):
            snapshot_format.decode(data)


def test_a_snapshot_of_the_earlier_format_restores_and_the_first_write_keeps_it_as_the_previous(tmp_path):
    older, newer = EGraph("4.a"), EGraph("4.b")
    older.add_term(parse("a*(b+c)"))
    newer.join(older.delta_since({}))
    newer.add_term(parse("d+e"))
    old_newest, old_previous = snapshots.legacy_paths(tmp_path, 4)
    old_newest.parent.mkdir(parents=True)
    old_newest.write_bytes(gzip.compress(orjson.dumps(older.to_wire())))
    old_previous.write_bytes(b"an even older one")
    restored = snapshots.read(tmp_path, 4)
    assert restored.path == old_newest and EGraph("4.c").join(restored.state).digest() == older.digest()

    newest, previous = snapshots.paths(tmp_path, 4)
    assert snapshots.write(tmp_path, 4, newer.to_wire()) == newest
    assert not old_newest.exists() and not old_previous.exists()
    assert EGraph("4.c").join(snapshots.read(tmp_path, 4).state).digest() == newer.digest()
    newest.write_bytes(newest.read_bytes()[:10])  # the new one is lost: the old format's, now the previous, serves
    restored = snapshots.read(tmp_path, 4)
    assert restored.source == "previous" and restored.path == previous
    assert EGraph("4.c").join(restored.state).digest() == older.digest()
