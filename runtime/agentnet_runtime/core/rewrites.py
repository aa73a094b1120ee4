"""Rewrite rules as data, and the three families.

A rule is text: `name: lhs => rhs`, with `?x` pattern variables, e.g.
`add-assoc: (?a + ?b) + ?c => ?a + (?b + ?c)`. `parse_rules` reads many (one a
line, `#` comments, `<=>` for both directions), so users can add their own.
A rule may end in conditions on what the number analysis knows of a variable's
class (see CONDITIONS): `div-by-number: ?a / ?b => ?a * (1 / ?b) if nonzero(?b)`.
Folding rules (FOLD_RULES) put the value of an operation on numbers in its class.

A rule is compiled once into Python source (see _compile): its search is nested
loops over registers (r0 the matched class, one register per child class of a
matched e-node, a repeated variable an equality check), its apply one expression
per match. A match is the tuple (class, class of each variable in first-occurrence
order). Search reads the e-graph's own index of classes (class root -> its
shapes (op, *child roots)), which the e-graph keeps up to date, so nothing is
rebuilt per search.
"""

import itertools
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Callable, Iterable

from . import numbers
from .colour import Colour
from .terms import INFIX, Term, is_pattern_var, parse, variables

Top = tuple[tuple, str]  # (shape, class root) of an e-node a search starts from
Match = tuple[str, ...]
_NO_NODES: dict = {}  # a class with no e-nodes yet (its nodes are still in flight)


class RuleError(ValueError):
    """A rule that cannot be used as written."""


# What a rule may require of a variable's class, from the number analysis (numbers.py): the
# class's exact value, when it has one, must pass the test. A class with no value fails them all.
CONDITIONS: dict[str, Callable[[Fraction], bool]] = {
    "number": lambda value: True,
    "nonzero": lambda value: value != 0,
    "positive-integer": lambda value: value.denominator == 1 and 1 <= value <= numbers.MAX_EXPONENT,
}
Condition = tuple[str, str]  # (name in CONDITIONS, pattern variable)


def class_value(egraph, cls: str) -> Fraction | None:
    """The exact value of a class (any id in it), if the number analysis knows exactly one."""
    numeral = egraph._numbers.get(egraph._find(cls))
    return None if numeral is None or numeral == numbers.CONFLICT else numbers.value(numeral)


