"""The CRDT e-graph: what every agent holds a replica of.

State (the CRDT part) is three grow-only sets:
  - e-nodes, content-addressed: id = hash(operator, child ids), so replicas agree on ids;
  - unions: pairs of ids asserted equal;
  - colour tags: a set of colours per e-node (a bit mask, merged with OR).
Join is set union followed by congruence-closure rebuild; the result is the
least congruence containing the unions, which depends only on the sets, so join
is commutative, associative and idempotent. A class is named by its smallest
id, so converged replicas agree on class ids and on `digest()`. (Internally the
union-find keeps the root with more users, which bounds re-keying work; each
root remembers its class's smallest id. Roots never leave the replica.)

Causality: local changes collect in an open batch that becomes one event
(a "dot": replica, sequence number) when someone reads the clock or asks for a
delta. Every replica keeps every event it knows exactly as it was made (ids,
the colour bits it added, unions), so an event means the same thing everywhere
and "has seen dot d" always implies "has d's contents". `delta_since(clock)`
sends the events the clock has not seen (a δ-CRDT delta); a full state is just
`delta_since({})`. The clock advances contiguously per replica; dots received
ahead of a gap wait in `_early` (and are not resent once they arrive).

Numbers (the constant-folding analysis, see numbers.py): each class knows the numeral in
it, if any, merged by numbers.join on every union; so it follows from the state alone,
whatever the order of events. Folding rules (rewrites.py) read it and add what it implies
as ordinary e-nodes and unions, which replicate like everything else.

Children may arrive after their parents (deltas reordered or lost): an unknown
id simply starts as its own class, and the node fills in when it arrives.
"""

import threading
from bisect import bisect_right, insort
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from hashlib import blake2b
from typing import Iterable

from mypy_extensions import mypyc_attr

from .clock import VectorClock
from .clock import validate as validate_clock
from .colour import ALL_COLOURS_MASK, Colour, colours_of
from .numbers import CONFLICT, numeral_of
from .numbers import join as join_numerals
from .terms import Term

NodeId = str  # 16 lowercase hex digits
ID_LENGTH = 16
STATE_KIND = "agentnet.egraph.state"
DELTA_KIND = "agentnet.egraph.delta"
WIRE_VERSION = 1

# A node on the wire and inside a Delta: (id, colour mask, operator, child ids).
NodeRow = tuple[NodeId, int, str, tuple[NodeId, ...]]
# One event: (origin replica, sequence number, nodes it added, unions it added,
# (id, colour bits) it added to nodes already known).
BatchRow = tuple[str, int, tuple[NodeRow, ...], tuple[tuple[NodeId, NodeId], ...], tuple[tuple[NodeId, int], ...]]


def _seq(batch: BatchRow) -> int:
    return batch[1]


_ID_HASH = blake2b(digest_size=8)  # copied per id: cheaper than setting up blake2b each time


def node_id(op: str, kids: Iterable[NodeId]) -> NodeId:
    """Content address of an e-node: blake2b of the operator (length-prefixed) and child ids."""
    hasher = _ID_HASH.copy()
    hasher.update(f"{len(op)}:{op}({','.join(kids)})".encode())
    return hasher.hexdigest()


