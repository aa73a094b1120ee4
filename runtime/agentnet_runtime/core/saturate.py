"""Equality saturation under budgets, and a memoised front end (extraction is in extract.py).

Each iteration searches every rule against one snapshot of the e-graph, then
applies all matches and rebuilds (egg's schedule), so the result does not
depend on rule order. Search is semi-naive (as in egglog): after the first
full search, a rule only starts from e-nodes that a new match must pass
through, found from what the e-graph says changed since the last search (new
shapes and merged classes). A `Saturation` keeps that place across runs, so an
agent's rewrite pass after a delta costs what the delta changed, not the whole
e-graph. It stops when an iteration changes nothing (saturated), when an
optional goal holds, or when a budget runs out. A `record` hook sees every rule's
matches before they are applied (explain.py turns them into proof paths).
"""

import enum
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Collection, Iterable

from mypy_extensions import mypyc_attr

from .colour import Colour
from .counterexample import Counterexample, refute
from .egraph import Changes, EGraph, NodeId
from .explain import Explanation, ProofTooLong, Recorder
from .extract import extract
from .rewrites import ALL_RULES, Match, Rule, Top, can_fire
from .terms import Term, operators, parse


# Values that leave the engine (pickled to and from a stream's worker process) stay plain
# Python classes when mypyc compiles this module: its frozen dataclasses do not unpickle.
@mypyc_attr(native_class=False)
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
    REFUTED = "refuted"  # a counterexample settled the question before any saturation (Saturator.verify)


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class SaturationReport:
    stop_reason: StopReason
    iterations: int
    nodes: int
    matches: int
    elapsed: float  # seconds
    rules: tuple[str, ...] = ()  # names of the rules whose rewrites changed the e-graph, first use first

    @property
    def saturated(self) -> bool:
        return self.stop_reason is StopReason.SATURATED


# Called with each rule's matches just before they are applied (explain.Recorder keeps them as proof).
Record = Callable[[EGraph, Rule, list[Match]], None]


def saturate(
    egraph: EGraph,
    rules: Iterable[Rule] = ALL_RULES,
    budget: Budget = Budget(),
    *,
    goal: Callable[[], bool] | None = None,
    record: Record | None = None,
) -> SaturationReport:
    """Apply rules until nothing changes, `goal()` holds, or the budget runs out (searching everywhere first)."""
    saturation = Saturation(egraph, rules, budget, record)
    try:
        return saturation.run(goal=goal)
    finally:
        saturation.close()


SCHEDULES = 4_096  # schedules a Saturator remembers (by the operators of a question)
APPLIED_CACHE = 200_000  # matches a Saturation remembers as applied before it forgets them all