@dataclass(frozen=True)
class Rule:
    name: str
    lhs: Term
    rhs: Term
    colour: Colour = Colour.GREEN
    conditions: tuple[Condition, ...] = ()

    def __post_init__(self):
        if is_pattern_var(self.lhs):
            raise RuleError(f"rule {self.name}: the left side must not be a bare variable ({self.lhs})")
        unbound = ", ".join(sorted(variables(self.rhs) - variables(self.lhs)))
        if unbound:
            raise RuleError(f"rule {self.name}: right side uses variables the left side does not bind: {unbound}")
        for condition, variable in self.conditions:
            if condition not in CONDITIONS:
                raise RuleError(f"rule {self.name}: unknown condition {condition!r} (known: {', '.join(CONDITIONS)})")
            if variable not in variables(self.lhs):
                raise RuleError(f"rule {self.name}: condition on {variable}, which the left side does not bind")
        object.__setattr__(self, "colour", Colour(self.colour))
        object.__setattr__(self, "conditions", tuple(self.conditions))

    def __str__(self) -> str:
        return f"{self.name}: {self.lhs} => {self.rhs}{self._conditions_text}"

    @property
    def _conditions_text(self) -> str:
        if not self.conditions:
            return ""
        return " if " + ", ".join(f"{condition}({variable})" for condition, variable in self.conditions)

    @cached_property
    def _compiled(self) -> tuple[Callable, Callable, str, list[str]]:
        """(search, apply, their Python source, variables in match order), compiled on first use (see _compile)."""
        return _compile(self.lhs, self.rhs, self.name, frozenset(variable for _, variable in self.conditions))

    @cached_property
    def _checks(self) -> tuple[tuple[int, Callable[[Fraction], bool]], ...]:
        """(position in a match, test) per condition: the search already skips classes with no numeral,
        these check the value (and leave out a class of two different numerals)."""
        order = self._compiled[3]
        return tuple((1 + order.index(variable), CONDITIONS[condition]) for condition, variable in self.conditions)

    def _holds(self, egraph, match: Match) -> bool:
        for position, test in self._checks:
            known = class_value(egraph, match[position])
            if known is None or not test(known):
                return False
        return True

    def search(self, egraph, tops: Iterable[Top] | None = None, limit: int | None = None) -> list[Match]:
        """Matches of the left side in an e-graph (rebuilt, as after saturation's rebuild).

        `tops` restricts the e-nodes tried as the top of the pattern (default: every e-node
        with the left side's operator outside classes with a value, which a caller's tops
        leave out too); the search stops after the top that reaches `limit`.
        """
        hashcons = egraph._hashcons
        for leaf in self._leaves:
            if leaf not in hashcons:
                return []  # a constant it needs (say 0) is nowhere in the e-graph
        classes = egraph.class_index()
        numbers = egraph._numbers
        if tops is None:
            op = self.lhs.op
            tops = [(shape, root) for root, shapes in classes.items() if root not in numbers for shape in shapes if shape[0] == op]
        matches = self._compiled[0](classes, numbers, tops, limit)
        if self._checks:
            matches = [match for match in matches if self._holds(egraph, match)]
        return matches

    @cached_property
    def matcher(self) -> tuple[Callable, Callable, tuple[tuple[str], ...]]:
        """(search, apply, leaves): what search() and apply() run, for a caller that does its checks
        itself (saturate.py): `search(classes, numbers, tops, limit)` over the class index and number
        analysis, once every constant leaf shape in `leaves` is in the e-graph (it does not check
        conditions); `apply(matches, egraph, colour bit, node limit)`."""
        return self._compiled[0], self._compiled[1], self._leaves

    @cached_property
    def _leaves(self) -> tuple[tuple[str], ...]:
        """Shapes of the constant leaves of the left side (such as 0)."""
        return tuple((leaf,) for leaf in _constant_leaves(self.lhs))

    @cached_property
    def needs(self) -> frozenset[str]:
        """Operators that must be in the e-graph for the left side to match."""
        return frozenset(_constants(self.lhs))

    @cached_property
    def depth(self) -> int:
        """Height of the left side counting constant leaves and conditioned variables (how far below
        the top a match looks: a class that gains a value can make a match hold)."""
        return _depth(self.lhs, frozenset(variable for _, variable in self.conditions))

    @cached_property
    def shape_depth(self) -> int:
        """Height of the left side without what only tests a class's value (numeral leaves and
        conditioned variables): a match below that height changes only when a class gains a value
        (the number analysis), or when a shape is re-keyed, which makes a new shape within it."""
        return _depth(self.lhs, frozenset(), values=False)

    def apply(self, egraph, matches: list[Match], node_limit: int | None = None) -> int:
        """Add the right side for each match and union it with the matched class.

        Stops early once the e-graph holds more than `node_limit` nodes; returns the matches applied.
        """
        # The e-graph's unchecked fast paths: match classes are known ids by construction.
        limit = math.inf if node_limit is None else node_limit
        return self._compiled[1](matches, egraph, self.colour.bit, limit)


# --- compiling a rule -----------------------------------------------------------------
# A rule compiles, once, to the source of two small functions: a search of nested loops,
# one loop per e-node of the left side, and an apply that builds the right side for each
# match. Straight-line code with no call per pattern step is what makes both cheap in CPython.
# The source is typed, so mypyc can compile it too: setup.py writes the built-in rules' code
# to a module (native_module) and compiles it with the engine, and _compile takes a rule's
# functions from there when its source is there (user rules are exec'd as before).

_HEADER = "from __future__ import annotations\n"  # the annotations name types exec'd source need not import


def _compile(
    lhs: Term, rhs: Term, name: str, valued: frozenset[str] = frozenset()
) -> tuple[Callable, Callable, str, list[str]]:
    """(search, apply, their source, the variables in match order) for a rule."""
    source, variables = _source(lhs, rhs, valued)
    search, apply = _native_rules().get(source) or _interpret(source, name)
    return search, apply, source, variables


def _interpret(source: str, name: str) -> tuple[Callable, Callable]:
    """A rule's search and apply from their source, as Python bytecode."""
    namespace: dict = {"NO_NODES": _NO_NODES, "add_folded": _add_folded}
    exec(compile(_HEADER + source, f"<rule {name}>", "exec"), namespace)
    return namespace["search"], namespace["apply"]