@mypyc_attr(native_class=False)  # a plain Python class when compiled: it is pickled (see saturate.Budget)
@dataclass(frozen=True)
class Delta:
    """What one replica knows that a clock has not seen; also the shape of a full state.

    `since` is the clock it was computed against and `clock` the sender's clock:
    a receiver that had seen `since` has seen `clock` once it joins this delta.
    """

    since: VectorClock
    clock: VectorClock
    batches: tuple[BatchRow, ...] = ()

    @property
    def node_count(self) -> int:
        return sum(len(batch[2]) for batch in self.batches)

    def __bool__(self) -> bool:
        return bool(self.batches)

    def to_wire(self) -> dict:
        """Plain JSON-ready dict; a node is [id, mask, op, *child ids], a union [a, b], a tag [id, mask].

        Batches are shared with other wire forms of the same events: read them, do not change them.
        """
        return {
            "kind": DELTA_KIND,
            "version": WIRE_VERSION,
            "since": dict(self.since),
            "clock": dict(self.clock),
            "batches": [_batch_to_wire(batch) for batch in self.batches],
        }

    @classmethod
    def from_wire(cls, wire: object) -> "Delta":
        """Parse and check a delta or state from the wire; every node id is re-derived from its content."""
        if not isinstance(wire, dict) or wire.get("kind") not in (DELTA_KIND, STATE_KIND):
            raise ValueError(f"not an e-graph delta or state (kind must be {DELTA_KIND!r} or {STATE_KIND!r})")
        if wire.get("version") != WIRE_VERSION:
            raise ValueError(f"unsupported e-graph wire version {wire.get('version')!r} (expected {WIRE_VERSION})")
        try:
            batches = tuple([_batch_from_wire(entry) for entry in wire["batches"]])
            since, clock = validate_clock(wire.get("since", {})), validate_clock(wire["clock"])
            return cls(since=since, clock=clock, batches=batches)
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed e-graph wire form: {error!r}") from None


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
# window of them, enough for an event's trip to a replica and on to its neighbours.
_CHECKED = _RecentBatches(rows=50_000)  # (origin, seq) -> (the batch, the wire entry it was checked from)
_WRITTEN = _RecentBatches(rows=20_000)  # id(batch) -> (the batch, its wire entry as handed out)


def _batch_to_wire(batch: BatchRow) -> list:
    written = _WRITTEN.get(id(batch))
    if written is not None and written[0] is batch:
        return written[1]
    origin, seq, nodes, unions, tags = batch
    entry = [origin, seq, [[nid, mask, op, *kids] for nid, mask, op, kids in nodes], [list(u) for u in unions],
             [list(tag) for tag in tags]]  # fmt: skip
    _WRITTEN.put(id(batch), batch, entry)
    return entry


def _batch_from_wire(entry) -> BatchRow:
    """Check a wire entry, or find it checked already: an equal entry (==) that checked out before.

    The memo holds the entry it checked: change a wire form after parsing it, and parsing it
    again gives what it held when checked (never anything unchecked).
    """
    origin, seq, nodes, unions, tags = entry
    checked = _CHECKED.get((origin, seq))
    if checked is not None and checked[1] == entry:
        return checked[0]
    batch = _check_batch(origin, seq, nodes, unions, tags)
    _CHECKED.put((origin, seq), batch, entry)
    return batch


def _check_batch(origin, seq, nodes, unions, tags) -> BatchRow:
    if not isinstance(origin, str) or type(seq) is not int or seq < 1:
        raise ValueError(f"malformed batch header {origin!r}, {seq!r}")
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
        if not (isinstance(a, str) and isinstance(b, str) and len(a) == len(b) == ID_LENGTH):
            raise ValueError(f"malformed union {a!r}, {b!r}")
        pairs.append((a, b))
    tag_rows = []
    for nid, mask in tags:
        if not (isinstance(nid, str) and type(mask) is int and 0 <= mask <= ALL_COLOURS_MASK):
            raise ValueError(f"malformed colour tag {nid!r}, {mask!r}")
        tag_rows.append((nid, mask))
    return (origin, seq, tuple(rows), tuple(pairs), tuple(tag_rows))


def _all_ids(kids: tuple) -> bool:
    for kid in kids:
        if type(kid) is not str or len(kid) != ID_LENGTH:
            return False
    return True


@dataclass
class _Batch:
    """The open (not yet numbered) event: exact rows of what it added."""

    nodes: list[NodeRow] = field(default_factory=list)
    unions: list[tuple[NodeId, NodeId]] = field(default_factory=list)
    tags: list[tuple[NodeId, int]] = field(default_factory=list)  # colour bits it added to known nodes

    def __bool__(self) -> bool:
        return bool(self.nodes or self.unions or self.tags)


