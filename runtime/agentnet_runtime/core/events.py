"""Causality of the CRDT e-graph: events and their wire form, the event log and its checkpoint,
and the epochs the knowledge budget (retention.py) reads.

Events. Local changes collect in an open batch that becomes one event (a "dot": replica,
sequence number) when someone reads the clock or asks for a delta. An event keeps exactly
what it added (ids, colour bits, unions) and an epoch stamp (below), so it means the same
thing everywhere. The vector clock advances contiguously per replica; dots received ahead of
a gap wait in `early` (their contents are joined at once; they are not resent when they arrive).

Invariant: "has seen dot d" implies "has d's contents" (less what the budget evicted, which
every replica evicts alike).

Compaction. Events every peer that asks this replica for deltas has seen are only history:
`EventLog.compact(stable)` drops events at or below `stable` (pointwise, never above the clock)
and raises the `base` clock. The state itself is the checkpoint: it holds every dropped event's
contents. A delta for a clock that covers the base is the events above that clock, as before;
for one that does not (a peer that restarted empty or from an old snapshot, a component that
joins late), `delta_since` answers with a checkpoint (the whole state with per-element epochs
and the base) plus the events above the base. The receiver joins it like any delta: contents
set-unioned, its clock and base raised to the checkpoint's base (what it cannot send as
events any more it now holds as state). So a replica holds its knowledge plus the events
some peer may still lack, not its history.

Replica ids and restarts. A clock has one entry per replica id that ever made an event, so ids
must not be minted per restart. An agent that stopped cleanly seals its last snapshot (agent/
snapshots.py): that snapshot holds every event of its id, so the next start restores it and numbers
on under the same id; no dot is ever reused, because the seal is taken before the first event. Only
a start without a matching seal (a crash: events made after the last snapshot may live at the
neighbours) takes a new id, `<agent>.<boot>`. Retiring such ids afterwards was tried and is unsound
without agreement on a boot's final count: the property tests (test_core_compaction) found a
replica that restarted empty, never saw boot a, retires boot b, and its per-agent watermark then
claims a too, so a peer holding a's events never sends them and the two diverge. So an entry costs
one int per crash per clock. Components whose replica ids come and go with their workers and pods
(the stream components) never reach the clocks: agents adopt their deltas as events of their own
(EGraph.adopt).

Epochs. Every event carries an epoch stamp from its origin, a hybrid clock: max(the wall-clock
epoch, EPOCH_SECONDS long, the largest epoch it has absorbed), so a derived fact is never
older than its premises. Each element of the state (an e-node's presence, each colour bit of
it, a union) has the largest epoch of the events that mention it.
"""

import threading
from bisect import bisect_right, insort
from collections import OrderedDict
from dataclasses import dataclass
from hashlib import blake2b
from typing import Iterable

from mypy_extensions import mypyc_attr

from .clock import VectorClock, dominates
from .clock import validate as validate_clock
from .colour import ALL_COLOURS_MASK, COLOURS

NodeId = str  # 16 lowercase hex digits
ID_LENGTH = 16
STATE_KIND = "agentnet.egraph.state"
DELTA_KIND = "agentnet.egraph.delta"
WIRE_VERSION = 2  # 2: events carry an epoch; deltas a floor and maybe a checkpoint
READABLE_VERSIONS = (1, 2)  # a version-1 snapshot still restores (its events get epoch 0)
EPOCH_SECONDS = 10

# A node on the wire and inside a Delta: (id, colour mask, operator, child ids).
NodeRow = tuple[NodeId, int, str, tuple[NodeId, ...]]
# One event: (origin replica, sequence number, nodes it added, unions it added,
# (id, colour bits) it added to nodes already known, its epoch).
BatchRow = tuple[str, int, tuple[NodeRow, ...], tuple[tuple[NodeId, NodeId], ...], tuple[tuple[NodeId, int], ...], int]
# Epochs of an e-node: (its presence, then one per colour bit in COLOURS order; 0 = absent).
Epochs = tuple[int, ...]
EPOCH_SLOTS = 1 + len(COLOURS)
# A checkpoint's node: (id, its epochs, operator, child ids); its union: (a, b, epoch).
CheckpointNode = tuple[NodeId, Epochs, str, tuple[NodeId, ...]]
CheckpointUnion = tuple[NodeId, NodeId, int]


