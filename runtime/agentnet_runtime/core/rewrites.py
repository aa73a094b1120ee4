"""Rewrite rules as data, and the three families.

A rule is text: `name: lhs => rhs`, with `?x` pattern variables, e.g.
`add-assoc: (?a + ?b) + ?c => ?a + (?b + ?c)`. `parse_rules` reads many (one a
line, `#` comments, `<=>` for both directions), so users can add their own.

Matching is compiled once per rule into nested loops over a register list:
register 0 holds the matched class, each sub-pattern gets a register for its
class, and a repeated variable becomes an equality check. A match is the tuple
(class, class of each variable in first-occurrence order).
"""

from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from typing import Callable, Iterable

from .colour import Colour
from .terms import Term, is_pattern_var, parse, variables

# by_op: op -> [(class, child classes)]; by_class: class -> op -> [child classes]
MatchIndex = tuple[dict[str, list[tuple[str, tuple]]], dict[str, dict[str, list[tuple]]]]
Match = tuple[str, ...]
_NO_NODES: dict = {}  # a class with no e-nodes yet (its nodes are still in flight)


class RuleError(ValueError):
    """A rule that cannot be used as written."""


@dataclass(frozen=True)
class Rule:
    name: str
    lhs: Term
    rhs: Term
    colour: Colour = Colour.GREEN

    def __post_init__(self):
        if is_pattern_var(self.lhs):
            raise RuleError(f"rule {self.name}: the left side must not be a bare variable ({self.lhs})")
        unbound = ", ".join(sorted(variables(self.rhs) - variables(self.lhs)))
        if unbound:
            raise RuleError(f"rule {self.name}: right side uses variables the left side does not bind: {unbound}")
        object.__setattr__(self, "colour", Colour(self.colour))

    def __str__(self) -> str:
        return f"{self.name}: {self.lhs} => {self.rhs}"

    @cached_property
    def _compiled(self) -> tuple[Callable, Callable]:
        """(search, build), compiled on first use."""
        slots: dict[str, int] = {}  # variable -> position in a match tuple
        search = _compile_search(self.lhs, slots)
        return search, _compile_build(self.rhs, slots)

    def search(self, index: MatchIndex, limit: int | None = None, tops: list | None = None) -> list[Match]:
        """Matches of the left side in a match index (see saturate.match_index).

        `tops` restricts the e-nodes tried as the top of the pattern (default: every node
        with the left side's operator); the search stops after the top that reaches `limit`.
        """
        return self._compiled[0](index, limit, tops)

    @cached_property
    def needs(self) -> frozenset[str]:
        """Operators that must be in the e-graph for the left side to match."""
        return frozenset(_constants(self.lhs))

    @cached_property
    def depth(self) -> int:
        """Height of the left side counting constant leaves (how far below the top a match looks)."""
        return _depth(self.lhs)

    def apply(self, egraph, matches: list[Match], node_limit: int | None = None) -> int:
        """Add the right side for each match and union it with the matched class.

        Stops early once the e-graph holds more than `node_limit` nodes; returns the matches applied.
        """
        # The e-graph's unchecked fast paths: match classes are known ids by construction.
        build, add, union, mask = self._compiled[1], egraph._add, egraph._union, self.colour.bit
        nodes = egraph._nodes
        for applied, match in enumerate(matches):
            if node_limit is not None and len(nodes) > node_limit:
                return applied
            union(match[0], build(add, mask, match))
        return len(matches)


# --- compiling the left side -------------------------------------------------------


def _compile_search(lhs: Term, slots: dict[str, int]) -> Callable[[MatchIndex], list[Match]]:
    """Turn a pattern into a search function (see module docstring)."""
    steps: list[tuple] = []
    first_register: dict[str, int] = {}
    registers = [1]  # next free register; 0 is the matched class

    def fresh(count: int) -> list[int]:
        start = registers[0]
        registers[0] += count
        return list(range(start, start + count))

    def plan(pattern: Term, register: int) -> None:
        # Steps in execution (pre-)order; each step runs the rest of the list for each way it matches.
        if is_pattern_var(pattern):
            if pattern.op in first_register:
                steps.append(("same", register, first_register[pattern.op]))
            else:
                first_register[pattern.op] = register
                slots[pattern.op] = len(slots) + 1
        elif pattern.args:
            kids = fresh(len(pattern.args))
            steps.append(("node", register, pattern.op, kids))
            for arg, kid in zip(pattern.args, kids):
                plan(arg, kid)
        else:
            steps.append(("leaf", register, pattern.op))

    root_kids = fresh(len(lhs.args))
    for arg, kid in zip(lhs.args, root_kids):
        plan(arg, kid)
    reported = [0, *first_register.values()]  # dict order == first-occurrence order == slots
    report = itemgetter(*reported) if len(reported) > 1 else (lambda registers: (registers[0],))

    def emit(R, by_class, out):
        out.append(report(R))

    cont = emit
    for step in reversed(steps):
        cont = _STEP_BUILDERS[step[0]](*step[1:], cont)

    op, arity, size = lhs.op, len(lhs.args), registers[0]
    needed_ops = _constants(lhs)

    def search(index: MatchIndex, limit: int | None, tops: list | None) -> list[Match]:
        by_op, by_class = index
        out: list[Match] = []
        if not by_op.keys() >= needed_ops:
            return out
        R = [None] * size
        for cls, kids in by_op.get(op, ()) if tops is None else tops:
            if len(kids) == arity:
                R[0] = cls
                R[1 : arity + 1] = kids
                cont(R, by_class, out)
                if limit is not None and len(out) >= limit:  # checked per top: the limit is soft
                    break
        return out

    return search