class Changes:
    """What changed in an e-graph since a watcher last looked (see EGraph.watch).

    `shapes`: e-nodes filed under a shape (op, *child classes) the e-graph did not have
    (added, or re-keyed because a child class merged); `merges`: classes that absorbed
    another. Both are ordered sets of ids (dicts, so the order and what follows from it is
    the same on every run), so a watcher that looks rarely costs bounded memory.
    """

    __slots__ = ("shapes", "merges")

    def __init__(self) -> None:
        self.shapes: dict[NodeId, None] = {}
        self.merges: dict[NodeId, None] = {}


class _Digest:
    """Keeps digest() current as the state changes, so asking costs only what changed since.

    The digest hashes two order-independent sums: over known e-nodes, a hash of (id, colour
    mask); over classes of two or more ids, a hash of the sum of the class's ids. A class of
    one id adds nothing: which ids exist follows from the e-nodes (children included) and
    the unions, whose ends are always in classes of two or more; so most ids (most classes
    are single) cost nothing here. Equal states give equal sums; different ones differ but
    for a chance of about 2^-64. Class hashes are refreshed lazily, once per asking.
    """

    def __init__(self, egraph: "EGraph"):
        masks = egraph._masks
        self.nodes = sum([_node_hash(node, masks[node]) for node in egraph._nodes])
        members: dict[NodeId, int] = {}  # root of a class of two or more ids -> sum of its ids (as integers)
        parent, find = egraph._parent, egraph._find
        for node, up in parent.items():
            if up != node:
                root = up if parent[up] == up else find(node)
                members[root] = members.get(root, int(root, 16)) + int(node, 16)
        self.members = members
        self.hashed = {root: _class_hash(total) for root, total in members.items()}  # as counted in `classes`
        self.classes = sum(self.hashed.values())
        self.stale: set[NodeId] = set()  # roots whose class hash is out of date

    def merge(self, root: NodeId, child: NodeId) -> None:
        members = self.members
        members[root] = members.get(root, int(root, 16)) + members.pop(child, int(child, 16))
        self.classes -= self.hashed.pop(child, 0)
        self.stale.add(root)

    def value(self) -> str:
        for root in self.stale:
            if root in self.members:  # else it merged into another class since
                fresh = _class_hash(self.members[root])
                self.classes += fresh - self.hashed.get(root, 0)
                self.hashed[root] = fresh
        self.stale.clear()
        return blake2b(f"{self.nodes % 2**128}:{self.classes % 2**128}".encode(), digest_size=16).hexdigest()


_HASH128 = blake2b(digest_size=16)  # copied per hash, as _ID_HASH


def _hash128(text: str) -> int:
    hasher = _HASH128.copy()
    hasher.update(text.encode())
    return int.from_bytes(hasher.digest(), "big")


# The replicas of one process (a pod's block of agents, `agentnet up`) hash the same e-nodes,
# and converged ones the same classes; crdt-service's merges hash the same events again and
# again. Remembering the latest hashes spares most of them (a few MB at most).
HASH_CACHE = 1 << 15


@lru_cache(maxsize=HASH_CACHE)
def _node_hash(node: NodeId, mask: int) -> int:
    return _hash128(f"{node}:{mask}")


@lru_cache(maxsize=HASH_CACHE)
def _class_hash(members: int) -> int:
    """Hash of a class, from the sum of its ids."""
    return _hash128(str(members))


