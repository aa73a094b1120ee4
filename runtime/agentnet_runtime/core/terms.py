"""A small term language: numbers, variables, infix operators and function calls.

    (a + b) * c        x * 1 + 0        f(x, y + 2)        ?a * (?b + ?c)

A term is an operator and its arguments; a leaf is an operator with no
arguments (a number such as "2" or "2.5", or a variable name). `?name` is a
pattern variable, allowed only when parsing rules (`patterns=True`).

Every operator the parser accepts has laws in the engine (rewrites.py) and arithmetic
(numbers.py); any other operator symbol is refused here, by name.

`str(term)` prints with the fewest parentheses that still parse back to the
same term, so `parse(str(t)) == t` for every parsed term. Numerals the engine
computed that the parser cannot read as one leaf (`-3`, `1/3`) print as the
subtraction or division that has their value: `0 - 3`, `1 / 3`.

Terms come from anyone who can reach a route or a work queue, so the parser refuses
one deeper or larger than its limits (TermLimitError, naming the limit) before it is
built, and neither the parser nor the printer recurses: a 50,000-deep term is
refused in the time it takes to read it, never a RecursionError.
"""

import re
from typing import NamedTuple

from .numbers import canonical, is_numeral, value


class Operator(NamedTuple):
    precedence: int  # higher binds tighter
    right_assoc: bool = False


# Binary infix operators. Add a line here to extend the language; operators that
# share a precedence must share an associativity.
INFIX: dict[str, Operator] = {
    "+": Operator(1),
    "-": Operator(1),
    "*": Operator(2),
    "/": Operator(2),
    "^": Operator(3, right_assoc=True),
}


class Term(NamedTuple):
    """An operator applied to arguments; a plain tuple, so hashable, comparable and cheap."""

    op: str
    args: tuple["Term", ...] = ()

    def __str__(self) -> str:
        return _print(self)

    def __repr__(self) -> str:
        return f"parse({str(self)!r})"


# The parser's limits (settings.py makes them settable per network: spec.limits). The engine's
# other passes over a term (e-graph insertion, evaluation, explanation) recurse once a level,
# some twice (a comprehension is a frame in 3.11), so a depth limit above DEPTH_CEILING would let a
# term reach Python's recursion limit (1000) inside a request (tests: test_component_term_limits).
MAX_TERM_DEPTH = 256  # levels of operators, calls and brackets
MAX_TERM_SIZE = 10_000  # nodes: numbers, variables, operators and calls
DEPTH_CEILING = 300
SHOWN_TEXT = 80  # most characters of the text an error message quotes


class TermSyntaxError(ValueError):
    """Text that is not a term; says where (1-based column) and what."""

    def __init__(self, text: str, position: int, problem: str):
        self.text = text
        self.position = position  # 0-based offset into text
        self.problem = problem
        shown = text if len(text) <= SHOWN_TEXT else text[: SHOWN_TEXT - 3] + "..."  # (an answer, not an echo of 100 kB)
        super().__init__(f"{problem} at column {position + 1} in {shown!r}")


class TermLimitError(TermSyntaxError):
    """A term deeper or larger than the parser's limit; `limit` names it (maxTermDepth, maxTermSize)."""

    def __init__(self, text: str, position: int, limit: str, bound: int, what: str):
        self.limit, self.bound = limit, bound
        super().__init__(text, position, f"{what} exceeds the limit {limit} = {bound}")


def var(name: str) -> Term:
    return Term(name)


def num(value: int | float | str) -> Term:
    return Term(_numeral(str(value)))


def is_pattern_var(term: Term) -> bool:
    return term.op.startswith("?")


def is_number(term: Term) -> bool:
    return not term.args and is_numeral(term.op)


def size(term: Term) -> int:
    """Number of nodes in the term's syntax tree."""
    count, todo = 0, [term]
    while todo:
        term = todo.pop()
        count += 1
        todo.extend(term.args)
    return count


def operators(term: Term) -> set[str]:
    """Every operator in a term, leaves included."""
    found = set()
    todo = [term]
    while todo:  # (not recursive: saturating a small term called this for 4 % of its time)
        term = todo.pop()
        found.add(term.op)
        todo.extend(term.args)
    return found


