"""Equality saturation under budgets, extraction, and a memoised front end.

Each iteration searches every rule against one snapshot of the e-graph, then
applies all matches and rebuilds (egg's schedule), so the result does not
depend on rule order. After the first iteration a rule only starts from e-nodes
near classes that changed (any other match was possible, so found, before), and
a match already applied is skipped. It stops when an iteration changes nothing
(saturated), when an optional goal holds, or when a budget runs out.
"""

import enum
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

from .colour import Colour
from .egraph import EGraph, NodeId
from .rewrites import ALL_RULES, Match, MatchIndex, Rule, can_fire
from .terms import Term, operators, parse


@dataclass(frozen=True)
class Budget:
    """Limits on one saturation; whichever is reached first stops it."""

    iterations: int = 30
    nodes: int = 10_000
    seconds: float = 1.0
    matches: int = 10_000  # per rule per iteration; bounds the work of one search


class StopReason(str, enum.Enum):
    SATURATED = "saturated"  # a full iteration changed nothing
    GOAL = "goal"  # the caller's goal holds (e.g. two terms proven equal)
    ITERATIONS = "iteration-limit"
    NODES = "node-limit"
    TIME = "time-limit"


@dataclass(frozen=True)
class SaturationReport:
    stop_reason: StopReason
    iterations: int
    nodes: int
    matches: int
    elapsed: float  # seconds

    @property
    def saturated(self) -> bool:
        return self.stop_reason is StopReason.SATURATED


def match_index(egraph: EGraph) -> MatchIndex:
    """Index the canonical e-nodes by operator, and by class then operator, for rule search."""
    by_op: dict[str, list] = {}
    by_class: dict[str, dict[str, list]] = {}
    for cls, key in egraph.canonical_nodes():
        op, kids = key[0], key[1:]
        if op in by_op:
            by_op[op].append((cls, kids))
        else:
            by_op[op] = [(cls, kids)]
        ops = by_class.get(cls)
        if ops is None:
            by_class[cls] = {op: [kids]}
        elif op in ops:
            ops[op].append(kids)
        else:
            ops[op] = [kids]
    return by_op, by_class


def saturate(
    egraph: EGraph,
    rules: Iterable[Rule] = ALL_RULES,
    budget: Budget = Budget(),
    *,
    goal: Callable[[], bool] | None = None,
) -> SaturationReport:
    """Apply rules until nothing changes, `goal()` holds, or the budget runs out."""
    search = _Search(tuple(rules), budget.matches)
    start = time.perf_counter()
    deadline = start + budget.seconds
    iterations = matches = 0
    egraph.take_touched()  # track what changes, so each search looks only there
    try:
        stop = StopReason.GOAL if goal is not None and goal() else None
        while stop is None:
            if iterations >= budget.iterations:
                stop = StopReason.ITERATIONS
                break
            version = egraph.version
            found = search.new_matches(egraph, everywhere=iterations == 0)
            iterations += 1
            for rule, rule_matches in found:
                matches += rule.apply(egraph, rule_matches, budget.nodes)
                if len(egraph) > budget.nodes:
                    stop = StopReason.NODES
                    break
                if time.perf_counter() > deadline:
                    stop = StopReason.TIME
                    break
            egraph.rebuild()
            if stop is None:
                if goal is not None and goal():
                    stop = StopReason.GOAL
                elif egraph.version == version:
                    stop = StopReason.SATURATED
    finally:
        egraph.stop_tracking()
    return SaturationReport(stop, iterations, len(egraph), matches, time.perf_counter() - start)