def _constants(pattern: Term) -> set[str]:
    """Operators a pattern needs present in the e-graph (everything but its variables)."""
    if is_pattern_var(pattern):
        return set()
    return {pattern.op}.union(*(_constants(arg) for arg in pattern.args))


def _depth(pattern: Term) -> int:
    if is_pattern_var(pattern):
        return 0
    return 1 + max((_depth(arg) for arg in pattern.args), default=0)


def _node_step(register, op, kids, cont):
    arity = len(kids)
    if arity == 2:
        left, right = kids

        def node2(R, by_class, out):
            for children in by_class.get(R[register], _NO_NODES).get(op, ()):
                if len(children) == 2:
                    R[left], R[right] = children
                    cont(R, by_class, out)

        return node2
    low, high = kids[0], kids[-1] + 1

    def node(R, by_class, out):
        for children in by_class.get(R[register], _NO_NODES).get(op, ()):
            if len(children) == arity:
                R[low:high] = children
                cont(R, by_class, out)

    return node


def _leaf_step(register, op, cont):
    def leaf(R, by_class, out):
        if op in by_class.get(R[register], _NO_NODES):
            cont(R, by_class, out)

    return leaf


def _same_step(register, earlier, cont):
    def same(R, by_class, out):
        if R[register] == R[earlier]:
            cont(R, by_class, out)

    return same


_STEP_BUILDERS = {"node": _node_step, "leaf": _leaf_step, "same": _same_step}


# --- compiling the right side ------------------------------------------------------


def _compile_build(rhs: Term, slots: dict[str, int]) -> Callable:
    """build(add, mask, match) -> class id of the right side instantiated for a match."""
    if is_pattern_var(rhs):
        slot = slots[rhs.op]
        return lambda add, mask, match: match[slot]
    op = rhs.op
    # A variable argument is read straight from the match (a slot number); others are built.
    parts = [slots[arg.op] if is_pattern_var(arg) else _compile_build(arg, slots) for arg in rhs.args]
    if len(parts) == 2:
        left, right = parts
        if isinstance(left, int) and isinstance(right, int):
            return lambda add, mask, match: add(op, (match[left], match[right]), mask)
        if isinstance(left, int):
            return lambda add, mask, match: add(op, (match[left], right(add, mask, match)), mask)
        if isinstance(right, int):
            return lambda add, mask, match: add(op, (left(add, mask, match), match[right]), mask)
        return lambda add, mask, match: add(op, (left(add, mask, match), right(add, mask, match)), mask)
    return lambda add, mask, match: add(
        op, tuple(match[part] if isinstance(part, int) else part(add, mask, match) for part in parts), mask
    )


# --- rules as text -------------------------------------------------------------------


def parse_rule(text: str, colour: Colour = Colour.GREEN, name: str | None = None) -> Rule:
    """Parse `[name:] lhs => rhs`; the name defaults to the rule text."""
    rules = _parse_line(text, colour, name)
    if len(rules) != 1:
        raise RuleError(f"expected one rule with '=>', got {text!r}")
    return rules[0]


def parse_rules(text: str, colour: Colour = Colour.GREEN) -> tuple[Rule, ...]:
    """Parse rules one a line; blank lines and `#` comments are skipped; `<=>` gives both directions."""
    rules: list[Rule] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rules.extend(_parse_line(line, colour, None))
    return tuple(rules)


def _parse_line(text: str, colour: Colour, name: str | None) -> list[Rule]:
    body = text.strip()
    head, colon, rest = body.partition(":")
    if colon and "=" not in head:
        name, body = name or head.strip(), rest.strip()
    both = "<=>" in body
    lhs_text, arrow, rhs_text = body.partition("<=>" if both else "=>")
    if not arrow:
        raise RuleError(f"a rule needs '=>' (or '<=>'): {text!r}")
    lhs, rhs = parse(lhs_text, patterns=True), parse(rhs_text, patterns=True)
    name = name or f"{lhs} => {rhs}"
    rules = [Rule(name, lhs, rhs, colour)]
    if both:
        rules.append(Rule(f"{name} (reverse)", rhs, lhs, colour))
    return rules


def can_fire(rules: Iterable[Rule], present: set[str]) -> bool:
    """Could any rule match an e-graph holding only these operators? (If none can, none ever will.)"""
    return any(rule.needs <= present for rule in rules)


# --- the three families ---------------------------------------------------------------

RED_RULES = parse_rules(
    """
    add-comm:  ?a + ?b => ?b + ?a
    mul-comm:  ?a * ?b => ?b * ?a
    add-assoc: (?a + ?b) + ?c => ?a + (?b + ?c)
    mul-assoc: (?a * ?b) * ?c => ?a * (?b * ?c)
    """,
    Colour.RED,
)

BLUE_RULES = parse_rules(
    """
    distribute: ?a * (?b + ?c) => ?a * ?b + ?a * ?c
    factor:     ?a * ?b + ?a * ?c => ?a * (?b + ?c)
    """,
    Colour.BLUE,
)

GREEN_RULES = parse_rules(
    """
    add-zero: ?a + 0 => ?a
    zero-add: 0 + ?a => ?a
    mul-one:  ?a * 1 => ?a
    one-mul:  1 * ?a => ?a
    mul-zero: ?a * 0 => 0
    zero-mul: 0 * ?a => 0
    """,
    Colour.GREEN,
)

ALL_RULES = RED_RULES + BLUE_RULES + GREEN_RULES
_FAMILIES = {Colour.RED: RED_RULES, Colour.BLUE: BLUE_RULES, Colour.GREEN: GREEN_RULES}


def rules_for(colour: Colour | str) -> tuple[Rule, ...]:
    """The rewrite family of a colour."""
    return _FAMILIES[Colour(colour)]