class EGraph:
    """One replica of the CRDT e-graph. Mutations defer congruence repair until `rebuild()`."""

    def __init__(self, replica: str = "local"):
        if not isinstance(replica, str) or not replica:
            raise ValueError(f"replica id must be a non-empty string, got {replica!r}")
        self.replica = replica
        # The CRDT state: grow-only sets.
        self._nodes: dict[NodeId, tuple[str, tuple[NodeId, ...]]] = {}
        self._masks: dict[NodeId, int] = {}
        self._unions: set[tuple[NodeId, NodeId]] = set()
        # Congruence closure derived from the sets.
        self._parent: dict[NodeId, NodeId] = {}  # union-find over ids (roots chosen by size)
        self._least: dict[NodeId, NodeId] = {}  # root -> its class's smallest id, when not the root
        self._uses: dict[NodeId, list[NodeId]] = {}  # class root -> nodes with a child in the class
        # Shapes: (op, *child roots). Each current shape is filed under one node (and, once rewriting
        # searches this replica, in its class's index); re-keying after a merge moves it to its new shape.
        self._hashcons: dict[tuple, NodeId] = {}  # shape -> the node filed under it
        self._shape: dict[NodeId, tuple] = {}  # node -> the shape it is filed under
        self._classes: dict[NodeId, dict[tuple, None]] | None = None  # root -> its shapes; see class_index()
        self._pending: list[tuple[NodeId, list[NodeId]]] = []  # (root, users to re-key) after merges
        self._numbers: dict[NodeId, str] = {}  # class root -> the numeral in it (or numbers.CONFLICT)
        self._watchers: list[Changes] = []  # see watch()
        # Causality.
        self._clock: dict[str, int] = {}
        self._early: dict[str, set[int]] = {}
        self._events: dict[str, list[BatchRow]] = {}  # origin -> every event known from it, by seq
        self._open = _Batch()
        # Bumped on every change of state: saturation detects a fixpoint with it, caches expire by it.
        self.version = 0
        self._digest: _Digest | None = None  # kept up to date once digest() has been asked for
        self._canonical: tuple[int, list] = (-1, [])  # canonical_nodes() cached for one version

    # --- reading ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"EGraph(replica={self.replica!r}, nodes={len(self._nodes)}, unions={len(self._unions)})"

    def __contains__(self, node: NodeId) -> bool:
        return node in self._nodes

    def find(self, node: NodeId) -> NodeId:
        """Class id of an e-node or class id: the smallest id in the class, the same on every replica."""
        if node not in self._parent:
            raise KeyError(f"unknown e-node id {node!r}")
        root = self._find(node)
        return self._least.get(root, root)

    def root(self, node: NodeId) -> NodeId:
        """Internal handle of a node's class (its union-find root), as in canonical_nodes().

        Unlike a class id it depends on merge order, so it never leaves this replica.
        """
        if node not in self._parent:
            raise KeyError(f"unknown e-node id {node!r}")
        return self._find(node)

    def _find(self, node: NodeId) -> NodeId:
        parent = self._parent
        root = node
        while (up := parent[root]) != root:
            root = up
        while node != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def node(self, node: NodeId) -> tuple[str, tuple[NodeId, ...]]:
        """(operator, child ids) of an e-node."""
        return self._nodes[node]

    def tags(self, node: NodeId) -> tuple[Colour, ...]:
        """Colour tags of an e-node, in the fixed colour order."""
        return colours_of(self._masks.get(node, 0))

    def number(self, node: NodeId) -> str | None:
        """The numeral (one spelling per value) in a node's class, if it holds exactly one value."""
        numeral = self._numbers.get(self.root(node))
        return None if numeral == CONFLICT else numeral

    def class_count(self) -> int:
        self.rebuild()
        return len({self._find(node) for node in self._nodes})

    def canonical_nodes(self) -> list[tuple[NodeId, tuple]]:
        """(class root, (op, *child class roots)) for each distinct e-node up to congruence."""
        self.rebuild()
        if self._canonical[0] != self.version:
            if self._classes is None:
                shapes = [(self._find(node), shape) for shape, node in self._hashcons.items()]
            else:
                shapes = [(root, shape) for root, shapes in self._classes.items() for shape in shapes]
            self._canonical = (self.version, shapes)
        return self._canonical[1]

    def class_index(self) -> dict[NodeId, dict[tuple, None]]:
        """Class root -> its shapes (op, *child class roots), a dict used as an ordered set; read only.

        Rewrite search reads it. Built on first use and kept up to date from then on, so
        replicas that only replicate do not pay for it.
        """
        self.rebuild()
        if self._classes is None:
            self._classes = {}
            for shape, node in self._hashcons.items():
                self._classes.setdefault(self._find(node), {})[shape] = None
        return self._classes

    def watch(self) -> Changes:
        """Start recording changes (for incremental rewriting); read and clear them with changes()."""
        changes = Changes()
        self._watchers.append(changes)
        return changes

    def unwatch(self, changes: Changes) -> None:
        self._watchers.remove(changes)

    def changes(self, watcher: Changes) -> tuple[dict[tuple, NodeId], dict[NodeId, None]]:
        """What changed since the watcher last looked, then clears it: ({new shape: its class root},
        {class root that grew by a merge}). Roots are current (after a rebuild)."""
        self.rebuild()
        find, shape_of = self._find, self._shape
        shapes = {}
        for node in watcher.shapes:
            shape = shape_of.get(node)
            if shape is not None:  # else the node has merged into a twin's shape since: not new
                shapes[shape] = find(node)
        merged = dict.fromkeys([find(root) for root in watcher.merges])
        watcher.shapes, watcher.merges = {}, {}
        return shapes, merged

    def lookup(self, term: Term) -> NodeId | None:
        """Class id of a term if the e-graph represents it, else None. Does not add anything."""
        self.rebuild()
        root = self._lookup(term)
        return None if root is None else self._least.get(root, root)

    def _lookup(self, term: Term) -> NodeId | None:
        kids = []
        for arg in term.args:
            kid = self._lookup(arg)
            if kid is None:
                return None
            kids.append(kid)
        node = self._hashcons.get((term.op, *kids))
        return None if node is None else self._find(node)

    def equivalent(self, a: Term, b: Term) -> bool:
        """Are two terms in one class (proven equal by what this replica knows)?"""
        if a == b:
            return True
        self.rebuild()
        class_a = self._lookup(a)
        return class_a is not None and class_a == self._lookup(b)

    def digest(self) -> str:
        """Order-independent digest of nodes, classes and tags; equal on converged replicas.

        The first call computes it from the whole state; later ones only update what changed.
        """
        self.rebuild()
        if self._digest is None:
            self._digest = _Digest(self)
        return self._digest.value()

    def stats(self) -> dict:
        """Small JSON-ready summary (for status endpoints and metrics)."""
        return {
            "replica": self.replica,
            "nodes": len(self._nodes),
            "classes": self.class_count(),
            "unions": len(self._unions),
            "clock": self.clock,
            "digest": self.digest(),
        }

    # --- local changes -------------------------------------------------------------

    def add_node(self, op: str, kids: Iterable[NodeId] = (), colour: Colour = Colour.GREEN) -> NodeId:
        """Add an e-node over existing classes; returns its class id."""
        kids = tuple(kids)
        for kid in kids:
            if kid not in self._parent:
                raise KeyError(f"unknown e-node id {kid!r}")
        return self.find(self._add((op, *kids), Colour(colour).bit))

    def add_term(self, term: Term, colour: Colour = Colour.GREEN) -> NodeId:
        """Add every node of a term, tagged with `colour`; returns the term's class id."""
        return self.find(self._add_term(term, Colour(colour).bit))

    def _add_term(self, term: Term, mask: int) -> NodeId:
        return self._add((term.op, *[self._add_term(arg, mask) for arg in term.args]), mask)

    def _add(self, shape: tuple, mask: int) -> NodeId:
        """Hash-consed add of a shape (op, *known ids), returning the class root; the fast path rewrites use.

        Tries the shape as given first: child ids are nearly always roots, and a shape filed
        before a merge still names the right node (its children are in the merged classes).
        """
        node = self._hashcons.get(shape)
        if node is None or mask & ~self._masks[node]:
            return self._add_new(shape, mask, node)
        parent = self._parent
        up = parent[node]  # after path compression nearly every node's parent is its root
        return up if parent[up] == up else self._find(node)

    def _add_new(self, shape: tuple, mask: int, node: NodeId | None) -> NodeId:
        """_add when the shape is not filed as given, or its node lacks a colour bit of `mask`."""
        parent = self._parent
        if node is None:
            op, kids = shape[0], shape[1:]
            for kid in kids:
                if parent[kid] != kid:
                    kids = tuple([self._find(kid) for kid in kids])
                    node = self._hashcons.get((op, *kids))
                    break
            if node is None:
                node = node_id(op, kids)
                if node not in self._nodes:
                    self._insert(node, op, kids, mask)
                    self._open.nodes.append((node, mask, op, kids))
                    self.version += 1
                    return self._find(node)
        added = mask & ~self._masks[node]
        if added:
            self._tag(node, added)
            self._open.tags.append((node, added))
        return self._find(node)

    def union(self, a: NodeId, b: NodeId) -> bool:
        """Assert two classes equal; True if that merged two classes."""
        for node in (a, b):
            if node not in self._parent:
                raise KeyError(f"unknown e-node id {node!r}")
        return self._union(a, b)

    def _union(self, a: NodeId, b: NodeId) -> bool:
        parent = self._parent
        up_a, up_b = parent[a], parent[b]  # nearly always the roots (see _add)
        if (up_a if parent[up_a] == up_a else self._find(a)) == (up_b if parent[up_b] == up_b else self._find(b)):
            return False
        pair = (a, b) if a < b else (b, a)
        self._unions.add(pair)
        self._open.unions.append(pair)
        return self._merge(a, b)

    # --- congruence closure ----------------------------------------------------------

    def _insert(self, node: NodeId, op: str, kids: tuple[NodeId, ...], mask: int) -> None:
        """Add an e-node to the state (its id already computed) and to the closure."""
        self._nodes[node] = (op, kids)
        masks, parent, uses, digest = self._masks, self._parent, self._uses, self._digest
        masks[node] = masks.get(node, 0) | mask
        if node not in parent:
            parent[node] = node  # (as _new_id, inline: joins spend their time here)
        if digest is not None:
            digest.nodes += _node_hash(node, masks[node])
        roots = []
        for kid in kids:
            up = parent.get(kid)
            if up is None:  # a child we have not seen yet: its own class until it arrives
                self._new_id(kid)
                root = kid
            else:
                root = up if parent[up] == up else self._find(kid)
            users = uses.get(root)
            if users is None:
                uses[root] = [node]
            elif root not in roots:
                users.append(node)
            roots.append(root)
        if not kids:
            numeral = numeral_of(op)
            if numeral is not None:
                root = self._find(node)
                self._numbers[root] = join_numerals(self._numbers.get(root), numeral)
        shape = (op, *roots)
        if shape not in self._hashcons:
            self._file(node, shape)
        else:
            self._merge(self._hashcons[shape], node)  # congruent to a node we already had

    def _new_id(self, node: NodeId) -> None:
        """An id becomes known (as a node, a child or a union's end): its own class to begin with."""
        self._parent[node] = node

    def _file(self, node: NodeId, shape: tuple) -> None:
        """File a node under a shape new to the e-graph (hash-cons and its class's index)."""
        self._hashcons[shape] = node
        self._shape[node] = shape
        if self._classes is not None:
            up = self._parent[node]  # the node itself, unless a union named it before it arrived
            root = up if self._parent[up] == up else self._find(node)
            shapes = self._classes.get(root)
            if shapes is None:
                self._classes[root] = {shape: None}
            else:
                shapes[shape] = None
        if self._watchers:
            for changes in self._watchers:
                changes.shapes[node] = None

    def _unfile(self, node: NodeId, shape: tuple) -> None:
        """Remove a node's shape that names a class which is no longer a root (before re-keying it)."""
        del self._hashcons[shape]
        if self._classes is not None:
            del self._classes[self._find(node)][shape]

    def _merge(self, a: NodeId, b: NodeId) -> bool:
        parent = self._parent
        up_a, up_b = parent[a], parent[b]  # nearly always the roots (see _add)
        root = up_a if parent[up_a] == up_a else self._find(a)
        child = up_b if parent[up_b] == up_b else self._find(b)
        if root == child:
            return False
        uses, least = self._uses, self._least
        if len(uses.get(root, ())) < len(uses.get(child, ())):
            root, child = child, root  # keep the root with more users: fewer shapes to re-key
        parent[child] = root
        numbers = self._numbers
        if child in numbers:
            numbers[root] = join_numerals(numbers.get(root), numbers.pop(child))
        if self._digest is not None:
            self._digest.merge(root, child)
        smallest = min(least.pop(child, child), least.get(root, root))
        if smallest != root:
            least[root] = smallest
        self._move_shapes(child, root)
        for changes in self._watchers:
            changes.merges[root] = None
        self.version += 1
        moved = self._uses.pop(child, None)
        if moved:  # their shapes name `child`, now `root`: re-key them in rebuild()
            self._pending.append((root, moved))
        return True

    def rebuild(self) -> None:
        """Restore congruence closure after merges (egg-style deferred rebuild over a worklist).

        Only users of the class that lost its name change shape; users of the surviving
        class keep theirs, and a new congruence between the two shows up as a hash-cons hit.
        """
        while self._pending:
            root, users = self._pending.pop()
            self._repair(root, users)

    def _move_shapes(self, child: NodeId, root: NodeId) -> None:
        """Merge a class's shapes into the surviving root's (the smaller set into the larger)."""
        classes = self._classes
        if classes is None:
            return
        moving = classes.pop(child, None)
        if not moving:
            return
        staying = classes.get(root)
        if staying is None or len(staying) < len(moving):
            if staying:
                moving.update(staying)
            classes[root] = moving
        else:
            staying.update(moving)

    def _repair(self, root: NodeId, users: list[NodeId]) -> None:
        """Re-key users of a merged class, merge those that became congruent, file them under the root."""
        hashcons, shape_of, key_of = self._hashcons, self._shape, self._key
        filed: list[NodeId] = []  # users filed under a new shape; a user congruent to another merges into it instead
        listed: set[NodeId] | None = None  # `filed` as a set, made only when needed
        for user in users:
            key = key_of(user)
            old = shape_of.get(user)
            if old == key:
                # Re-keyed already: listed twice here, or by the repair of another class it uses
                # (whose users list got it). Either way it uses this class: list it here once.
                if listed is None:
                    listed = set(filed)
                if user not in listed:
                    listed.add(user)
                    filed.append(user)
                continue
            if old is not None:
                self._unfile(user, old)
                del shape_of[user]
            twin = hashcons.get(key)
            if twin is None:
                self._file(user, key)
                filed.append(user)
                if listed is not None:
                    listed.add(user)
            else:
                self._merge(twin, user)
        now = self._find(root)
        if now != root:  # the root itself merged meanwhile (a cycle): these shapes name it, re-key again
            self._pending.append((now, filed))
        elif root in self._uses:
            self._uses[root].extend(filed)
        else:
            self._uses[root] = filed

    def _key(self, node: NodeId) -> tuple:
        """Current shape of a node: (op, *child class roots); the hash-cons key."""
        op, kids = self._nodes[node]
        parent, find = self._parent, self._find
        if len(kids) == 2:
            a, b = kids
            return (op, a if parent[a] == a else find(a), b if parent[b] == b else find(b))
        return (op, *[find(kid) for kid in kids])

    def _tag(self, node: NodeId, mask: int) -> bool:
        old = self._masks.get(node, 0)
        if mask & ~old:
            self._masks[node] = old | mask
            if self._digest is not None and node in self._nodes:
                self._digest.nodes += _node_hash(node, old | mask) - _node_hash(node, old)
            self.version += 1
            return True
        return False

    # --- causality and replication --------------------------------------------------

    @property
    def clock(self) -> VectorClock:
        """Vector clock: per replica, how many of its events this replica has seen (contiguously)."""
        self._seal()
        return dict(self._clock)

    def _seal(self) -> None:
        """Close the open batch as one event of this replica."""
        if self._open:
            seq = self._clock.get(self.replica, 0) + 1
            batch = self._open
            self._record((self.replica, seq, tuple(batch.nodes), tuple(batch.unions), tuple(batch.tags)))
            self._add_dot(self.replica, seq)
            self._open = _Batch()

    def _record(self, batch: BatchRow) -> None:
        events = self._events.setdefault(batch[0], [])
        if events and events[-1][1] > batch[1]:
            insort(events, batch, key=_seq)  # arrived out of order
        else:
            events.append(batch)

    def _has_dot(self, origin: str, seq: int) -> bool:
        return seq <= self._clock.get(origin, 0) or seq in self._early.get(origin, ())

    def _add_dot(self, origin: str, seq: int) -> None:
        top = self._clock.get(origin, 0)
        if seq != top + 1:
            if seq > top:
                self._early.setdefault(origin, set()).add(seq)
            return
        self._advance(origin, seq)

    def _advance(self, origin: str, seq: int) -> None:
        """Move a replica's entry to `seq`, then past any early dots that are now contiguous."""
        early = self._early.get(origin)
        if early:
            early.difference_update([s for s in early if s <= seq])
            while seq + 1 in early:
                seq += 1
                early.discard(seq)
        self._clock[origin] = seq

    def delta_since(self, clock: VectorClock) -> Delta:
        """Every event this replica knows that `clock` has not seen (δ-CRDT delta)."""
        self._seal()
        batches = []
        for origin, events in self._events.items():
            batches.extend(events[bisect_right(events, clock.get(origin, 0), key=_seq) :])
        return Delta(since=dict(clock), clock=dict(self._clock), batches=tuple(batches))

    def join(self, other: "EGraph | Delta | dict") -> "EGraph":
        """Merge another replica, a delta, or a wire dict (state or delta) into this one; returns self."""
        if isinstance(other, EGraph):
            other = other.delta_since(self.clock)
        elif isinstance(other, dict):
            other = Delta.from_wire(other)
        elif not isinstance(other, Delta):
            raise TypeError(f"cannot join {type(other).__name__} into an EGraph")
        self._seal()
        for batch in other.batches:
            origin, seq = batch[0], batch[1]
            if not self._has_dot(origin, seq):  # seen already: duplicates and resends are free
                self._absorb(batch)
                self._record(batch)
                self._add_dot(origin, seq)
        self.rebuild()
        return self

    def _absorb(self, batch: BatchRow) -> None:
        """Set-union one event into the state."""
        _, _, nodes, unions, tags = batch
        known, parent, masks = self._nodes, self._parent, self._masks
        for node, mask, op, kids in nodes:
            if node not in known:
                self._insert(node, op, kids, mask)
            elif mask & ~masks[node]:
                self._tag(node, mask)
        for a, b in unions:
            pair = (a, b) if a < b else (b, a)
            if pair not in self._unions:
                self._unions.add(pair)
                for node in pair:
                    if node not in parent:
                        self._new_id(node)
                self._merge(a, b)
        for node, mask in tags:
            self._tag(node, mask)
        self.version += 1

    # --- wire -------------------------------------------------------------------------

    def to_wire(self) -> dict:
        """The full state as a plain JSON-ready dict."""
        wire = self.delta_since({}).to_wire()
        wire["kind"] = STATE_KIND
        wire["replica"] = self.replica
        return wire

    @classmethod
    def from_wire(cls, wire: dict, replica: str | None = None) -> "EGraph":
        """Restore a state (as `replica`, default the one that sent it); checks every node id."""
        delta = Delta.from_wire(wire)
        return cls(replica or wire.get("replica") or "local").join(delta)

    def fork(self, replica: str) -> "EGraph":
        """A new replica with this one's state (no wire round trip)."""
        return EGraph(replica).join(self.delta_since({}))
