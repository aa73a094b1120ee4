"""Rewrite rules as data, and the three families.

A rule is text: `name: lhs => rhs`, with `?x` pattern variables, e.g.
`add-assoc: (?a + ?b) + ?c => ?a + (?b + ?c)`. `parse_rules` reads many (one a
line, `#` comments, `<=>` for both directions), so users can add their own.

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
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterable

from .colour import Colour
from .terms import Term, is_pattern_var, parse, variables

Top = tuple[tuple, str]  # (shape, class root) of an e-node a search starts from
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
    def _compiled(self) -> tuple[Callable, Callable, str]:
        """(search, apply, their Python source), compiled on first use (see _compile)."""
        return _compile(self.lhs, self.rhs, self.name)

    def search(self, egraph, tops: Iterable[Top] | None = None, limit: int | None = None) -> list[Match]:
        """Matches of the left side in an e-graph (rebuilt, as after saturation's rebuild).

        `tops` restricts the e-nodes tried as the top of the pattern (default: every e-node
        with the left side's operator); the search stops after the top that reaches `limit`.
        """
        hashcons = egraph._hashcons
        for leaf in self._leaves:
            if leaf not in hashcons:
                return []  # a constant it needs (say 0) is nowhere in the e-graph
        classes = egraph.class_index()
        if tops is None:
            op = self.lhs.op
            tops = [(shape, root) for root, shapes in classes.items() for shape in shapes if shape[0] == op]
        return self._compiled[0](classes, tops, limit)

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
        """Height of the left side counting constant leaves (how far below the top a match looks)."""
        return _depth(self.lhs)

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


def _compile(lhs: Term, rhs: Term, name: str) -> tuple[Callable, Callable, str]:
    """(search, apply, their source) for a rule."""
    search, variables = _search_source(lhs)
    source = search + _apply_source(rhs, variables)
    namespace: dict = {"NO_NODES": _NO_NODES}
    exec(compile(source, f"<rule {name}>", "exec"), namespace)
    return namespace["search"], namespace["apply"], source


def _search_source(lhs: Term) -> tuple[str, list[str]]:
    """Source of `search(classes, tops, limit) -> [match]`, and the variables in match order.

    `tops` are (shape, class root) pairs: the e-nodes to try as the top of the pattern.

    Register r0 holds the top's class, and each child position of a matched e-node gets
    a register (rK) for its class. A variable is its first register; a repeat becomes an
    equality test. For `(?a + ?b) + ?c`:

        for shape, r0 in tops:
            if len(shape) != 3: continue
            _, r1, r2 = shape
            for shape_r1 in classes.get(r1, NO_NODES):
                if shape_r1[0] != '+' or len(shape_r1) != 3: continue
                _, r3, r4 = shape_r1
                append((r0, r3, r4, r2))
    """
    registers = itertools.count(1)
    first: dict[str, str] = {}  # variable -> register of its first occurrence (preorder)
    lines = [
        "def search(classes, tops, limit):",
        "    out = []",
        "    append = out.append",
        "    for shape, r0 in tops:",
    ]

    def unpack(pattern: Term, shape: str, depth: int, check_op: bool) -> int:
        """Take a matched e-node's children into registers, then match each child pattern."""
        kids = [f"r{next(registers)}" for _ in pattern.args]
        pad = "    " * depth
        # The operator first: most e-nodes of a class fail on it (tops have the right one).
        op_differs = f"{shape}[0] != {pattern.op!r} or " if check_op else ""
        lines.append(f"{pad}if {op_differs}len({shape}) != {len(kids) + 1}: continue")
        if kids:
            lines.append(f"{pad}_, {', '.join(kids)} = {shape}")
        for arg, kid in zip(pattern.args, kids):
            depth = child(arg, kid, depth)
        return depth

    def child(pattern: Term, register: str, depth: int) -> int:
        """Match a sub-pattern against the class in `register`; returns the nesting depth of what follows."""
        pad = "    " * depth
        if is_pattern_var(pattern):
            if pattern.op not in first:
                first[pattern.op] = register
                return depth
            lines.append(f"{pad}if {register} == {first[pattern.op]}:")
        elif not pattern.args:
            lines.append(f"{pad}if ({pattern.op!r},) in classes.get({register}, NO_NODES):")
        else:
            shape = f"shape_{register}"
            lines.append(f"{pad}for {shape} in classes.get({register}, NO_NODES):")
            return unpack(pattern, shape, depth + 1, check_op=True)
        return depth + 1

    depth = unpack(lhs, "shape", 2, check_op=False)
    lines.append(f"{'    ' * depth}append(({', '.join(['r0', *first.values()])},))")
    lines += [
        "        if limit is not None and len(out) >= limit:  # checked per top: the limit is soft",
        "            break",
    ]
    lines.append("    return out")
    return "\n".join(lines) + "\n", list(first)


def _apply_source(rhs: Term, variables: list[str]) -> str:
    """Source of `apply(matches, egraph, mask, node_limit) -> matches applied`.

    Each match builds the right side bottom-up and unions it with the matched class r0,
    unless that is its class already. Most matches of a saturating e-graph build only what
    exists, so an e-node's hash-cons lookup is inlined (EGraph._add, whose slow path
    `add_new` files a new e-node or adds a colour bit). For `?a + ?b` and match (r0, v1, v2):

        shape = ('+', v2, v1)
        node = get(shape)
        if node is None or mask & ~masks[node]:
            t1 = add_new(shape, mask, node)
        else:
            up = parent[node]
            t1 = up if parent[up] == up else find(node)
        if t1 != r0:
            union(r0, t1)
    """
    names = {variable: f"v{number}" for number, variable in enumerate(variables, start=1)}
    temporaries = itertools.count(1)
    body: list[str] = []

    def build(term: Term) -> str:
        """Lines that put the class of `term` in a register; returns the register."""
        if is_pattern_var(term):
            return names[term.op]
        kids = [build(arg) for arg in term.args]
        register = f"t{next(temporaries)}"
        body.extend([
            f"shape = ({', '.join([repr(term.op), *kids])},)",
            "node = get(shape)",
            "if node is None or mask & ~masks[node]:",
            f"    {register} = add_new(shape, mask, node)",
            "else:",
            "    up = parent[node]",
            f"    {register} = up if parent[up] == up else find(node)",
        ])  # fmt: skip
        return register

    built = build(rhs)
    pad = "        "
    return (
        "\ndef apply(matches, egraph, mask, node_limit):\n"
        "    get, masks, parent, nodes = egraph._hashcons.get, egraph._masks, egraph._parent, egraph._nodes\n"
        "    add_new, find, union = egraph._add_new, egraph._find, egraph._union\n"
        f"    for applied, ({', '.join(['r0', *names.values()])},) in enumerate(matches):\n"
        "        if len(nodes) > node_limit:\n"
        "            return applied\n"
        + "".join(f"{pad}{line}\n" for line in body)
        + f"        if {built} != r0:  # (a class root; the same root is the same class)\n"
        f"            union(r0, {built})\n"
        "    return len(matches)\n"
    )


def _constant_leaves(pattern: Term) -> list[str]:
    if not pattern.args:
        return [] if is_pattern_var(pattern) else [pattern.op]
    return [leaf for arg in pattern.args for leaf in _constant_leaves(arg)]


def _constants(pattern: Term) -> set[str]:
    """Operators a pattern needs present in the e-graph (everything but its variables)."""
    if is_pattern_var(pattern):
        return set()
    return {pattern.op}.union(*(_constants(arg) for arg in pattern.args))


def _depth(pattern: Term) -> int:
    if is_pattern_var(pattern):
        return 0
    return 1 + max((_depth(arg) for arg in pattern.args), default=0)


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
