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

Causality (events, dots, clocks, deltas, compaction into a checkpoint, epochs) is in events.py; the knowledge budget (`max_nodes`, a deterministic
eviction that commutes with joins) in retention.py. This module keeps the state and its
congruence closure, and applies both.

Numbers (the constant-folding analysis, see numbers.py): each class knows the numeral in
it, if any, merged by numbers.join on every union; so it follows from the state alone,
whatever the order of events. Folding rules (rewrites.py) read it and add what it implies
as ordinary e-nodes and unions, which replicate like everything else.

Children may arrive after their parents (deltas reordered or lost): an unknown
id simply starts as its own class, and the node fills in when it arrives.
"""

import time
from dataclasses import dataclass, field
from functools import lru_cache
from hashlib import blake2b
from typing import Callable, Iterable

from .clock import VectorClock
from .clock import merge as merge_clocks
from .colour import COLOURS, Colour, colours_of
from .events import _CHECKED, DELTA_KIND, STATE_KIND  # noqa: F401  (where users of the e-graph found them)
from .events import EPOCH_SECONDS, BatchRow, Checkpoint, Delta, Epochs, EventLog, NodeId, NodeRow
from .events import make_checkpoint, make_delta, mask_of_epochs, node_id, stable_clock
from .numbers import CONFLICT, numeral_of
from .numbers import join as join_numerals
from .retention import cutoff
from .terms import Term

_BITS = len(COLOURS)


@lru_cache(maxsize=1 << 12)
def _mask_of(epochs: Epochs) -> int:
    """The colour bits an element's epochs say it has."""
    mask = 0
    for bit in range(_BITS):
        if epochs[1 + bit]:
            mask |= 1 << bit
    return mask


def _interned(epochs: Epochs) -> Epochs:
    """One shared tuple per distinct epochs value: there are few (a handful of epochs, few colours)."""
    return epochs