class Saturation:
    """Saturation of one e-graph that keeps its place between runs.

    The first run searches everywhere; each later run (and each iteration) searches only
    around what changed since the previous search, whoever changed it (its own rewrites, or
    deltas joined in between); what a pattern tests only by value (numeral leaves, conditions)
    only around the classes that gained a value, which are few. Matches found but not applied
    when a run ran out of budget are applied first by the next. close() when done (it stops
    recording the e-graph's changes).
    """

    def __init__(
        self, egraph: EGraph, rules: Iterable[Rule] = ALL_RULES, budget: Budget = Budget(), record: Record | None = None
    ):
        self.egraph = egraph
        self._record = record
        self.rules = tuple(rules)
        self.budget = budget
        self._changes: Changes | None = egraph.watch()  # None while skipping (see skip)
        self._searched = False  # has a full search run yet?
        self._evictions = egraph.evictions  # an eviction rebuilt the e-graph: search everywhere again
        self._present: set[str] = set()  # operators of the e-graph's e-nodes (known from its changes)
        self._groups, self._conditioned, self._matchers, self._masks = _plan(self.rules)
        self._complete = [True] * len(self.rules)  # did the rule's last search find all its matches?
        self._unapplied: list[tuple[int, list[Match]]] = []  # (rule number, its matches)
        # Matches applied already, per rule. Semi-naive search still finds some again (an e-node
        # re-keyed by a merge is searched anew); skipping them saves re-building what exists.
        # Only a cache: it is dropped when it grows large, and forgetting costs only the rework.
        self._applied: dict[int, set[Match]] = {}  # by rule number, made when the rule first matches
        self._applied_count = 0
        self._valued: dict[NodeId, str] = {}  # the number analysis at the last search: class root -> numeral
        self._used: dict[str, None] = {}  # rules that changed the e-graph in this run, in first-use order

    def close(self) -> None:
        if self._changes is not None:
            self.egraph.unwatch(self._changes)
            self._changes = None

    def skip(self) -> None:
        """Leave the search to another replica with these rules that searches all of this one and whose
        derivations come here: an agent whose colour another agent of its process searches for (agent/host.py).
        Stops watching the e-graph (nor applies what an earlier run left unapplied), so joins pay nothing for
        a search this replica does not do; a later run, should it search again, searches everywhere once."""
        self.close()
        self._searched, self._unapplied = False, []

    def run(self, budget: Budget | None = None, *, goal: Callable[[], bool] | None = None) -> SaturationReport:
        """Iterate until saturated, `goal()` holds, or the budget (default: the one given at creation) runs out."""
        budget = budget or self.budget
        if self._changes is None:  # skipped until now: watch again (and search everywhere first)
            self._changes = self.egraph.watch()
        start = time.perf_counter()
        deadline = start + budget.seconds
        iterations = matches = 0
        self._used = {}
        stop: StopReason | None = StopReason.GOAL if goal is not None and goal() else None
        while stop is None:
            if iterations >= budget.iterations:
                stop = StopReason.ITERATIONS
                break
            iterations += 1
            stop, applied = self._iterate(budget, deadline, goal)
            matches += applied
        elapsed = time.perf_counter() - start
        return SaturationReport(stop, iterations, len(self.egraph), matches, elapsed, tuple(self._used))

    def _iterate(
        self, budget: Budget, deadline: float, goal: Callable[[], bool] | None
    ) -> tuple[StopReason | None, int]:
        """One iteration (search, apply, rebuild): why to stop (None to go on), and the matches applied."""
        egraph = self.egraph
        version = egraph.version
        if egraph.evictions != self._evictions:  # its roots and matches name what may be gone
            self._evictions = egraph.evictions
            self._searched, self._unapplied = False, []
            self._applied, self._applied_count = {}, 0
        found = self._unapplied + self._new_matches(budget.matches)
        self._unapplied = []
        matches = 0
        for position, (number, rule_matches) in enumerate(found):
            before = egraph.version
            if self._record is not None:
                self._record(egraph, self.rules[number], rule_matches)
            _, apply, _ = self._matchers[number]  # (Rule.apply, inline)
            applied = apply(rule_matches, egraph, self._masks[number], budget.nodes)
            matches += applied
            if egraph.version != before:
                self._used[self.rules[number].name] = None
            if len(egraph) > budget.nodes:
                stop = StopReason.NODES
            elif time.perf_counter() > deadline:
                stop = StopReason.TIME
            else:
                continue
            # Keep the rest for the next run: no search will find them again.
            self._unapplied = [(number, rule_matches[applied:])] if applied < len(rule_matches) else []
            self._unapplied += found[position + 1 :]
            egraph.rebuild()
            return stop, matches
        egraph.rebuild()
        if goal is not None and goal():
            return StopReason.GOAL, matches
        return (StopReason.SATURATED if egraph.version == version else None), matches

    def _new_matches(self, limit: int) -> list[tuple[int, list[Match]]]:
        """Every rule's matches not found by an earlier search (all of them, the first time)."""
        egraph = self.egraph
        watcher = self._changes
        assert watcher is not None  # (run watches again)
        shapes, merged = egraph.changes(watcher)
        everywhere = Everywhere(egraph)
        values = egraph._numbers
        by_value: Frontier | None = None  # where classes gained a value
        if self._searched:
            frontier: Everywhere | Frontier = Frontier(egraph, shapes, merged)
            valued = self._valued
            gained = {root: None for root, numeral in values.items() if valued.get(root) != numeral}
            if gained:
                by_value = Frontier(egraph, {}, gained)
            self._present.update([shape[0] for shape in shapes])
        else:
            frontier = everywhere
            self._present = {shape[0] for shapes in egraph.class_index().values() for shape in shapes}
        self._searched = True
        self._valued = dict(values)
        present, any_value = self._present, bool(values)
        classes, hashcons = egraph.class_index(), egraph._hashcons
        found: list[tuple[int, list[Match]] | None] = [None] * len(self.rules)
        for (op, shape_depth, depth), numbers in self._groups:  # rules with the same top and depths share candidates
            if op not in present:
                continue  # no e-node has the operator: nothing can match (say, ^ in a sum of products)
            if shape_depth == depth or frontier is everywhere:
                tops = frontier.tops(op, depth)
            else:
                # Below its shape the pattern tests values only: a new match has a new shape within
                # the shape, or a class in reach whose value is new.
                tops = frontier.tops(op, shape_depth)
                if by_value is not None:
                    tops = _union(tops, by_value.tops(op, depth))
            for number in numbers:
                conditioned = self._conditioned[number]
                if conditioned and not any_value:
                    continue  # a condition needs a class with a value, and none has one
                if not self._complete[number]:  # its last search stopped at the limit: look everywhere
                    rule_tops = everywhere.tops(op, depth)
                elif tops:
                    rule_tops = tops
                else:
                    continue
                search, _, leaves = self._matchers[number]
                if all(leaf in hashcons for leaf in leaves):  # (Rule.search, inline: a call per rule was 5 %)
                    results = search(classes, values, rule_tops, limit)
                    self._complete[number] = len(results) < limit
                    if conditioned and results:  # the search found classes with values: test them
                        rule = self.rules[number]
                        results = [match for match in results if rule._holds(egraph, match)]
                else:
                    results = []  # a constant it needs (say 0) is nowhere in the e-graph
                    self._complete[number] = True
                if results:
                    seen = self._applied.get(number)
                    if seen is None:
                        seen = self._applied[number] = set()
                    known = len(seen)
                    fresh: list[Match] = []
                    for match in results:  # (one hash per match: a test, then an add, was two)
                        seen.add(match)
                        if len(seen) != known:
                            known += 1
                            fresh.append(match)
                    if fresh:
                        self._applied_count += len(fresh)
                        found[number] = (number, fresh)
        if self._applied_count > APPLIED_CACHE:
            self._applied = {}
            self._applied_count = 0
        return [rule_matches for rule_matches in found if rule_matches is not None]  # in rule order