def _seq(batch: BatchRow) -> int:
    return batch[1]


_ID_HASH = blake2b(digest_size=8)  # copied per id: cheaper than setting up blake2b each time


def node_id(op: str, kids: Iterable[NodeId]) -> NodeId:
    """Content address of an e-node: blake2b of the operator (length-prefixed) and child ids."""
    hasher = _ID_HASH.copy()
    hasher.update(f"{len(op)}:{op}({','.join(kids)})".encode())
    return hasher.hexdigest()


def mask_of_epochs(epochs: Epochs) -> int:
    mask = 0
    for bit in range(len(COLOURS)):
        if epochs[1 + bit]:
            mask |= 1 << bit
    return mask


def stable_clock(own: VectorClock, peers: list[VectorClock]) -> VectorClock:
    """What every peer has of what `own` has (pointwise minimum): what EGraph.compact may drop."""
    stable: VectorClock = {}
    for replica, count in own.items():
        for peer in peers:
            count = min(count, peer.get(replica, 0))
        stable[replica] = count
    return stable


# --- deltas and their wire form --------------------------------------------------------------


@mypyc_attr(native_class=False)  # a plain Python class when compiled: it is pickled (see saturate.Budget)
@dataclass(frozen=True)
class Checkpoint:
    """A whole state with the epochs of its elements, standing in for every event up to `base`."""

    base: VectorClock
    nodes: tuple[CheckpointNode, ...] = ()
    unions: tuple[CheckpointUnion, ...] = ()
    tags: tuple[tuple[NodeId, Epochs], ...] = ()  # colour bits of ids whose e-node has not arrived

    def to_wire(self) -> dict:
        return {"base": dict(self.base), "nodes": [[nid, list(epochs), op, *kids] for nid, epochs, op, kids in self.nodes],
                "unions": [list(union) for union in self.unions],
                "tags": [[nid, list(epochs)] for nid, epochs in self.tags]}  # fmt: skip

    @classmethod
    def from_wire(cls, wire: dict) -> "Checkpoint":
        nodes = []
        for nid, epochs, op, *kids in wire["nodes"]:
            if not (isinstance(op, str) and op):
                raise ValueError(f"malformed checkpoint e-node {nid!r}")
            _check_epochs(nid, epochs)
            kids = tuple(kids)
            if nid != node_id(op, kids) or not _all_ids(kids):
                raise ValueError(f"e-node id {nid!r} does not match its content {op!r}{kids}")
            nodes.append((nid, tuple(epochs), op, kids))
        unions = []
        for a, b, epoch in wire["unions"]:
            if not (_is_id(a) and _is_id(b) and type(epoch) is int and epoch >= 0):
                raise ValueError(f"malformed checkpoint union {a!r}, {b!r}, {epoch!r}")
            unions.append((a, b, epoch))
        tags = []
        for nid, epochs in wire.get("tags", ()):
            if not _is_id(nid):
                raise ValueError(f"malformed checkpoint tag {nid!r}")
            tags.append((nid, _check_epochs(nid, epochs)))
        return cls(base=validate_clock(wire["base"]), nodes=tuple(nodes), unions=tuple(unions), tags=tuple(tags))