@lru_cache(maxsize=1 << 12)  # few distinct arguments, and joins ask for every e-node they carry
def _raised(old: Epochs | None, mask: int, epoch: int) -> Epochs:
    """An e-node's epochs after an event of `epoch` mentioned it with colour bits `mask`."""
    slots = [0] * (1 + _BITS) if old is None else list(old)
    if epoch > slots[0]:
        slots[0] = epoch
    for bit in range(_BITS):
        if mask >> bit & 1 and epoch > slots[1 + bit]:
            slots[1 + bit] = epoch
    return _interned(tuple(slots))


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
    another, both of which existed when the watcher last looked. Both are ordered sets of
    ids (dicts, so the order and what follows from it is the same on every run), so a
    watcher that looks rarely costs bounded memory. `fresh`: classes made since then, all of
    whose ids are new. Merging one into an older class is no merge to a watcher: every shape
    in it or naming it is new, so `shapes` has all that changed (a rewrite's result class
    joining the matched class, the common case, would otherwise mark the class as grown).
    """

    __slots__ = ("shapes", "merges", "fresh")

    def __init__(self) -> None:
        self.shapes: dict[NodeId, None] = {}
        self.merges: dict[NodeId, None] = {}
        self.fresh: set[NodeId] = set()


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
        total, moved = members.get(root), members.pop(child, None)  # (no default: it would parse the id every time)
        members[root] = (int(root, 16) if total is None else total) + (int(child, 16) if moved is None else moved)
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


# A Saturator saturates each question in fresh e-graphs, which make the same small e-nodes
# again and again (`b + a` of `a + b`); their ids are content addresses, the same in every
# e-graph: 43 % of the ids saturating 1,000 distinct small terms asked for were asked before.
_node_id = lru_cache(maxsize=HASH_CACHE)(node_id)


@lru_cache(maxsize=HASH_CACHE)
def _node_hash(node: NodeId, mask: int) -> int:
    return _hash128(f"{node}:{mask}")


@lru_cache(maxsize=HASH_CACHE)
def _class_hash(members: int) -> int:
    """Hash of a class, from the sum of its ids."""
    return _hash128(str(members))


class EGraph:
    """One replica of the CRDT e-graph. Mutations defer congruence repair until `rebuild()`."""

    def __init__(self, replica: str = "local", max_nodes: object = None, wall: Callable[[], float] = time.time):
        """`max_nodes`: the knowledge budget (see retention.py), None for none; `wall`: the wall
        clock its events' epochs are read from (seconds)."""
        if not isinstance(replica, str) or not replica:
            raise ValueError(f"replica id must be a non-empty string, got {replica!r}")
        budget: int | None = None
        if type(max_nodes) is int and max_nodes >= 1:
            budget = max_nodes
        elif max_nodes is not None:
            raise ValueError(f"max_nodes must be a positive int or None, got {max_nodes!r}")
        self.replica = replica
        self.max_nodes = budget
        self._wall = wall
        # The CRDT state: sets that grow but for what the retention floor evicts, each element with its epoch.
        self._nodes: dict[NodeId, tuple[str, tuple[NodeId, ...]]] = {}
        self._masks: dict[NodeId, int] = {}
        self._unions: dict[tuple[NodeId, NodeId], int] = {}  # pair -> its epoch
        self._epochs: dict[NodeId, Epochs] = {}  # id -> epochs of its presence and colour bits (events.Epochs)
        self._per_epoch: dict[int, int] = {}  # presence epoch -> ids with it (kept only under a budget)
        self._floor = 0  # elements of older epochs are evicted (retention.py)
        self._epoch = 0  # the largest epoch made or absorbed here: new events are never older
        self.evictions = 0  # times the floor evicted something (the closure was rebuilt)
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
        self._log = EventLog()  # causality: clock, events some peer may lack, their base
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
        watcher.shapes, watcher.merges, watcher.fresh = {}, {}, set()
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
                node = _node_id(op, kids)
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
        self._unions.setdefault(pair, 0)  # its epoch comes when the event is sealed
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
            for changes in self._watchers:
                changes.fresh.add(node)
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
        for changes in self._watchers:
            changes.fresh.add(node)

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
            fresh = changes.fresh
            if root in fresh:
                if child in fresh:
                    fresh.discard(child)  # two new classes: one new class
                else:
                    fresh.discard(root)  # a new class into an older one: its shapes are all new (see Changes)
            elif child in fresh:
                fresh.discard(child)
            else:
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

    # --- causality and replication (the machinery is in events.py) --------------------

    @property
    def clock(self) -> VectorClock:
        """Vector clock: per replica, how many of its events this replica has seen (contiguously)."""
        self._seal()
        return dict(self._log.clock)

    @property
    def floor(self) -> int:
        """The retention floor: elements of older epochs are evicted (retention.py)."""
        return self._floor

    def _seal(self) -> None:
        """Close the open batch as one event of this replica."""
        if self._open:
            log, batch = self._log, self._open
            seq = log.clock.get(self.replica, 0) + 1
            epoch = max(self._epoch, 1 + int(self._wall() // EPOCH_SECONDS))
            self._epoch = epoch
            event = (self.replica, seq, tuple(batch.nodes), tuple(batch.unions), tuple(batch.tags), epoch)
            self._open = _Batch()
            self._stamp(event)
            log.record(event)
            log.add_dot(self.replica, seq)
            self._retain(0)

    def _stamp(self, batch: BatchRow) -> None:
        """Give the elements a local event mentions its epoch."""
        _, _, nodes, unions, tags, epoch = batch
        for node, mask, _, _ in nodes:
            self._mention(node, mask, epoch)
        for node, mask in tags:
            self._mention(node, mask, epoch)
        for pair in unions:
            if self._unions.get(pair, 0) < epoch:
                self._unions[pair] = epoch

    def _mention(self, node: NodeId, mask: int, epoch: int) -> None:
        old = self._epochs.get(node)
        new = _raised(old, mask, epoch)
        if new is not old:
            self._epochs[node] = new
            if self.max_nodes is not None and (old is None or old[0] != new[0]):
                per_epoch = self._per_epoch
                if old is not None:
                    per_epoch[old[0]] -= 1
                per_epoch[new[0]] = per_epoch.get(new[0], 0) + 1

    def delta_since(self, clock: VectorClock) -> Delta:
        """Every event this replica knows that `clock` has not seen (δ-CRDT delta); with a
        checkpoint (the whole state) when `clock` does not cover what was compacted."""
        self._seal()
        log = self._log
        batches = log.since(clock)
        checkpoint = None
        if batches is None:
            checkpoint = self._checkpoint()
            batches = log.since(merge_clocks(clock, log.base)) or []
        return make_delta(dict(clock), dict(log.clock), tuple(batches), self._floor, checkpoint)

    def _checkpoint(self) -> Checkpoint:
        epochs = self._epochs
        nodes = tuple([(node, epochs[node], op, kids) for node, (op, kids) in self._nodes.items()])
        tags = tuple([(node, mine) for node, mine in epochs.items() if node not in self._nodes])
        unions = tuple([(a, b, epoch) for (a, b), epoch in self._unions.items()])
        return make_checkpoint(dict(self._log.base), nodes, unions, tags)

    def compact(self, stable: VectorClock) -> None:
        """Drop the events at or below `stable` (what every peer that asks has seen) into the checkpoint."""
        self._seal()
        self._log.compact(stable)

    def compact_seen_by(self, peers: list[VectorClock]) -> None:
        """compact() what every one of `peers` has seen. Reads only the replicas with events held: a clock
        names every replica that ever made an event (a thousand, in a network of a thousand agents), and
        this runs on every sync exchange."""
        self._seal()
        log = self._log
        log.compact(stable_clock({origin: log.clock.get(origin, 0) for origin in log.events}, peers))

    def events_held(self) -> int:
        """Events kept individually (not yet compacted)."""
        return sum([len(events) for events in self._log.events.values()])

    def raise_floor(self, floor: int) -> None:
        """A peer's retention floor (from its sync request): apply it here too."""
        self._seal()
        self._retain(floor)

    def join(self, other: "EGraph | Delta | dict") -> "EGraph":
        """Merge another replica, a delta, or a wire dict (state or delta) into this one; returns self."""
        if isinstance(other, EGraph):
            other = other.delta_since(self.clock)
        elif isinstance(other, dict):
            other = Delta.from_wire(other)
        elif not isinstance(other, Delta):
            raise TypeError(f"cannot join {type(other).__name__} into an EGraph")
        self._seal()
        log = self._log
        if other.checkpoint is not None:
            self._absorb_checkpoint(other.checkpoint)
            log.raise_base(other.checkpoint.base)
        for batch in other.batches:
            origin, seq = batch[0], batch[1]
            if not log.has(origin, seq):  # seen already: duplicates and resends are free
                self._absorb(batch)
                log.record(batch)
                log.add_dot(origin, seq)
        self.rebuild()
        self._retain(other.floor)
        return self

    def adopt(self, delta: Delta) -> bool:
        """Take a delta's contents as this replica's own change (one event of its own at the next seal),
        keeping what is new here; the delta's dots are not recorded. Contents mean the same everywhere
        (ids are content hashes), so re-stamping them is sound: it is how agents take what a stream
        component derived, so that the component's replica ids never enter the network's clocks.
        True if anything was new."""
        self._seal()
        version, opened = self.version, self._open
        nodes: list[NodeRow] = [row for batch in delta.batches for row in batch[2]]
        unions: list[tuple[NodeId, NodeId]] = [pair for batch in delta.batches for pair in batch[3]]
        tags: list[tuple[NodeId, int]] = [tag for batch in delta.batches for tag in batch[4]]
        if delta.checkpoint is not None:
            nodes += [(node, _mask_of(epochs), op, kids) for node, epochs, op, kids in delta.checkpoint.nodes]
            unions += [(a, b) for a, b, _ in delta.checkpoint.unions]
            tags += [(node, _mask_of(epochs)) for node, epochs in delta.checkpoint.tags]
        for node, mask, op, kids in nodes:
            if node not in self._nodes:
                self._insert(node, op, kids, mask)
                opened.nodes.append((node, mask, op, kids))
                self.version += 1
            else:
                tags.append((node, mask))
        for node, mask in tags:
            added = mask & ~self._masks.get(node, 0)
            if added and self._tag(node, added):
                opened.tags.append((node, added))
        for a, b in unions:
            for end in (a, b):
                if end not in self._parent:
                    self._new_id(end)
            self._union(a, b)
        self.rebuild()
        return self.version != version

    def _absorb(self, batch: BatchRow) -> None:
        """Set-union one event into the state (nothing, if the floor would evict all of it)."""
        _, _, nodes, unions, tags, epoch = batch
        if epoch < self._floor:
            return
        if epoch > self._epoch:
            self._epoch = epoch
        known, parent, masks, mention, epochs = self._nodes, self._parent, self._masks, self._mention, self._epochs
        for node, mask, op, kids in nodes:
            if node not in known:
                self._insert(node, op, kids, mask)
                if node not in epochs and self.max_nodes is None:
                    epochs[node] = _raised(None, mask, epoch)  # (mention's common case, inline: joins spend their time here)
                    continue
            elif mask & ~masks[node]:
                self._tag(node, mask)
            mention(node, mask, epoch)
        for a, b in unions:
            pair = (a, b) if a < b else (b, a)
            old = self._unions.get(pair)
            if old is None:
                self._unions[pair] = epoch
                for node in pair:
                    if node not in parent:
                        self._new_id(node)
                self._merge(a, b)
            elif old < epoch:
                self._unions[pair] = epoch
        for node, mask in tags:
            self._tag(node, mask)
            mention(node, mask, epoch)
        self.version += 1

    def _absorb_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Set-union a checkpoint's elements (with their epochs) into the state."""
        floor, parent, known = self._floor, self._parent, self._nodes
        for node, epochs, op, kids in checkpoint.nodes:
            self._absorb_epochs(node, epochs)
            if epochs[0] >= floor and node not in known:
                self._insert(node, op, kids, self._masks.get(node, 0))
        for node, epochs in checkpoint.tags:
            self._absorb_epochs(node, epochs)
        for a, b, epoch in checkpoint.unions:
            pair = (a, b) if a < b else (b, a)
            old = self._unions.get(pair)
            if epoch < floor or (old is not None and old >= epoch):
                continue
            self._unions[pair] = epoch
            if old is None:
                for end in pair:
                    if end not in parent:
                        self._new_id(end)
                self._merge(a, b)
        self.version += 1

    def _absorb_epochs(self, node: NodeId, epochs: Epochs) -> None:
        floor = self._floor
        if epochs[0] < floor:
            return
        if epochs[0] > self._epoch:
            self._epoch = epochs[0]
        for bit in range(_BITS):
            epoch = epochs[1 + bit]
            if epoch >= floor and epoch:
                self._mention(node, 1 << bit, epoch)
                self._tag(node, 1 << bit)
        self._mention(node, 0, epochs[0])

    # --- retention (the policy is in retention.py) --------------------------------------

    def _retain(self, floor: int) -> None:
        """Raise the floor to `floor` and to what the budget allows; evict what falls below."""
        if floor < self._floor:
            floor = self._floor
        if self.max_nodes is not None:
            floor = max(floor, cutoff(self._per_epoch, self.max_nodes))
        if floor > self._floor:
            self._floor = floor
            if self._epoch < floor:
                self._epoch = floor
            self._evict()

    def _evict(self) -> None:
        """Keep exactly the elements at or above the floor, and rebuild the closure from them."""
        floor = self._floor
        kept: dict[NodeId, Epochs] = {}
        for node, epochs in self._epochs.items():
            if epochs[0] >= floor:
                slots = [epochs[0]] + [epoch if epoch >= floor else 0 for epoch in epochs[1:]]
                kept[node] = _interned(tuple(slots))
        unions = {pair: epoch for pair, epoch in self._unions.items() if epoch >= floor}
        if len(unions) == len(self._unions) and kept == self._epochs:
            return
        nodes = [(node, op, kids) for node, (op, kids) in self._nodes.items() if node in kept]
        indexed = self._classes is not None
        self._nodes, self._masks, self._unions, self._epochs = {}, {}, unions, kept
        self._parent, self._least, self._uses, self._hashcons, self._shape = {}, {}, {}, {}, {}
        self._classes = {} if indexed else None
        self._pending, self._numbers = [], {}
        self._digest, self._canonical = None, (-1, [])
        self._per_epoch = {}
        if self.max_nodes is not None:
            for epochs in kept.values():
                self._per_epoch[epochs[0]] = self._per_epoch.get(epochs[0], 0) + 1
        for node, epochs in kept.items():
            self._masks[node] = mask_of_epochs(epochs)
        for node, op, kids in nodes:
            self._insert(node, op, kids, self._masks[node])
        for a, b in unions:
            for end in (a, b):
                if end not in self._parent:
                    self._new_id(end)
            self._merge(a, b)
        self.rebuild()
        for changes in self._watchers:  # a Saturation starts over (see evictions)
            changes.shapes, changes.merges, changes.fresh = {}, {}, set()
        self.evictions += 1
        self.version += 1

    # --- wire -------------------------------------------------------------------------

    def to_wire(self) -> dict:
        """The full state as a plain JSON-ready dict (a checkpoint, once compacted, and the events above it)."""
        wire = self.delta_since({}).to_wire()
        wire["kind"] = STATE_KIND
        wire["replica"] = self.replica
        return wire

    @classmethod
    def from_wire(cls, wire: dict, replica: str | None = None, max_nodes: int | None = None) -> "EGraph":
        """Restore a state (as `replica`, default the one that sent it); checks every node id."""
        delta = Delta.from_wire(wire)
        return cls(replica or wire.get("replica") or "local", max_nodes).join(delta)

    def fork(self, replica: str) -> "EGraph":
        """A new replica with this one's state (no wire round trip)."""
        return EGraph(replica, self.max_nodes, self._wall).join(self.delta_since({}))