Groups = list[tuple[tuple[str, int, int], list[int]]]
Plan = tuple[Groups, list[bool], list[tuple[Callable, Callable, tuple[tuple[str], ...]]], list[int]]
_PLANS: dict[int, tuple[tuple[Rule, ...], Plan]] = {}  # id of a rules tuple -> (it, its plan)


def _plan(rules: tuple[Rule, ...]) -> Plan:
    """Rule numbers grouped by (top operator, shape depth, depth), which share search candidates;
    whether each rule has conditions; its compiled search and apply and the constant leaves it
    needs (Rule.matcher); its colour bit. Made once per tuple of rules: a Saturator makes a Saturation per phase of every term, and reading
    the rules' properties again was 3 % of saturating one."""
    known = _PLANS.get(id(rules))
    if known is not None and known[0] is rules:
        return known[1]
    groups: dict[tuple[str, int, int], list[int]] = {}
    for number, rule in enumerate(rules):
        groups.setdefault((rule.lhs.op, rule.shape_depth, rule.depth), []).append(number)
    plan = (
        list(groups.items()),
        [bool(rule.conditions) for rule in rules],
        [rule.matcher for rule in rules],
        [rule.colour.bit for rule in rules],
    )
    if len(_PLANS) >= 64:  # rule sets are few (the families, a Saturator's phases); a bound all the same
        _PLANS.clear()
    _PLANS[id(rules)] = (rules, plan)
    return plan


def _union(first: Collection[Top], second: Collection[Top]) -> Collection[Top]:
    """The tops of both, each once, in order."""
    if not second:
        return first
    if not first:
        return second
    return list(dict.fromkeys([*first, *second]))


class Everywhere:
    """The first search's frontier: every e-node."""

    def __init__(self, egraph: EGraph):
        self.egraph = egraph
        self._tops: dict[str, list[Top]] = {}

    def tops(self, op: str, depth: int) -> Collection[Top]:
        if op not in self._tops:
            classes, numbers = self.egraph.class_index(), self.egraph._numbers
            self._tops[op] = [
                (shape, root)
                for root, shapes in classes.items()
                if root not in numbers  # a class with a value is its numeral to a search (see rewrites)
                for shape in shapes
                if shape[0] == op
            ]
        return self._tops[op]


