"""The snapshot file format: an e-graph state (EGraph.to_wire()) as columns of integers, compressed with lzma.

Most of a JSON snapshot is node ids: 16 hex digits of hash for every e-node and every reference
to one, which no compressor shrinks. But an id is the hash of its content (events.node_id), so a
file need not hold it: every e-node is a row of one table, children before parents (an id hashes
its children's ids, so there is no cycle), holding its operator (an index into the symbols) and
its children as distances back in the table; reading recomputes each row's id. Ids whose e-node
the state does not hold (children the budget evicted, colour tags and unions of ids that have not
arrived) go first, 8 raw bytes each. Every other number (epochs, masks, sequence numbers,
references) has a column of its own, delta-coded where neighbours are alike, in the narrowest
integer type that holds it, so lzma finds the runs.

A file: MAGIC, then xz (lzma) of: the header's length (4 bytes, little-endian), the header (JSON:
the wire form's small fields, the symbols, and each column's name, type code and length), then
the columns in the header's order. `decode(encode(wire))` gives the wire form back, except that
the checkpoint's e-nodes come in table order (a set: the state it restores is the same).
"""

from __future__ import annotations

import lzma
import sys
from array import array
from itertools import accumulate

import orjson

from agentnet_runtime.core.events import EPOCH_SLOTS, node_id

MAGIC = b"AGNTSNAP"
FORMAT = 1
PRESET = 6  # lzma's default: 9 saves under 2 % more here and takes twice the time
ID_BYTES = 8  # an id is 16 hex digits
_LIMITS = [(code, 2 ** (8 * array(code).itemsize - 1)) for code in "bhiq"]


# --- writing -------------------------------------------------------------------------------------------------


def _deltas(values: list[int]) -> list[int]:
    return [b - a for a, b in zip([0, *values], values)]


class _Writer:
    """Interns symbols and ids, and collects the columns."""

    def __init__(self, external: list[str], rows: list[str], symbols: list[str]):
        self.index = {nid: i for i, nid in enumerate([*external, *rows])}
        self.symbols = {name: i for i, name in enumerate(dict.fromkeys(symbols))}
        self.columns: dict[str, list[int]] = {}

    def put(self, name: str, values: list[int], delta: bool = False) -> None:
        self.columns[name] = _deltas(values) if delta else values

    def refs(self, name: str, ids) -> None:
        self.put(name, [self.index[nid] for nid in ids], delta=True)

    def epochs(self, prefix: str, rows) -> None:
        for slot in range(EPOCH_SLOTS):
            self.put(f"{prefix}{slot}", [epochs[slot] for epochs in rows], delta=True)


def _topological(shapes: dict[str, tuple[str, list[str]]]) -> list[str]:
    """Every id of `shapes`, children first, otherwise in their own order (ids are hashes: no cycles)."""
    placed: set[str] = set()
    for nid, (_, kids) in shapes.items():  # usually so already: e-nodes are made after their children
        for kid in kids:
            if kid not in placed and kid in shapes:
                break
        else:
            placed.add(nid)
            continue
        break
    else:
        return list(shapes)
    order: list[str] = []
    placed = set()
    for root in shapes:
        stack = [root]
        while stack:
            nid = stack[-1]
            if nid in placed:
                stack.pop()
                continue
            waiting = [kid for kid in shapes[nid][1] if kid in shapes and kid not in placed]
            if waiting:
                stack.extend(reversed(waiting))
            else:
                placed.add(nid)
                order.append(nid)
                stack.pop()
    return order


