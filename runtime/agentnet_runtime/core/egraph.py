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

Children may arrive after their parents (deltas reordered or lost): an unknown
id simply starts as its own class, and the node fills in when it arrives.
"""

from bisect import bisect_right, insort
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Iterable

from .clock import VectorClock
from .clock import validate as validate_clock
from .colour import ALL_COLOURS_MASK, Colour, colours_of
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


def node_id(op: str, kids: Iterable[NodeId]) -> NodeId:
    """Content address of an e-node: blake2b of the operator (length-prefixed) and child ids."""
    return blake2b(f"{len(op)}:{op}({','.join(kids)})".encode(), digest_size=8).hexdigest()


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
        """Plain JSON-ready dict; a node is [id, mask, op, *child ids], a union [a, b], a tag [id, mask]."""
        return {
            "kind": DELTA_KIND,
            "version": WIRE_VERSION,
            "since": dict(self.since),
            "clock": dict(self.clock),
            "batches": [
                [
                    origin,
                    seq,
                    [[nid, mask, op, *kids] for nid, mask, op, kids in nodes],
                    [list(union) for union in unions],
                    [list(tag) for tag in tags],
                ]
                for origin, seq, nodes, unions, tags in self.batches
            ],
        }

    @classmethod
    def from_wire(cls, wire: object) -> "Delta":
        """Parse and check a delta or state from the wire; every node id is re-derived from its content."""
        if not isinstance(wire, dict) or wire.get("kind") not in (DELTA_KIND, STATE_KIND):
            raise ValueError(f"not an e-graph delta or state (kind must be {DELTA_KIND!r} or {STATE_KIND!r})")
        if wire.get("version") != WIRE_VERSION:
            raise ValueError(f"unsupported e-graph wire version {wire.get('version')!r} (expected {WIRE_VERSION})")
        try:
            batches = tuple(_batch_from_wire(entry) for entry in wire["batches"])
            since, clock = validate_clock(wire.get("since", {})), validate_clock(wire["clock"])
            return cls(since=since, clock=clock, batches=batches)
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed e-graph wire form: {error!r}") from None


def _batch_from_wire(entry) -> BatchRow:
    origin, seq, nodes, unions, tags = entry
    if not isinstance(origin, str) or type(seq) is not int or seq < 1:
        raise ValueError(f"malformed batch header {origin!r}, {seq!r}")
    rows = []
    for nid, mask, op, *kids in nodes:
        if not (isinstance(op, str) and op and type(mask) is int and 0 <= mask <= ALL_COLOURS_MASK):
            raise ValueError(f"malformed e-node {nid!r}")
        kids = tuple(kids)
        if nid != node_id(op, kids) or not all(isinstance(kid, str) and len(kid) == ID_LENGTH for kid in kids):
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


@dataclass
class _Batch:
    """The open (not yet numbered) event: exact rows of what it added."""

    nodes: list[NodeRow] = field(default_factory=list)
    unions: list[tuple[NodeId, NodeId]] = field(default_factory=list)
    tags: list[tuple[NodeId, int]] = field(default_factory=list)  # colour bits it added to known nodes

    def __bool__(self) -> bool:
        return bool(self.nodes or self.unions or self.tags)


class _Discard:
    """Stands in for the set of changed classes when nobody is tracking them."""

    def add(self, item) -> None:
        pass

    def update(self, items) -> None:
        pass


_DISCARD = _Discard()


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
        self._hashcons: dict[tuple, NodeId] = {}  # (op, *child roots) -> a node with that shape
        self._pending: list[tuple[NodeId, list[NodeId]]] = []  # (root, users to re-key) after merges
        self._touched: set[NodeId] | _Discard = _DISCARD  # changed classes, while saturation tracks them
        # Causality.
        self._clock: dict[str, int] = {}
        self._early: dict[str, set[int]] = {}
        self._events: dict[str, list[BatchRow]] = {}  # origin -> every event known from it, by seq
        self._open = _Batch()
        # Bumped on every change of state: saturation detects a fixpoint with it, caches expire by it.
        self.version = 0
        self._digest: tuple[int, str] | None = None
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

    def class_count(self) -> int:
        self.rebuild()
        return len({self._find(node) for node in self._nodes})

    def canonical_nodes(self) -> list[tuple[NodeId, tuple]]:
        """(class root, (op, *child class roots)) for each distinct e-node up to congruence."""
        self.rebuild()
        if self._canonical[0] == self.version:
            return self._canonical[1]
        parent, find, hashcons = self._parent, self._find, self._hashcons
        result, stale = [], []
        for key, node in hashcons.items():
            for kid in key[1:]:
                if parent[kid] != kid:
                    stale.append(key)  # shape from before a merge; its node has a fresh entry
                    break
            else:
                result.append((find(node), key))
        for key in stale:
            del hashcons[key]
        self._canonical = (self.version, result)
        return result

    def take_touched(self) -> set[NodeId]:
        """Classes whose canonical e-nodes changed since the last call; starts tracking on first use.

        Saturation uses this to search only around what changed; call stop_tracking() after.
        """
        self.rebuild()
        find = self._find
        touched = {find(node) for node in self._touched} if isinstance(self._touched, set) else set()
        self._touched = set()
        return touched

    def stop_tracking(self) -> None:
        self._touched = _DISCARD

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
        """Order-independent digest of nodes, classes and tags; equal on converged replicas."""
        self.rebuild()
        if self._digest is None or self._digest[0] != self.version:
            find, masks = self.find, self._masks
            rows = sorted(f"{node}{find(node)}{masks[node]}" for node in self._nodes)
            self._digest = (self.version, blake2b("\n".join(rows).encode(), digest_size=16).hexdigest())
        return self._digest[1]

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
        return self.find(self._add(op, kids, Colour(colour).bit))

    def add_term(self, term: Term, colour: Colour = Colour.GREEN) -> NodeId:
        """Add every node of a term, tagged with `colour`; returns the term's class id."""
        return self.find(self._add_term(term, Colour(colour).bit))

    def _add_term(self, term: Term, mask: int) -> NodeId:
        return self._add(term.op, tuple(self._add_term(arg, mask) for arg in term.args), mask)

    def _add(self, op: str, kids: tuple[NodeId, ...], mask: int) -> NodeId:
        """Hash-consed add over known ids, returning the class root; the fast path rewrites use."""
        parent, find = self._parent, self._find
        for kid in kids:
            if parent[kid] != kid:
                kids = tuple([find(kid) for kid in kids])
                break
        node = self._hashcons.get((op, *kids))
        if node is None:
            node = node_id(op, kids)
            if node not in self._nodes:
                self._insert(node, op, kids, mask)
                self._open.nodes.append((node, mask, op, kids))
                self.version += 1
                return find(node)
        added = mask & ~self._masks[node]
        if added:
            self._tag(node, added)
            self._open.tags.append((node, added))
        return node if parent[node] == node else find(node)

    def union(self, a: NodeId, b: NodeId) -> bool:
        """Assert two classes equal; True if that merged two classes."""
        for node in (a, b):
            if node not in self._parent:
                raise KeyError(f"unknown e-node id {node!r}")
        return self._union(a, b)

    def _union(self, a: NodeId, b: NodeId) -> bool:
        parent = self._parent
        if (a if parent[a] == a else self._find(a)) == (b if parent[b] == b else self._find(b)):
            return False
        pair = (a, b) if a < b else (b, a)
        self._unions.add(pair)
        self._open.unions.append(pair)
        return self._merge(a, b)

    # --- congruence closure ----------------------------------------------------------

    def _insert(self, node: NodeId, op: str, kids: tuple[NodeId, ...], mask: int) -> None:
        """Add an e-node to the state (its id already computed) and to the closure."""
        self._nodes[node] = (op, kids)
        masks, parent, uses = self._masks, self._parent, self._uses
        masks[node] = masks.get(node, 0) | mask
        if node not in parent:
            parent[node] = node
        self._touched.add(node)
        roots = []
        for kid in kids:
            up = parent.get(kid)
            if up is None:  # a child we have not seen yet: its own class until it arrives
                parent[kid] = root = kid
            else:
                root = kid if up == kid else self._find(kid)
            if root in uses:
                if root not in roots:
                    uses[root].append(node)
            else:
                uses[root] = [node]
            roots.append(root)
        key = (op, *roots)
        other = self._hashcons.get(key)
        if other is None:
            self._hashcons[key] = node
        else:
            self._merge(other, node)  # congruent to a node we already had

    def _merge(self, a: NodeId, b: NodeId) -> bool:
        root, child = self._find(a), self._find(b)
        if root == child:
            return False
        uses, least = self._uses, self._least
        if len(uses.get(root, ())) < len(uses.get(child, ())):
            root, child = child, root  # keep the root with more users: fewer shapes to re-key
        self._parent[child] = root
        smallest = min(least.pop(child, child), least.get(root, root))
        if smallest != root:
            least[root] = smallest
        self._touched.add(root)
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

    def _repair(self, root: NodeId, users: list[NodeId]) -> None:
        """Re-key users of a merged class, merge those that became congruent, file them under the root."""
        hashcons, key_of = self._hashcons, self._key
        kept: dict[tuple, NodeId] = {}  # one user per shape: congruent users are merged, not kept
        for user in users:
            key = key_of(user)
            twin = kept.get(key)
            if twin is None:
                kept[key] = user
                twin = hashcons.setdefault(key, user)
            if twin != user:
                self._merge(twin, user)
        self._touched.update(kept.values())
        root = self._find(root)
        if root in self._uses:
            self._uses[root].extend(kept.values())
        else:
            self._uses[root] = list(kept.values())

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
                parent.setdefault(a, a)
                parent.setdefault(b, b)
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