class Frontier:
    """Where a search must start to find every match not found before, from what changed.

    Call a class changed if it has a new shape or grew by a merge. A new match uses a new
    shape or passes through a changed class: it starts at a new shape, or one of its top's
    children is a changed class or within depth - 2 parent steps above one. (A merge of the
    top's own class alone gives nothing new: that union was made before.) Everything is kept
    in insertion order, so the matches, and the ids they make, are the same on every run.
    """

    def __init__(self, egraph: EGraph, shapes: dict[tuple, NodeId], merged: dict[NodeId, None]):
        self.egraph = egraph
        self._new = self._by_op(shapes.items())
        self._levels = [merged | dict.fromkeys(shapes.values())]  # level k: within k parent steps
        self._above: list[dict[str, dict[tuple, NodeId]]] = []  # level k's parents, by op
        self._tops: dict[tuple[str, int], Collection[Top]] = {}

    def tops(self, op: str, depth: int) -> Collection[Top]:
        """(shape, class) of the e-nodes with this operator a pattern of this depth must start from."""
        key = (op, depth)
        if key not in self._tops:
            new = self._new.get(op, {})
            above = self._parents(depth - 2).get(op) if depth >= 2 else None
            if above and new:
                tops = dict(new)
                for shape, cls in above.items():
                    tops.setdefault(shape, cls)
            else:
                tops = above or new
            numbers = self.egraph._numbers  # a class with a value is its numeral to a search (see rewrites)
            self._tops[key] = [(shape, cls) for shape, cls in tops.items() if cls not in numbers] if numbers else tops.items()
        return self._tops[key]

    def _parents(self, level: int) -> dict[str, dict[tuple, NodeId]]:
        """Shapes with a child in a class of the level (within `level` parent steps of a change), by op."""
        uses, shape_of, parent, find = self.egraph._uses, self.egraph._shape, self.egraph._parent, self.egraph._find
        while len(self._above) <= level:
            if len(self._levels) == len(self._above):  # the next level: the last one's classes and their parents'
                last = self._above[-1]
                self._levels.append(self._levels[-1] | {cls: None for shapes in last.values() for cls in shapes.values()})
            above: dict[str, dict[tuple, NodeId]] = {}  # (as _by_op, inline: pairs first cost 2-3 % of saturating)
            for cls in self._levels[len(self._above)]:
                for user in uses.get(cls, ()):
                    shape = shape_of.get(user)
                    if shape is None:  # merged into a congruent twin since, which is a user too
                        continue
                    up = parent[user]
                    root = up if parent[up] == up else find(user)
                    by_op = above.get(shape[0])
                    if by_op is None:
                        above[shape[0]] = {shape: root}
                    elif shape not in by_op:
                        by_op[shape] = root
            self._above.append(above)
        return self._above[level]

    @staticmethod
    def _by_op(pairs) -> dict[str, dict[tuple, NodeId]]:
        grouped: dict[str, dict[tuple, NodeId]] = {}
        for shape, cls in pairs:
            if shape[0] in grouped:
                grouped[shape[0]].setdefault(shape, cls)
            else:
                grouped[shape[0]] = {shape: cls}
        return grouped


# --- memoised front end ---------------------------------------------------------------------


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class Simplified:
    term: Term  # cheapest equivalent found
    report: SaturationReport


EXPLAIN_TIME_FACTOR = 10  # explain's time limit against verify's (see Saturator.explain)
NOT_DERIVED = "not derived"  # the memo's entry for an explanation that does not exist