class _Search:
    """Finds an iteration's new matches: only around classes that changed, and never one twice."""

    def __init__(self, rules: tuple[Rule, ...], limit: int):
        self.rules = rules
        self.limit = limit
        self.applied: list[set] = [set() for _ in rules]  # a match seen again would rebuild what exists
        self.complete = [False] * len(rules)  # did the rule's last search find all its matches?
        self.levels = max((rule.depth for rule in rules), default=1) - 1

    def new_matches(self, egraph: EGraph, everywhere: bool) -> list[tuple[Rule, list[Match]]]:
        dirty = None if everywhere else dirty_levels(egraph, self.levels)
        index = match_index(egraph)
        tops_for: dict[tuple[str, int], list] = {}  # rules with the same top and depth share candidates
        found = []
        for number, rule in enumerate(self.rules):
            tops = None
            if dirty is not None and self.complete[number]:
                shape = (rule.lhs.op, rule.depth)
                if shape not in tops_for:
                    tops_for[shape] = changed_tops(index, dirty, *shape)
                tops = tops_for[shape]
                if not tops:
                    continue
            results = rule.search(index, self.limit, tops)
            self.complete[number] = len(results) < self.limit
            seen = self.applied[number]
            fresh = [match for match in results if match not in seen]
            if fresh:
                seen.update(fresh)
                found.append((rule, fresh))
        return found


def dirty_levels(egraph: EGraph, levels: int) -> list[set]:
    """Changed classes since the last search, then (level k) classes within k parent steps of one."""
    result = [egraph.take_touched()]
    if levels > 1:
        nodes = egraph.canonical_nodes()
        for _ in range(levels - 1):
            below = result[-1]
            result.append(below | {cls for cls, key in nodes if any(kid in below for kid in key[1:])})
    return result


def changed_tops(index: MatchIndex, dirty: list[set], op: str, depth: int) -> list:
    """Top e-nodes a pattern of this depth must start from to find every match not found before.

    A new match passes through a changed class: its top's own class, or one within
    depth - 2 parent steps below one of the top's children.
    """
    changed, below = dirty[0], dirty[depth - 2] if depth >= 2 else frozenset()
    return [(cls, kids) for cls, kids in index[0].get(op, ()) if cls in changed or not below.isdisjoint(kids)]


# --- extraction ----------------------------------------------------------------------------

Cost = Callable[[str, list[float]], float]


def ast_size(op: str, kid_costs: list[float]) -> float:
    return 1 + sum(kid_costs)


def extract(egraph: EGraph, class_id: NodeId, cost: Cost = ast_size) -> Term:
    """The cheapest term in a class (AST size by default).

    Among equally cheap choices the smallest shape written with class ids wins (not
    replica-local roots), so converged replicas extract the same term.
    """
    nodes = egraph.canonical_nodes()
    best: dict[NodeId, float] = {}  # class root -> cheapest cost found
    changed = True
    while changed:  # costs only fall, over finitely many choices: a fixpoint is reached
        changed = False
        for cls, key in nodes:
            total = _cost(key, best, cost)
            if total is not None and total < best.get(cls, math.inf):
                best[cls] = total
                changed = True
    root = egraph.root(class_id)
    if root not in best:
        raise ValueError(f"class {class_id} has no finite term (its e-nodes have not all arrived)")
    shapes: dict[NodeId, list[tuple]] = {}
    for cls, key in nodes:
        shapes.setdefault(cls, []).append(key)
    return _build(root, best, shapes, cost, egraph.find, set())


def _cost(shape: tuple, best: dict[NodeId, float], cost: Cost) -> float | None:
    kid_costs = []
    for kid in shape[1:]:
        kid_cost = best.get(kid)
        if kid_cost is None:
            return None
        kid_costs.append(kid_cost)
    return cost(shape[0], kid_costs)


def _build(cls: NodeId, best: dict, shapes: dict, cost: Cost, find: Callable, path: set) -> Term:
    if cls in path:
        raise ValueError("cost function is not increasing: the cheapest choice is cyclic")
    cheapest = [shape for shape in shapes[cls] if _cost(shape, best, cost) == best[cls]]
    shape = min(cheapest, key=lambda shape: (shape[0], *map(find, shape[1:])))
    path.add(cls)
    term = Term(shape[0], tuple(_build(kid, best, shapes, cost, find, path) for kid in shape[1:]))
    path.discard(cls)
    return term


# --- memoised front end ---------------------------------------------------------------------


@dataclass(frozen=True)
class Simplified:
    term: Term  # cheapest equivalent found
    report: SaturationReport