def variables(term: Term) -> set[str]:
    """Names of the pattern variables (`?x`) in a term."""
    return {op for op in operators(term) if op.startswith("?")}


# --- printing ---------------------------------------------------------------


def _print(term: Term) -> str:
    """The term's text, children before parents on an explicit stack (no recursion: any depth prints)."""
    done: list[str] = []  # texts of finished subterms, in order
    todo: list[tuple[Term, list[Term] | None]] = [(_shown(term), None)]  # (a term as shown, its children as shown)
    while todo:
        term, kids = todo.pop()
        if kids is None:
            if not term.args:
                done.append(term.op)
                continue
            kids = [_shown(arg) for arg in term.args]
            todo.append((term, kids))
            todo.extend([(kid, None) for kid in reversed(kids)])
            continue
        texts = done[-len(kids):]
        del done[-len(kids):]
        operator = INFIX.get(term.op)
        if operator is None or len(kids) != 2:
            done.append(f"{term.op}({', '.join(texts)})")
        else:
            left, right = _operand(texts[0], kids[0], operator, False), _operand(texts[1], kids[1], operator, True)
            done.append(f"{left} {term.op} {right}")
    return done[0]


def _operand(text: str, shown: Term, parent: Operator, is_right: bool) -> str:
    """An operand's text under an infix operator, in parentheses only when needed."""
    inner = INFIX.get(shown.op) if len(shown.args) == 2 else None
    if inner is None or inner.precedence > parent.precedence:
        return text
    if inner.precedence == parent.precedence and is_right == parent.right_assoc:
        return text  # same level on the side the operator groups towards
    return f"({text})"


def _shown(term: Term) -> Term:
    """The term as printed: a computed numeral the parser cannot read (-3, 1/3) as an equal-valued term."""
    if term.args or not is_numeral(term.op) or _NUMBER.fullmatch(term.op):
        return term
    number = value(term.op)
    if number < 0:
        return Term("-", (Term("0"), Term(canonical(str(-number)))))
    return Term("/", (Term(str(number.numerator)), Term(str(number.denominator))))


# --- parsing ----------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<pvar>\?[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<symbol>[-+*/^(),])"
)
_SPACE = re.compile(r"\s*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Symbols someone may mean as an operator; the engine has no laws for them, so they are refused by name.
_UNLAWFUL = re.compile(r"[%<>=!&|~@\\]+")


def _after_space(text: str, position: int) -> int:
    space = _SPACE.match(text, position)
    return position if space is None else space.end()  # (\s* always matches)


def _numeral(text: str) -> str:
    """One spelling per number, so equal numbers are equal terms: 007 -> 7, 2.50 -> 2.5, 2.0 -> 2."""
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"not a non-negative number: {text!r}")
    return canonical(text)


def parse(text: str, *, patterns: bool = False, max_depth: int = MAX_TERM_DEPTH, max_size: int = MAX_TERM_SIZE) -> Term:
    """Parse a term; `patterns=True` also accepts `?name` pattern variables. A term of more than
    `max_size` nodes, or nested deeper than `max_depth`, is a TermLimitError."""
    try:
        return _Parser(text, patterns, max_depth, max_size).parse()
    except TermSyntaxError:
        raise
    except ValueError as error:  # a numeral past int()'s digit limit
        raise TermSyntaxError(text, 0, str(error)) from None


_LEAVES = ("number", "name", "pvar")
_GROUP, _CALL = "(", "call"  # what an open bracket on the parser's stack is