VERDICTS: dict[bool | None, str] = {True: "equal", False: "unequal", None: "unknown"}  # Verdict.equal in words


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class Verdict:
    """Three honest answers: equal (derived), unequal (refuted by a counterexample), unknown (neither).

    `equal` is True, False or None (unknown: not derived within the budget, or saturated without
    deriving it; never False for that). `report.rules` names the rules that rewrote the e-graph
    until both sides met: what the derivation used (and perhaps more).
    """

    equal: bool | None
    report: SaturationReport
    counterexample: Counterexample | None = None

    @property
    def verdict(self) -> str:
        return VERDICTS[self.equal]


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
        self._schedules: dict[frozenset[str], tuple[tuple[Rule, ...], ...]] = {}

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
        """Equal if saturating both terms together makes them meet within the budget; unequal if a
        counterexample refutes them (tried first: it is cheap); otherwise unknown."""
        a, b = _as_term(a), _as_term(b)
        key = ("verify", a, b) if a <= b else ("verify", b, a)
        cached = self.memo.get(key)
        if cached is None:
            counterexample = refute(a, b)
            if counterexample is not None:
                cached = Verdict(False, SaturationReport(StopReason.REFUTED, 0, 0, 0, 0.0), counterexample)
            else:
                egraph, (class_a, class_b), reports = self._run((a, b), until_equal=True)
                cached = Verdict(True if egraph.find(class_a) == egraph.find(class_b) else None, _combine(reports))
            self.memo.put(key, cached)
        return cached

    def explain(self, a: Term | str, b: Term | str) -> Explanation | None:
        """The proof path from `a` to `b` (explain.py) if saturating them together derives them equal
        (verify says equal), else None. Runs the saturation again, keeping every rule instance applied,
        with the same limits but EXPLAIN_TIME_FACTOR times the time (keeping them costs time), so what
        verify derived is derived again; memoised. None too when the path would be longer than
        explain.MAX_STEPS. Asks verify first: the proof graph folds constants wherever it can, so where
        verify's search stopped at its node limit it can join what the e-graph had not (seed 37 of the
        explanation property test: (x + 2) ^ 3 against its expansion)."""
        a, b = _as_term(a), _as_term(b)
        key = ("explain", a, b)
        cached = self.memo.get(key)
        if cached is None and self.verify(a, b).equal is not True:
            cached = NOT_DERIVED
            self.memo.put(key, cached)
        if cached is None:
            recorder = Recorder()
            ends = recorder.proofs.add_term(a), recorder.proofs.add_term(b)
            budget = replace(self.budget, seconds=self.budget.seconds * EXPLAIN_TIME_FACTOR)
            self._run((a, b), until_equal=True, record=recorder, budget=budget)
            try:
                cached = recorder.proofs.explain(*ends) or NOT_DERIVED
            except ProofTooLong:
                cached = NOT_DERIVED
            self.memo.put(key, cached)
        return cached if isinstance(cached, Explanation) else None

    def prove_equal(self, a: Term | str, b: Term | str) -> bool:
        """Derived equal (not: not refuted)."""
        return self.verify(a, b).equal is True

    def _run(
        self,
        terms: tuple[Term, ...],
        until_equal: bool = False,
        record: Record | None = None,
        budget: Budget | None = None,
    ) -> tuple[EGraph, list[NodeId], list[SaturationReport]]:
        """Run the schedule; each phase starts a fresh e-graph from the cheapest terms of the last.

        Returns the last e-graph, the terms' classes in it, and a report per phase.
        """
        phases = self._schedule(set().union(*map(operators, terms)))
        reports: list[SaturationReport] = []
        egraph: EGraph
        roots: list[NodeId] = []
        version = -1
        for number, rules in enumerate(phases):
            # A phase that changed nothing leaves the e-graph of the terms alone, which is what
            # the next would start from (each class one e-node, extracted as it is): go on in it.
            if not number or egraph.version != version:
                if number:
                    terms = tuple(extract(egraph, root) for root in roots)
                egraph = EGraph("saturator")
                roots = [egraph.add_term(term) for term in terms]
                version = egraph.version

            def met(egraph=egraph, roots=roots) -> bool:
                return len({egraph.find(root) for root in roots}) == 1

            reports.append(saturate(egraph, rules, budget or self.budget, goal=met if until_equal else None, record=record))
        return egraph, roots, reports

    def _schedule(self, present: set[str]) -> tuple[tuple[Rule, ...], ...]:
        """Rule sets to run in turn; the identity phase only if one of its rules can match at all.
        Memoised by the operators present (few sets recur; deciding was 4 % of saturating a small term)."""
        key = frozenset(present)
        phases = self._schedules.get(key)
        if phases is None:
            phases = (self._first, self.rules) if self._first and can_fire(self._first, present) else (self.rules,)
            if len(self._schedules) >= SCHEDULES:
                self._schedules.clear()
            self._schedules[key] = phases
        return phases


def _combine(reports: list[SaturationReport]) -> SaturationReport:
    """One report for a schedule of phases: the last phase's outcome, the totals of the work."""
    last = reports[-1]
    return SaturationReport(
        last.stop_reason,
        sum(report.iterations for report in reports),
        last.nodes,
        sum(report.matches for report in reports),
        sum(report.elapsed for report in reports),
        tuple(dict.fromkeys(rule for report in reports for rule in report.rules)),
    )


def _as_term(term: Term | str) -> Term:
    return parse(term) if isinstance(term, str) else term
