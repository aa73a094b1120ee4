"""Explanations: the proof path of a derived equality, as egg's explanations give it.

`Saturator.explain` runs the same saturation with a `Recorder`: every match a rule applies
is kept as a ground instance `lhs[σ] = rhs[σ]` of that rule (a variable stands for its
class's term, or for its class's numeral where the rule tests the value). A proof-producing
congruence closure over those instances (`ProofGraph`: egg's proof forest, after
Nieuwenhuis and Oliveras, "Proof-producing congruence closure", 2005) then finds a path
from one side to the other. Flattened, it is a list of `Step`s, each one rule rewriting one
subterm, forward or backward, so anyone can replay it. Every union the e-graph made came
from a recorded instance or from congruence, so a pair the saturation proved equal always
has a path.

Like egg's, the path is not minimal. It is shortened cheaply: a stretch that comes back
to a term it passed is cut out. (egg's greedy length optimisation, which weighs each
congruence step's sub-proofs, is not done.)
"""

from dataclasses import dataclass
from typing import Iterable

from . import numbers
from .rewrites import FoldRule, Match, Rule
from .terms import Term, is_pattern_var

MAX_STEPS = 20_000  # a flat path longer than this is refused (congruence can make it blow up)

CONGRUENCE = ""  # the reason of a proof-forest edge between two congruent terms (no rule)


@dataclass(frozen=True)
class Step:
    """`rule` rewrote the subterm at `path` (argument positions from the root) forward (its left
    side to its right) or backward, giving `term`."""

    rule: str
    forward: bool
    path: tuple[int, ...]
    term: Term

    def to_json(self) -> dict:
        return {"rule": self.rule, "direction": "forward" if self.forward else "backward",
                "at": list(self.path), "term": str(self.term)}  # fmt: skip