def _source(lhs: Term, rhs: Term, valued: frozenset[str], suffix: str = "") -> tuple[str, list[str]]:
    """Source of a rule's `search{suffix}` and `apply{suffix}`, and the variables in match order."""
    search, variables = _search_source(lhs, valued, suffix)
    return search + _apply_source(rhs, variables, valued, suffix), variables


def _native_rules() -> dict[str, tuple[Callable, Callable]]:
    """The compiled rules by source (empty if setup.py did not write them: AGENTNET_PURE_PYTHON=1)."""
    try:
        from . import generated_rules  # type: ignore[attr-defined]  # (written by setup.py, not in git)
    except ImportError:
        return {}
    return generated_rules.RULES


def native_module(rules: Iterable[Rule]) -> str:
    """Source of a module holding the rules' search and apply, for mypyc (see setup.py); its RULES
    maps each rule's source (as _compile makes it) to its two functions."""
    parts = [
        f'"""Search and apply of the built-in rules, for mypyc: written by setup.py from rewrites.native_module.\n\n'
        f'Do not edit; rewrites._compile uses a function here only for a rule whose source is the same."""\n\n'
        f"{_HEADER}\nfrom typing import Iterable\n\nfrom .egraph import EGraph\n"
        f"from .rewrites import _NO_NODES as NO_NODES\nfrom .rewrites import _add_folded as add_folded\n",
    ]
    table = []
    for number, rule in enumerate(dict.fromkeys(rules)):
        valued = frozenset(variable for _, variable in rule.conditions)
        source, _ = _source(rule.lhs, rule.rhs, valued)
        numbered, _ = _source(rule.lhs, rule.rhs, valued, f"_{number}")
        parts.append(f"\n# {rule}\n{numbered}")
        table.append(f"    {source!r}: (search_{number}, apply_{number}),\n")
    parts.append("\n\nRULES = {\n" + "".join(table) + "}\n")
    return "".join(parts)


# The types of the generated functions (mypyc compiles them to native code with these).
_SEARCH_SIGNATURE = (
    "(classes: dict[str, dict[tuple[str, ...], None]], numbers: dict[str, str], "
    "tops: Iterable[tuple[tuple[str, ...], str]], limit: int | None) -> list[tuple[str, ...]]:"
)
_APPLY_SIGNATURE = "(matches: list[tuple[str, ...]], egraph: EGraph, mask: int, node_limit: float) -> int:"