def _check_epochs(nid, epochs) -> Epochs:
    if not (isinstance(epochs, list) and len(epochs) == EPOCH_SLOTS):
        raise ValueError(f"checkpoint e-node {nid!r}: epochs must be a list of {EPOCH_SLOTS} ints, got {epochs!r}")
    for epoch in epochs:
        if type(epoch) is not int or epoch < 0:
            raise ValueError(f"checkpoint e-node {nid!r}: epochs must be non-negative ints, got {epochs!r}")
    return tuple(epochs)


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class Delta:
    """What one replica knows that a clock has not seen; also the shape of a full state.

    `since` is the clock it was computed against and `clock` the sender's clock:
    a receiver that had seen `since` has seen `clock` once it joins this delta. `floor`:
    the sender's retention floor (elements older are evicted everywhere, see retention.py).
    `checkpoint`: the sender's whole state, when `since` does not cover its base.
    """

    since: VectorClock
    clock: VectorClock
    batches: tuple[BatchRow, ...] = ()
    floor: int = 0
    checkpoint: Checkpoint | None = None

    @property
    def node_count(self) -> int:
        own = 0 if self.checkpoint is None else len(self.checkpoint.nodes)
        return own + sum(len(batch[2]) for batch in self.batches)

    def __bool__(self) -> bool:
        return bool(self.batches) or self.checkpoint is not None

    def to_wire(self) -> dict:
        """Plain JSON-ready dict; a node is [id, mask, op, *child ids], a union [a, b], a tag [id, mask].

        Batches are shared with other wire forms of the same events: read them, do not change them.
        """
        wire = {
            "kind": DELTA_KIND,
            "version": WIRE_VERSION,
            "since": dict(self.since),
            "clock": dict(self.clock),
            "batches": [_batch_to_wire(batch) for batch in self.batches],
            "floor": self.floor,
        }
        if self.checkpoint is not None:
            wire["checkpoint"] = self.checkpoint.to_wire()
        return wire

    @classmethod
    def from_wire(cls, wire: object) -> "Delta":
        """Parse and check a delta or state from the wire; every node id is re-derived from its content.
        A Delta is itself: one handed over in memory (agent/transport.py) never left this process."""
        if isinstance(wire, Delta):
            return wire
        if not isinstance(wire, dict) or wire.get("kind") not in (DELTA_KIND, STATE_KIND):
            raise ValueError(f"not an e-graph delta or state (kind must be {DELTA_KIND!r} or {STATE_KIND!r})")
        version = wire.get("version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"unsupported e-graph wire version {version!r} (expected one of {READABLE_VERSIONS})")
        try:
            batches = tuple([_batch_from_wire(entry, version) for entry in wire["batches"]])
            since, clock = validate_clock(wire.get("since", {})), validate_clock(wire["clock"])
            floor = wire.get("floor", 0)
            if type(floor) is not int or floor < 0:
                raise ValueError(f"floor must be a non-negative int, got {floor!r}")
            checkpoint = Checkpoint.from_wire(wire["checkpoint"]) if wire.get("checkpoint") is not None else None
            return cls(since=since, clock=clock, batches=batches, floor=floor, checkpoint=checkpoint)
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed e-graph wire form: {error!r}") from None


def make_delta(since: VectorClock, clock: VectorClock, batches: tuple[BatchRow, ...], floor: int,
               checkpoint: Checkpoint | None) -> Delta:  # fmt: skip
    """Delta(...), for the other compiled modules: mypyc cannot build another module's plain class."""
    return Delta(since=since, clock=clock, batches=batches, floor=floor, checkpoint=checkpoint)


def make_checkpoint(base: VectorClock, nodes: tuple[CheckpointNode, ...], unions: tuple[CheckpointUnion, ...],
                    tags: tuple[tuple[NodeId, Epochs], ...]) -> Checkpoint:  # fmt: skip
    """Checkpoint(...), for the other compiled modules (as make_delta)."""
    return Checkpoint(base=base, nodes=nodes, unions=unions, tags=tags)


class _RecentBatches:
    """(batch, its wire entry) pairs handled lately, up to about `rows` e-nodes in all (oldest go first).

    An event travels to every replica, and in a burst reaches each along several paths (and
    several replicas may share a process): checking a batch from the wire (every id is
    re-derived) and writing one for the wire are done once per batch, not once per copy.
    """

    def __init__(self, rows: int):
        self.limit = rows
        self.rows = 0
        # key -> (batch, wire entry), oldest first. An OrderedDict: dropping the oldest of a plain
        # dict (next(iter(d))) scans past every slot deleted before it, which grew to most of a merge.
        self._pairs: OrderedDict = OrderedDict()
        self._lock = threading.Lock()  # replicas may be used from several threads

    def get(self, key) -> tuple[BatchRow, list] | None:
        return self._pairs.get(key)

    def clear(self) -> None:
        with self._lock:
            self._pairs.clear()
            self.rows = 0

    def put(self, key, batch: BatchRow, entry: list) -> None:
        if len(batch[2]) > self.limit // 10:
            return  # a whole state, say: rarely sent twice, and it would crowd out the rest
        with self._lock:
            old = self._pairs.pop(key, None)
            self.rows += len(batch[2]) + 1 - (len(old[0][2]) + 1 if old else 0)
            self._pairs[key] = (batch, entry)
            while self.rows > self.limit:
                self.rows -= len(self._pairs.popitem(last=False)[1][0][2]) + 1


# Wire entries are lists, and a list in memory costs the garbage collector time: keep a short
# window of them, enough for an event's trip to a replica and on to its neighbours. A checked row
# costs some 420 bytes (its wire entry's lists and strings): 20,000 rows are 8 MB, minutes of a
# steady load (a larger window only filled up long after the soak's warm-up, as growth).
_CHECKED = _RecentBatches(rows=20_000)  # (origin, seq) -> (the batch, the wire entry it was checked from)
_WRITTEN = _RecentBatches(rows=20_000)  # id(batch) -> (the batch, its wire entry as handed out)


def _batch_to_wire(batch: BatchRow) -> list:
    written = _WRITTEN.get(id(batch))
    if written is not None and written[0] is batch:
        return written[1]
    origin, seq, nodes, unions, tags, epoch = batch
    entry = [origin, seq, [[nid, mask, op, *kids] for nid, mask, op, kids in nodes], [list(u) for u in unions],
             [list(tag) for tag in tags], epoch]  # fmt: skip
    _WRITTEN.put(id(batch), batch, entry)
    return entry


def _batch_from_wire(entry, version: int = WIRE_VERSION) -> BatchRow:
    """Check a wire entry, or find it checked already: an equal entry (==) that checked out before.

    The memo holds the entry it checked: change a wire form after parsing it, and parsing it
    again gives what it held when checked (never anything unchecked).
    """
    if version == 1:
        origin, seq, nodes, unions, tags = entry
        epoch = 0
    else:
        origin, seq, nodes, unions, tags, epoch = entry
    checked = _CHECKED.get((origin, seq))
    if checked is not None and checked[1] == entry:
        return checked[0]
    batch = _check_batch(origin, seq, nodes, unions, tags, epoch)
    _CHECKED.put((origin, seq), batch, entry)
    return batch


def _check_batch(origin, seq, nodes, unions, tags, epoch) -> BatchRow:
    if not isinstance(origin, str) or type(seq) is not int or seq < 1:
        raise ValueError(f"malformed batch header {origin!r}, {seq!r}")
    if type(epoch) is not int or epoch < 0:
        raise ValueError(f"batch {origin!r}, {seq!r}: epoch must be a non-negative int, got {epoch!r}")
    rows = []
    for nid, mask, op, *kids in nodes:
        if not (isinstance(op, str) and op and type(mask) is int and 0 <= mask <= ALL_COLOURS_MASK):
            raise ValueError(f"malformed e-node {nid!r}")
        kids = tuple(kids)
        if nid != node_id(op, kids) or not _all_ids(kids):
            raise ValueError(f"e-node id {nid!r} does not match its content {op!r}{kids}")
        rows.append((nid, mask, op, kids))
    pairs = []
    for a, b in unions:
        if not (_is_id(a) and _is_id(b)):
            raise ValueError(f"malformed union {a!r}, {b!r}")
        pairs.append((a, b))
    tag_rows = []
    for nid, mask in tags:
        if not (isinstance(nid, str) and type(mask) is int and 0 <= mask <= ALL_COLOURS_MASK):
            raise ValueError(f"malformed colour tag {nid!r}, {mask!r}")
        tag_rows.append((nid, mask))
    return (origin, seq, tuple(rows), tuple(pairs), tuple(tag_rows), epoch)


def _is_id(value) -> bool:
    return isinstance(value, str) and len(value) == ID_LENGTH


def _all_ids(kids: tuple) -> bool:
    for kid in kids:
        if type(kid) is not str or len(kid) != ID_LENGTH:
            return False
    return True


# --- the event log ----------------------------------------------------------------------------


class EventLog:
    """The clock, the events some peer may still ask for, and the base they are compacted up to."""

    def __init__(self) -> None:
        self.clock: dict[str, int] = {}  # replica -> its events seen contiguously
        self.early: dict[str, set[int]] = {}  # replica -> dots seen ahead of a gap
        self.events: dict[str, list[BatchRow]] = {}  # replica -> its events above the base, by seq
        self.base: dict[str, int] = {}  # events at or below are in the state only (the checkpoint)

    def has(self, origin: str, seq: int) -> bool:
        return seq <= self.clock.get(origin, 0) or seq in self.early.get(origin, ())

    def record(self, batch: BatchRow) -> None:
        events = self.events.setdefault(batch[0], [])
        if events and events[-1][1] > batch[1]:
            insort(events, batch, key=_seq)  # arrived out of order
        else:
            events.append(batch)

    def add_dot(self, origin: str, seq: int) -> None:
        top = self.clock.get(origin, 0)
        if seq != top + 1:
            if seq > top:
                self.early.setdefault(origin, set()).add(seq)
            return
        self._advance(origin, seq)

    def _advance(self, origin: str, seq: int) -> None:
        """Move a replica's entry to `seq`, then past any early dots that are now contiguous."""
        early = self.early.get(origin)
        if early:
            early.difference_update([s for s in early if s <= seq])
            while seq + 1 in early:
                seq += 1
                early.discard(seq)
            if not early:
                del self.early[origin]
        self.clock[origin] = seq

    def since(self, clock: VectorClock) -> list[BatchRow] | None:
        """The events `clock` has not seen, or None when it does not cover the base (send a checkpoint)."""
        if not dominates(clock, self.base):
            return None
        batches: list[BatchRow] = []
        for origin, events in self.events.items():
            batches.extend(events[bisect_right(events, clock.get(origin, 0), key=_seq) :])
        return batches

    def compact(self, stable: VectorClock) -> None:
        """Drop the events at or below `stable` (never above the clock): the state holds their contents.
        Only origins with events held can have any to drop: at rest none, however many the clock names."""
        for origin in [origin for origin in self.events if origin in stable]:
            upto = min(self.clock.get(origin, 0), stable[origin])
            if upto > self.base.get(origin, 0):
                self._drop(origin, upto)

    def raise_base(self, base: VectorClock) -> None:
        """A checkpoint brought the contents of every event up to `base`: seen, and in the state."""
        for origin, count in base.items():
            if count > self.base.get(origin, 0):
                if count > self.clock.get(origin, 0):
                    self._advance(origin, count)
                self._drop(origin, count)

    def _drop(self, origin: str, upto: int) -> None:
        self.base[origin] = upto
        events = self.events.get(origin)
        if events:
            del events[: bisect_right(events, upto, key=_seq)]
            if not events:
                del self.events[origin]