def encode(wire: dict) -> bytes:
    """The snapshot bytes of a state's wire form (EGraph.to_wire())."""
    checkpoint, batches = wire.get("checkpoint"), wire["batches"]
    c_nodes = checkpoint["nodes"] if checkpoint else []
    shapes: dict[str, tuple[str, list[str]]] = {}
    for nid, _, op, *kids in c_nodes:
        shapes[nid] = (op, kids)
    for batch in batches:
        for nid, _, op, *kids in batch[2]:
            shapes.setdefault(nid, (op, kids))
    rows = _topological(shapes)
    mentioned = [kid for op, kids in shapes.values() for kid in kids]
    if checkpoint:
        mentioned += [end for a, b, _ in checkpoint["unions"] for end in (a, b)] + [nid for nid, _ in checkpoint["tags"]]
    for batch in batches:
        mentioned += [end for union in batch[3] for end in union] + [nid for nid, _ in batch[4]]
    external = list(dict.fromkeys([nid for nid in mentioned if nid not in shapes]))
    ops = [shapes[nid][0] for nid in rows]
    out = _Writer(external, rows, ops + [batch[0] for batch in batches])
    symbol = out.symbols.__getitem__

    out.put("op", [symbol(op) for op in ops])
    out.put("arity", [len(shapes[nid][1]) for nid in rows])
    out.put("kids", [row - out.index[kid] for row, nid in enumerate(rows, len(external)) for kid in shapes[nid][1]])
    if checkpoint:
        out.refs("c_node", [node[0] for node in c_nodes])
        out.epochs("c_epoch", [node[1] for node in c_nodes])
        out.refs("u_a", [union[0] for union in checkpoint["unions"]])
        out.refs("u_b", [union[1] for union in checkpoint["unions"]])
        out.put("u_epoch", [union[2] for union in checkpoint["unions"]], delta=True)
        out.refs("t_node", [tag[0] for tag in checkpoint["tags"]])
        out.epochs("t_epoch", [tag[1] for tag in checkpoint["tags"]])
    out.put("b_origin", [symbol(batch[0]) for batch in batches])
    for name, field in (("b_seq", 1), ("b_epoch", 5)):
        out.put(name, [batch[field] for batch in batches], delta=True)
    for name, field in (("b_nodes", 2), ("b_unions", 3), ("b_tags", 4)):
        out.put(name, [len(batch[field]) for batch in batches])
    out.refs("bn_node", [node[0] for batch in batches for node in batch[2]])
    out.put("bn_mask", [node[1] for batch in batches for node in batch[2]])
    out.refs("bu_a", [union[0] for batch in batches for union in batch[3]])
    out.refs("bu_b", [union[1] for batch in batches for union in batch[3]])
    out.refs("bt_node", [tag[0] for batch in batches for tag in batch[4]])
    out.put("bt_mask", [tag[1] for batch in batches for tag in batch[4]])

    header = {key: value for key, value in wire.items() if key not in ("batches", "checkpoint")}
    header["format"] = FORMAT
    header["base"] = checkpoint["base"] if checkpoint else None
    header["symbols"] = list(out.symbols)
    parts, described = [bytes.fromhex("".join(external))], [["external", "B", len(external) * ID_BYTES]]
    for name, values in out.columns.items():
        column = _packed(values)
        parts.append(column.tobytes())
        described.append([name, column.typecode, len(values)])
    header["columns"] = described
    head = orjson.dumps(header)
    return MAGIC + lzma.compress(b"".join([len(head).to_bytes(4, "little"), head, *parts]), preset=PRESET)


def _packed(values: list[int]) -> array:
    low, high = min(values, default=0), max(values, default=0)
    code = next(code for code, limit in _LIMITS if -limit <= low and high < limit)
    column = array(code, values)
    if sys.byteorder == "big":
        column.byteswap()  # files are little-endian
    return column


# --- reading -------------------------------------------------------------------------------------------------


def decode(data: bytes) -> dict:
    """The wire form a snapshot holds; ValueError (naming what is wrong) for anything else."""
    if not data.startswith(MAGIC):
        raise ValueError("not an agentnet snapshot (no AGNTSNAP magic)")
    try:
        return _decode(lzma.decompress(data[len(MAGIC) :]))
    except lzma.LZMAError as error:
        raise ValueError(f"snapshot: {error}") from None
    except (IndexError, KeyError, TypeError, OverflowError, StopIteration) as error:  # columns that do not fit together
        raise ValueError(f"malformed snapshot: {type(error).__name__}: {error}") from None