def _search_source(lhs: Term, valued: frozenset[str] = frozenset(), suffix: str = "") -> tuple[str, list[str]]:
    """Source of `search(classes, numbers, tops, limit) -> [match]`, and the variables in match order.

    `tops` are (shape, class root) pairs: the e-nodes to try as the top of the pattern.
    A variable in `valued` only matches a class with a value.
    `numbers` (class root -> its numeral, see EGraph) prunes classes whose value is known, as
    egg's constant folding does: such a class is its numeral and nothing else to a search,
    since every term in it equals that numeral (folding finds the value; AC, say, would
    only make more ways to write it). So a numeral leaf tests the class's numeral, and an
    operator finds no e-node in a class with a value. Callers leave such classes out of `tops`.

    Register r0 holds the top's class, and each child position of a matched e-node gets
    a register (rK) for its class. A variable is its first register; a repeat becomes an
    equality test. For `(?a + ?b) + ?c`:

        for shape, r0 in tops:
            if len(shape) != 3: continue
            r1 = shape[1]
            r2 = shape[2]
            for shape_r1 in (classes.get(r1, NO_NODES) if r1 not in numbers else NO_NODES):
                if shape_r1[0] != '+' or len(shape_r1) != 3: continue
                r3 = shape_r1[1]
                r4 = shape_r1[2]
                out.append((r0, r3, r4, r2))
    """
    registers = itertools.count(1)
    first: dict[str, str] = {}  # variable -> register of its first occurrence (preorder)
    lines = [
        f"def search{suffix}{_SEARCH_SIGNATURE}",
        "    out: list[tuple[str, ...]] = []",
        "    for shape, r0 in tops:",
    ]

    def unpack(pattern: Term, shape: str, depth: int, check_op: bool) -> int:
        """Take a matched e-node's children into registers, then match each child pattern."""
        kids = [f"r{next(registers)}" for _ in pattern.args]
        pad = "    " * depth
        # The operator first: most e-nodes of a class fail on it (tops have the right one).
        op_differs = f"{shape}[0] != {pattern.op!r} or " if check_op else ""
        lines.append(f"{pad}if {op_differs}len({shape}) != {len(kids) + 1}: continue")
        lines.extend(f"{pad}{kid} = {shape}[{position}]" for position, kid in enumerate(kids, start=1))
        for arg, kid in zip(pattern.args, kids):
            depth = child(arg, kid, depth)
        return depth

    def child(pattern: Term, register: str, depth: int) -> int:
        """Match a sub-pattern against the class in `register`; returns the nesting depth of what follows."""
        pad = "    " * depth
        if is_pattern_var(pattern):
            if pattern.op not in first:
                first[pattern.op] = register
                if pattern.op not in valued:
                    return depth
                lines.append(f"{pad}if {register} in numbers:")  # every condition needs a value (checked after)
                return depth + 1
            lines.append(f"{pad}if {register} == {first[pattern.op]}:")
        elif not pattern.args:
            numeral = numbers.numeral_of(pattern.op)
            if numeral is not None:  # a class with this numeral in it has it as its value
                lines.append(f"{pad}if numbers.get({register}) == {numeral!r}:")
            else:
                lines.append(f"{pad}if {register} not in numbers and ({pattern.op!r},) in classes.get({register}, NO_NODES):")
        else:
            shape = f"shape_{register}"
            lines.append(f"{pad}for {shape} in (classes.get({register}, NO_NODES) if {register} not in numbers else NO_NODES):")
            return unpack(pattern, shape, depth + 1, check_op=True)
        return depth + 1

    depth = unpack(lhs, "shape", 2, check_op=False)
    lines.append(f"{'    ' * depth}out.append(({', '.join(['r0', *first.values()])},))")
    lines += [
        "        if limit is not None and len(out) >= limit:  # checked per top: the limit is soft",
        "            break",
    ]
    lines.append("    return out")
    return "\n".join(lines) + "\n", list(first)


def _apply_source(rhs: Term, variables: list[str], valued: frozenset[str] = frozenset(), suffix: str = "") -> str:
    """Source of `apply(matches, egraph, mask, node_limit) -> matches applied`.

    Arithmetic on numbers in the right side (a numeral, or a variable in `valued`, whose
    class a condition says has a value) is built folded, as its numeral: `(?a + 1) * ?x`
    with `?a` = 2 builds `3 * ?x`, never `(2 + 1) * ?x`. Rules stay bounded that way even
    in a family that does not fold (the folding rules are GREEN).

    Each match builds the right side bottom-up and unions it with the matched class r0,
    unless that is its class already. Most matches of a saturating e-graph build only what
    exists, so an e-node's hash-cons lookup is inlined (EGraph._add, whose slow path
    `_add_new` files a new e-node or adds a colour bit). For `?a + ?b` and match (r0, v1, v2):

        shape = ('+', v2, v1)
        node = hashcons.get(shape)
        if node is None or mask & ~masks[node]:
            t1 = egraph._add_new(shape, mask, node)
        else:
            up = parent[node]
            t1 = up if parent[up] == up else egraph._find(node)
        if t1 != r0:
            egraph._union(r0, t1)
    """
    names = {variable: f"v{number}" for number, variable in enumerate(variables, start=1)}
    temporaries = itertools.count(1)
    body: list[str] = []

    def build(term: Term) -> tuple[str, bool]:
        """Lines that put the class of `term` in a register; returns the register and whether it has a value."""
        if is_pattern_var(term):
            return names[term.op], term.op in valued
        built_kids = [build(arg) for arg in term.args]
        kids = [kid for kid, _ in built_kids]
        register = f"t{next(temporaries)}"
        if term.op in numbers.ARITHMETIC and len(kids) == 2 and all(has_value for _, has_value in built_kids):
            body.append(f"{register} = add_folded(egraph, mask, {term.op!r}, {kids[0]}, {kids[1]})")
            return register, True
        body.extend([
            f"shape = ({', '.join([repr(term.op), *kids])},)",
            "node = hashcons.get(shape)",
            "if node is None or mask & ~masks[node]:",
            f"    {register} = egraph._add_new(shape, mask, node)",
            "else:",
            "    up = parent[node]",
            f"    {register} = up if parent[up] == up else egraph._find(node)",
        ])  # fmt: skip
        return register, not term.args and numbers.numeral_of(term.op) is not None

    built, _ = build(rhs)
    pad = "        "
    return (
        f"\ndef apply{suffix}{_APPLY_SIGNATURE}\n"
        "    hashcons, masks, parent, nodes = egraph._hashcons, egraph._masks, egraph._parent, egraph._nodes\n"
        "    shape: tuple[str, ...]\n"
        f"    for applied, ({', '.join(['r0', *names.values()])},) in enumerate(matches):\n"
        "        if len(nodes) > node_limit:\n"
        "            return applied\n"
        + "".join(f"{pad}{line}\n" for line in body)
        + f"        if {built} != r0:  # (a class root; the same root is the same class)\n"
        f"            egraph._union(r0, {built})\n"
        "    return len(matches)\n"
    )