class _Parser:
    """Operator precedence over a token list of (kind, text, position), on explicit stacks: each
    operand's depth is known when it is built, so a term over the limit is refused before it exists."""

    def __init__(self, text: str, patterns: bool, max_depth: int, max_size: int):
        self.text = text
        self.patterns = patterns
        self.max_depth, self.max_size = max_depth, max_size
        self.tokens = self._tokenize()

    def _tokenize(self) -> list[tuple[str, str, int]]:
        tokens: list[tuple[str, str, int]] = []
        text = self.text
        position = _after_space(text, 0)
        nodes = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.lastgroup is None:  # (every alternative is a named group)
                symbol = _UNLAWFUL.match(text, position)
                if symbol is not None:
                    lawful = " ".join(INFIX)
                    raise TermSyntaxError(text, position, f"operator {symbol.group()!r} is not supported: the engine "
                                          f"has no laws for it (operators: {lawful})")  # fmt: skip
                raise TermSyntaxError(text, position, f"unexpected character {text[position]!r}")
            kind, token = match.lastgroup, match.group()
            if kind in _LEAVES or token in INFIX:  # a node of the term (brackets and commas are not)
                nodes += 1
                if nodes > self.max_size:
                    raise TermLimitError(text, position, "maxTermSize", self.max_size, "the number of nodes")
            tokens.append((kind, token, position))
            position = _after_space(text, match.end())
        tokens.append(("end", "end of input", len(text)))
        return tokens

    def parse(self) -> Term:
        tokens, text = self.tokens, self.text
        operands: list[Term] = []
        depths: list[int] = []  # of each operand
        # Infix operators waiting for their right operand, and open brackets: (_CALL, name, where its
        # arguments start in operands, position) or (_GROUP, "(", ..., position).
        pending: list[tuple] = []
        brackets = 0
        index = 0
        while True:
            # An operand: a number, a variable, or an opening bracket (then an operand again).
            kind, token, position = tokens[index]
            index += 1
            if kind == "number":
                operands.append(Term(_numeral(token)))
            elif kind == "name" and tokens[index][1] != "(":
                operands.append(Term(token))
            elif kind == "pvar":
                if not self.patterns:
                    raise TermSyntaxError(text, position, f"pattern variable {token!r} outside a rule")
                operands.append(Term(token))
            elif kind == "name" or (kind == "symbol" and token == "("):
                brackets += 1
                if brackets > self.max_depth:
                    raise TermLimitError(text, position, "maxTermDepth", self.max_depth, "the nesting of brackets")
                if kind == "name":
                    index += 1  # its "("
                pending.append((_CALL if kind == "name" else _GROUP, token, len(operands), position))
                continue
            else:
                raise TermSyntaxError(text, position, f"expected a number, variable or '(', found {_describe(kind, token)}")
            depths.append(1)
            # After an operand: an infix operator (then an operand), a closing bracket, a comma, or the end.
            while True:
                kind, token, position = tokens[index]
                index += 1
                operator = INFIX.get(token) if kind == "symbol" else None
                if pending and pending[-1][0].__class__ is Operator:
                    self._reduce(pending, operands, depths, operator)
                if operator is not None:
                    pending.append((operator, token, 0, position))
                    break
                top = pending[-1] if pending else None
                if top is None:
                    if kind == "end":
                        return operands[0]
                    raise TermSyntaxError(text, position, f"unexpected {token!r}, expected an operator or end of input")
                if kind == "symbol" and token == ")":
                    pending.pop()
                    brackets -= 1
                    if top[0] is _CALL:
                        start = top[2]
                        args, deepest = tuple(operands[start:]), max(depths[start:])
                        del operands[start:], depths[start:]
                        if deepest + 1 > self.max_depth:
                            raise TermLimitError(text, position, "maxTermDepth", self.max_depth, "the depth")
                        operands.append(Term(top[1], args))
                        depths.append(deepest + 1)
                    continue
                if kind == "symbol" and token == "," and top[0] is _CALL:
                    break
                raise TermSyntaxError(text, position, f"expected ')', found {_describe(kind, token)}")

    def _reduce(self, pending: list[tuple], operands: list[Term], depths: list[int], incoming: Operator | None) -> None:
        """Apply the pending infix operators that bind before `incoming` (None: all, down to a bracket)."""
        while pending and pending[-1][0].__class__ is Operator:
            operator = pending[-1][0]
            if incoming is not None and not (operator.precedence > incoming.precedence or
                                             (operator.precedence == incoming.precedence and not incoming.right_assoc)):
                return
            _, symbol, _, position = pending.pop()
            right, right_depth = operands.pop(), depths.pop()
            depth = max(depths[-1], right_depth) + 1
            if depth > self.max_depth:
                raise TermLimitError(self.text, position, "maxTermDepth", self.max_depth, "the depth")
            operands[-1], depths[-1] = Term(symbol, (operands[-1], right)), depth


def _describe(kind: str, token: str) -> str:
    return token if kind == "end" else repr(token)