def _decode(raw: bytes) -> dict:
    size = int.from_bytes(raw[:4], "little")
    header = orjson.loads(raw[4 : 4 + size])
    if header.get("format") != FORMAT:
        raise ValueError(f"unsupported snapshot format {header.get('format')!r} (expected {FORMAT})")
    columns: dict[str, list[int]] = {}
    external = b""
    offset = 4 + size
    for name, code, length in header["columns"]:
        end = offset + length * array(code).itemsize
        if end > len(raw):
            raise ValueError(f"snapshot: column {name!r} runs past the end of the file")
        if name == "external":
            external = raw[offset:end]
        else:
            column = array(code, raw[offset:end])
            if sys.byteorder == "big":
                column.byteswap()
            columns[name] = column.tolist()
        offset = end
    symbols = header["symbols"]

    def undelta(name: str) -> list[int]:
        return list(accumulate(columns[name]))

    ids = [external[i : i + ID_BYTES].hex() for i in range(0, len(external), ID_BYTES)]
    shapes: dict[str, tuple[str, list[str]]] = {}
    kids_column, at = columns["kids"], 0
    for op, arity in zip(columns["op"], columns["arity"]):
        row = len(ids)
        distances = kids_column[at : at + arity]
        at += arity
        if len(distances) != arity or not all(0 < distance <= row for distance in distances):
            raise ValueError(f"malformed snapshot: e-node row {row} refers to a row that is not before it")
        kids = [ids[row - distance] for distance in distances]
        nid = node_id(symbols[op], kids)
        ids.append(nid)
        shapes[nid] = (symbols[op], kids)

    def refs(name: str) -> list[str]:
        indices = undelta(name)
        if indices and min(indices) < 0:
            raise ValueError(f"malformed snapshot: column {name!r} refers to a negative row")
        return [ids[i] for i in indices]

    def epochs(prefix: str) -> list[list[int]]:
        return [list(slots) for slots in zip(*[undelta(f"{prefix}{slot}") for slot in range(EPOCH_SLOTS)])]

    wire = {key: value for key, value in header.items() if key not in ("format", "base", "symbols", "columns")}
    if header["base"] is not None:
        nodes = [[nid, slots, shapes[nid][0], *shapes[nid][1]] for nid, slots in zip(refs("c_node"), epochs("c_epoch"))]
        unions = [[a, b, epoch] for a, b, epoch in zip(refs("u_a"), refs("u_b"), undelta("u_epoch"))]
        tags = [[nid, slots] for nid, slots in zip(refs("t_node"), epochs("t_epoch"))]
        wire["checkpoint"] = {"base": header["base"], "nodes": nodes, "unions": unions, "tags": tags}
    bn_nodes, bn_masks = iter(refs("bn_node")), iter(columns["bn_mask"])
    bu_pairs, bt_tags = iter(zip(refs("bu_a"), refs("bu_b"))), iter(zip(refs("bt_node"), columns["bt_mask"]))
    batches = []
    for origin, seq, epoch, n_nodes, n_unions, n_tags in zip(columns["b_origin"], undelta("b_seq"), undelta("b_epoch"),
                                                             columns["b_nodes"], columns["b_unions"], columns["b_tags"]):  # fmt: skip
        nodes = [[nid, next(bn_masks), shapes[nid][0], *shapes[nid][1]] for nid in [next(bn_nodes) for _ in range(n_nodes)]]
        unions = [list(next(bu_pairs)) for _ in range(n_unions)]
        tags = [list(next(bt_tags)) for _ in range(n_tags)]
        batches.append([symbols[origin], seq, nodes, unions, tags, epoch])
    wire["batches"] = batches
    return wire