def _add_folded(egraph, mask: int, op: str, left: str, right: str) -> str:
    """Class of `left op right` built as its numeral (as _apply_source says), or as is where it has no value."""
    a, b = class_value(egraph, left), class_value(egraph, right)
    result = None if a is None or b is None else numbers.apply(op, a, b)
    if result is None:
        return egraph._add((op, egraph._find(left), egraph._find(right)), mask)
    return egraph._add((numbers.spell(result),), mask)


def _constant_leaves(pattern: Term) -> list[str]:
    if not pattern.args:
        return [] if is_pattern_var(pattern) else [pattern.op]
    return [leaf for arg in pattern.args for leaf in _constant_leaves(arg)]


def _constants(pattern: Term) -> set[str]:
    """Operators a pattern needs present in the e-graph (everything but its variables)."""
    if is_pattern_var(pattern):
        return set()
    return {pattern.op}.union(*(_constants(arg) for arg in pattern.args))


def _depth(pattern: Term, conditioned: frozenset[str] = frozenset(), values: bool = True) -> int:
    if is_pattern_var(pattern):
        return 1 if pattern.op in conditioned else 0
    if not pattern.args and not values and numbers.numeral_of(pattern.op) is not None:
        return 0  # a numeral leaf matches a class with its value, and nothing else (see _search_source)
    return 1 + max((_depth(arg, conditioned, values) for arg in pattern.args), default=0)


class FoldRule(Rule):
    """Constant folding for one operator: `?a op ?b`, both numbers, joins the numeral of its value.

    The analysis's "modify" step (egg), as a rule: what it adds (a numeral, a union) is an
    ordinary e-node and union, so it replicates like any rewrite. Its right side is its left
    side, which apply builds folded, as its numeral (see _apply_source); where the operator has
    no rational value (x / 0, 2 ^ (1/2)) that is the matched e-node, and it adds nothing.
    """

    def __init__(self, op: str):
        a, b = Term("?a"), Term("?b")
        super().__init__(f"fold {op}", Term(op, (a, b)), Term(op, (a, b)), Colour.GREEN, (("number", "?a"), ("number", "?b")))

    def __str__(self) -> str:
        return f"{self.name}: {self.lhs} => its value{self._conditions_text}"


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


_CONDITION = re.compile(r"\s*([a-z][a-z-]*)\s*\(\s*(\?[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*")


def _parse_line(text: str, colour: Colour, name: str | None) -> list[Rule]:
    body = text.strip()
    head, colon, rest = body.partition(":")
    if colon and "=" not in head:
        name, body = name or head.strip(), rest.strip()
    body, _, conditions_text = body.partition(" if ")
    conditions = _parse_conditions(conditions_text, text) if conditions_text else ()
    both = "<=>" in body
    lhs_text, arrow, rhs_text = body.partition("<=>" if both else "=>")
    if not arrow:
        raise RuleError(f"a rule needs '=>' (or '<=>'): {text!r}")
    lhs, rhs = parse(lhs_text, patterns=True), parse(rhs_text, patterns=True)
    name = name or f"{lhs} => {rhs}"
    rules = [Rule(name, lhs, rhs, colour, conditions)]
    if both:
        rules.append(Rule(f"{name} (reverse)", rhs, lhs, colour, conditions))
    return rules