@dataclass(frozen=True)
class Explanation:
    """How `start` becomes the last step's term, one rewrite at a time."""

    start: Term
    steps: tuple[Step, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        """The rules the path uses, first use first."""
        return tuple(dict.fromkeys(step.rule for step in self.steps))

    def to_json(self) -> dict:
        return {"start": str(self.start), "steps": [step.to_json() for step in self.steps], "rules": list(self.rules)}


class ProofTooLong(Exception):
    """The flat path would exceed MAX_STEPS."""


class ProofGraph:
    """Hash-consed ground terms, their congruence closure, and why each union holds.

    The proof forest has one edge per union that merged two classes, from one term to
    another, labelled with the rule whose instance the two are (or CONGRUENCE); the path
    between two terms of a class in it is their proof.
    """

    def __init__(self) -> None:
        self._shapes: list[tuple] = []  # id -> (op, *kid ids)
        self._ids: dict[tuple, int] = {}
        self._parent: list[int] = []  # union-find
        self._uses: dict[int, list[int]] = {}  # class root -> terms with a kid in it
        self._signatures: dict[tuple, int] = {}  # (op, *kid roots) -> a term with that signature
        self._values: dict[int, int] = {}  # class root -> a numeral leaf in it
        self._edges: dict[int, tuple[int, str, bool]] = {}  # proof forest: id -> (next id, reason, forward)
        self._pending: list[tuple[int, int]] = []  # congruent pairs found, to merge

    def find(self, node: int) -> int:
        parent = self._parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def add(self, op: str, kids: Iterable[int] = ()) -> int:
        children = tuple(kids)
        shape = (op, *children)
        known = self._ids.get(shape)
        if known is not None:
            return known
        node = len(self._shapes)
        self._shapes.append(shape)
        self._ids[shape] = node
        self._parent.append(node)
        for kid in {self.find(kid) for kid in children}:
            self._uses.setdefault(kid, []).append(node)
        if not children and numbers.numeral_of(op) == op:
            self._values[node] = node
        signature = self._signature(node)
        twin = self._signatures.get(signature)
        if twin is None or self._signature(twin) != signature:
            self._signatures[signature] = node
        else:
            self._pending.append((twin, node))
            self._close()
        if len(shape) == 3 and op in numbers.ARITHMETIC:
            self._fold(node)
        return node

    def add_term(self, term: Term) -> int:
        return self.add(term.op, [self.add_term(arg) for arg in term.args])

    def union(self, a: int, b: int, reason: str, forward: bool = True) -> None:
        """Assert term a = term b because of `reason` (a rule rewriting a to b when `forward`)."""
        self._link(a, b, reason, forward)
        self._close()

    def term(self, node: int) -> Term:
        op, *kids = self._shapes[node]
        return Term(op, tuple(self.term(kid) for kid in kids))

    def explain(self, a: int, b: int) -> Explanation | None:
        """The path from term a to term b, or None if they are not in one class."""
        if self.find(a) != self.find(b):
            return None
        raw: list[tuple[tuple[int, ...], str, bool, int]] = []
        self._explain(a, b, (), raw)
        current = self.term(a)
        steps: list[Step] = []
        seen = {current: 0}  # term -> how many steps reach it
        for path, rule, forward, node in raw:
            current = _replace(current, path, self.term(node))
            if current in seen:  # back at a term passed before: cut the loop out
                del steps[seen[current] :]
                seen = {step.term: number + 1 for number, step in enumerate(steps)} | {self.term(a): 0}
                continue
            steps.append(Step(rule, forward, path, current))
            seen[current] = len(steps)
        return Explanation(self.term(a), tuple(steps))

    # --- inside -------------------------------------------------------------------------------

    def _signature(self, node: int) -> tuple:
        op, *kids = self._shapes[node]
        return (op, *[self.find(kid) for kid in kids])

    def _fold(self, node: int) -> None:
        """Where both operands of an arithmetic term have a value, the fold rule's instance on them."""
        op, left, right = self._shapes[node]
        a, b = self._values.get(self.find(left)), self._values.get(self.find(right))
        if a is None or b is None:
            return
        result = numbers.apply(op, numbers.value(self._shapes[a][0]), numbers.value(self._shapes[b][0]))
        if result is not None:
            on_numerals = self.add(op, (a, b))  # congruent to node
            self.union(on_numerals, self.add(numbers.spell(result)), FoldRule(op).name)

    def _link(self, a: int, b: int, reason: str, forward: bool) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return
        self._reroot(a)
        self._edges[a] = (b, reason, forward)
        uses = self._uses
        if len(uses.get(root_a, ())) > len(uses.get(root_b, ())):
            root_a, root_b = root_b, root_a
        self._parent[root_a] = root_b  # root_a's users change signature
        if root_a in self._values:
            self._values.setdefault(root_b, self._values.pop(root_a))
        moved = uses.pop(root_a, [])
        uses.setdefault(root_b, []).extend(moved)
        signatures = self._signatures
        for user in moved:
            signature = self._signature(user)
            twin = signatures.get(signature)
            if twin is None or self._signature(twin) != signature:
                signatures[signature] = user
            elif self.find(twin) != self.find(user):
                self._pending.append((twin, user))

    def _close(self) -> None:
        while self._pending:
            a, b = self._pending.pop()
            self._link(a, b, CONGRUENCE, True)

    def _reroot(self, node: int) -> None:
        """Make `node` the root of its proof tree (reverse the edges on its way to the old root)."""
        edges = self._edges
        current, edge = node, edges.pop(node, None)
        while edge is not None:
            following, reason, forward = edge
            after = edges.pop(following, None)
            edges[following] = (current, reason, not forward)
            current, edge = following, after

    def _path(self, a: int, b: int) -> list[tuple[int, int, str, bool]]:
        """Edges (from, to, reason, forward) from a to b in the proof forest."""
        up_a, at = [a], a
        while at in self._edges:
            at = self._edges[at][0]
            up_a.append(at)
        index = {node: number for number, node in enumerate(up_a)}
        up_b, at = [b], b
        while at not in index:
            at = self._edges[at][0]
            up_b.append(at)
        path = []
        for node in up_a[: index[at]]:
            following, reason, forward = self._edges[node]
            path.append((node, following, reason, forward))
        for node in reversed(up_b[:-1]):
            following, reason, forward = self._edges[node]
            path.append((following, node, reason, not forward))
        return path

    def _explain(self, a: int, b: int, path: tuple[int, ...], out: list) -> None:
        for start, end, reason, forward in self._path(a, b):
            if reason == CONGRUENCE:  # same operator, each pair of kids equal: explain them in turn
                for position, (kid_a, kid_b) in enumerate(zip(self._shapes[start][1:], self._shapes[end][1:])):
                    if kid_a != kid_b:
                        self._explain(kid_a, kid_b, (*path, position), out)
            else:
                out.append((path, reason, forward, end))
                if len(out) > MAX_STEPS:
                    raise ProofTooLong(f"the path would take more than {MAX_STEPS} steps")


def _replace(term: Term, path: tuple[int, ...], new: Term) -> Term:
    if not path:
        return new
    position, rest = path[0], path[1:]
    args = list(term.args)
    args[position] = _replace(args[position], rest, new)
    return Term(term.op, tuple(args))


class Recorder:
    """Saturation's `record` hook: keeps each applied match as a ground instance in a ProofGraph."""

    def __init__(self) -> None:
        self.proofs = ProofGraph()
        self._interned: dict[str, int] = {}  # e-graph node id -> proof term (ids are content addresses: any e-graph)

    def __call__(self, egraph, rule: Rule, matches: list[Match]) -> None:
        proofs = self.proofs
        order = rule._compiled[3]
        valued = {variable for _, variable in rule.conditions}  # bound to their class's numeral
        for match in matches:
            binding: dict[str, int] = {}
            for variable, cls in zip(order, match[1:]):
                if variable in valued:
                    numeral = egraph._numbers.get(egraph._find(cls))
                    if numeral is None or numeral == numbers.CONFLICT:
                        break  # the condition does not hold: the rule adds nothing
                    binding[variable] = proofs.add(numeral)
                else:
                    binding[variable] = self._node(egraph, cls)
            else:
                lhs = self._instance(rule.lhs, binding)
                if not isinstance(rule, FoldRule):  # a fold's instance is its own (see ProofGraph._fold)
                    proofs.union(lhs, self._instance(rule.rhs, binding), rule.name)

    def _node(self, egraph, node: str) -> int:
        known = self._interned.get(node)
        if known is None:
            op, kids = egraph._nodes[node]
            known = self.proofs.add(op, [self._node(egraph, kid) for kid in kids])
            self._interned[node] = known
        return known

    def _instance(self, pattern: Term, binding: dict[str, int]) -> int:
        if is_pattern_var(pattern):
            return binding[pattern.op]
        return self.proofs.add(pattern.op, [self._instance(arg, binding) for arg in pattern.args])