@dataclass(frozen=True)
class Verdict:
    equal: bool
    report: SaturationReport


class LRU:
    """A bounded memo (least recently used entry evicted) that counts hits for metrics."""

    def __init__(self, size: int):
        self.size = size
        self.hits = self.misses = 0
        self._data: OrderedDict = OrderedDict()

    def get(self, key):
        value = self._data.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
            self._data.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self._data[key] = value
        if len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class Saturator:
    """Saturate terms in fresh e-graphs under fixed rules and budget, remembering answers.

    Schedule: the GREEN rules (identities; they only shrink a term) first run on their own,
    then the cheapest result is saturated with all the rules. Run together from the start,
    identities let 0 and 1 absorb everything (x = x*1, 0 = x*0, and factoring then makes
    new sums without end), which spends any budget on nothing. Each phase gets the budget.

    The memo is keyed by term (or pair), so a repeated question is answered without saturating.
    """

    def __init__(self, rules: Iterable[Rule] = ALL_RULES, budget: Budget = Budget(), memo_size: int = 10_000):
        self.rules = tuple(rules)
        self.budget = budget
        self.memo = LRU(memo_size)
        identities = tuple(rule for rule in self.rules if rule.colour is Colour.GREEN)
        self._first = identities if identities and len(identities) < len(self.rules) else ()

    def simplify(self, term: Term | str) -> Simplified:
        """The cheapest term found equal to `term`, with how the search went."""
        term = _as_term(term)
        key = ("simplify", term)
        cached = self.memo.get(key)
        if cached is None:
            egraph, (root,), reports = self._run((term,))
            cached = Simplified(extract(egraph, root), _combine(reports))
            self.memo.put(key, cached)
        return cached

    def canonical(self, term: Term | str) -> Term:
        """The cheapest term found equal to `term`."""
        return self.simplify(term).term

    def verify(self, a: Term | str, b: Term | str) -> Verdict:
        """Saturate both terms together until they meet or the budget runs out."""
        a, b = _as_term(a), _as_term(b)
        key = ("verify", a, b) if a <= b else ("verify", b, a)
        cached = self.memo.get(key)
        if cached is None:
            egraph, (class_a, class_b), reports = self._run((a, b), until_equal=True)
            cached = Verdict(egraph.find(class_a) == egraph.find(class_b), _combine(reports))
            self.memo.put(key, cached)
        return cached

    def prove_equal(self, a: Term | str, b: Term | str) -> bool:
        return self.verify(a, b).equal

    def _run(self, terms: tuple[Term, ...], until_equal: bool = False):
        """Run the schedule; each phase starts a fresh e-graph from the cheapest terms of the last.

        Returns the last e-graph, the terms' classes in it, and a report per phase.
        """
        phases = self._schedule(set().union(*map(operators, terms)))
        reports = []
        for number, rules in enumerate(phases):
            if number:
                terms = tuple(extract(egraph, root) for root in roots)
            egraph = EGraph("saturator")
            roots = [egraph.add_term(term) for term in terms]

            def met(egraph=egraph, roots=roots) -> bool:
                return len({egraph.find(root) for root in roots}) == 1

            reports.append(saturate(egraph, rules, self.budget, goal=met if until_equal else None))
        return egraph, roots, reports

    def _schedule(self, present: set[str]) -> tuple[tuple[Rule, ...], ...]:
        """Rule sets to run in turn; the identity phase only if one of its rules can match at all."""
        if self._first and can_fire(self._first, present):
            return (self._first, self.rules)
        return (self.rules,)


def _combine(reports: list[SaturationReport]) -> SaturationReport:
    """One report for a schedule of phases: the last phase's outcome, the totals of the work."""
    last = reports[-1]
    return SaturationReport(
        last.stop_reason,
        sum(report.iterations for report in reports),
        last.nodes,
        sum(report.matches for report in reports),
        sum(report.elapsed for report in reports),
    )


def _as_term(term: Term | str) -> Term:
    return parse(term) if isinstance(term, str) else term