def _parse_conditions(text: str, line: str) -> tuple[Condition, ...]:
    """`nonzero(?b), number(?a)` -> (("nonzero", "?b"), ("number", "?a"))."""
    conditions = []
    for part in text.split(","):
        match = _CONDITION.fullmatch(part)
        if match is None:
            raise RuleError(f"a condition is written name(?variable), got {part.strip()!r} in {line!r}")
        conditions.append((match.group(1), match.group(2)))
    return tuple(conditions)


def can_fire(rules: Iterable[Rule], present: set[str]) -> bool:
    """Could any rule match an e-graph holding only these operators (leaves included)? If none can,
    none ever will. A rule with conditions needs a number too (every condition is on a value)."""
    has_number = any(numbers.numeral_of(op) is not None for op in present)
    return any(rule.needs <= present and (has_number or not rule.conditions) for rule in rules)


# --- the three families ---------------------------------------------------------------
# A rule's family is what it does:
#   RED   reorders: commutativity and associativity (the same sum or product, regrouped);
#   BLUE  distributes or collects: a product over a sum (and back), like terms collected
#         (x + x = 2 * x), a division over a sum, a power over a sum in its exponent;
#   GREEN evaluates and defines: identities (x + 0 = x), folding numbers to their value,
#         and the definitions that reduce -, / and ^ to + and * (x - y = x + (0 - 1) * y,
#         x / 3 = x * (1 / 3) when the divisor is a known non-zero number, x ^ 3 = x * x ^ 2).
# Together they prove polynomial identities over the rationals: expand (BLUE, GREEN),
# regroup (RED), collect (BLUE) with numbers folded (GREEN). A division becomes a product
# only by a known non-zero number: x / y * y = x fails at y = 0, so x / x stays unknown.
# A power splits over a sum in its exponent only on a known non-zero base: 0 ^ (-1 + 1) is 1, but
# 0 ^ -1 * 0 ^ 1 has no value, and mul-zero would then make it 0.
# Exponents are expanded when they are known integers from 1 to numbers.MAX_EXPONENT.
# Each law holds wherever both its sides have a value (the oracle test checks answers so).

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
    distribute:     ?a * (?b + ?c) => ?a * ?b + ?a * ?c
    factor:         ?a * ?b + ?a * ?c => ?a * (?b + ?c)
    collect-twice:  ?x + ?x => 2 * ?x
    collect-once:   ?a * ?x + ?x => (?a + 1) * ?x if number(?a)
    div-distribute: (?a + ?b) / ?c => ?a / ?c + ?b / ?c
    pow-add:        ?x ^ (?a + ?b) => ?x ^ ?a * ?x ^ ?b if nonzero(?x)
    """,
    Colour.BLUE,
)

FOLD_RULES = tuple(FoldRule(op) for op in numbers.ARITHMETIC)

GREEN_RULES = (
    parse_rules(
        """
        add-zero:      ?a + 0 => ?a
        zero-add:      0 + ?a => ?a
        mul-one:       ?a * 1 => ?a
        one-mul:       1 * ?a => ?a
        mul-zero:      ?a * 0 => 0
        zero-mul:      0 * ?a => 0
        sub-as-add:    ?a - ?b => ?a + (0 - 1) * ?b
        div-by-number: ?a / ?b => ?a * (1 / ?b) if nonzero(?b)
        pow-zero:      ?x ^ 0 => 1
        pow-one:       ?x ^ 1 => ?x
        pow-expand:    ?x ^ ?n => ?x * ?x ^ (?n - 1) if positive-integer(?n)
        """,
        Colour.GREEN,
    )
    + FOLD_RULES
)

ALL_RULES = RED_RULES + BLUE_RULES + GREEN_RULES
_FAMILIES = {Colour.RED: RED_RULES, Colour.BLUE: BLUE_RULES, Colour.GREEN: GREEN_RULES}


def rules_for(colour: Colour | str) -> tuple[Rule, ...]:
    """The rewrite family of a colour."""
    return _FAMILIES[Colour(colour)]


def lawless_operators(rules: Iterable[Rule] = ALL_RULES) -> set[str]:
    """Infix operators of the language that no rule's left side mentions (there should be none)."""
    return set(INFIX) - {op for rule in rules for op in _constants(rule.lhs)}
