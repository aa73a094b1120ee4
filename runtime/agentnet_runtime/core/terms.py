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


class TermSyntaxError(ValueError):
    """Text that is not a term; says where (1-based column) and what."""

    def __init__(self, text: str, position: int, problem: str):
        self.text = text
        self.position = position  # 0-based offset into text
        self.problem = problem
        super().__init__(f"{problem} at column {position + 1} in {text!r}")


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
    return 1 + sum(size(arg) for arg in term.args)


def operators(term: Term) -> set[str]:
    """Every operator in a term, leaves included."""
    found = {term.op}
    for arg in term.args:
        found |= operators(arg)
    return found


def variables(term: Term) -> set[str]:
    """Names of the pattern variables (`?x`) in a term."""
    if is_pattern_var(term):
        return {term.op}
    return set().union(*(variables(arg) for arg in term.args)) if term.args else set()


# --- printing ---------------------------------------------------------------


def _print(term: Term) -> str:
    op, args = _shown(term)
    if not args:
        return op
    operator = INFIX.get(op)
    if operator is None or len(args) != 2:
        return f"{op}({', '.join(_print(arg) for arg in args)})"
    left, right = args
    return f"{_operand(left, operator, is_right=False)} {op} {_operand(right, operator, is_right=True)}"


def _operand(term: Term, parent: Operator, is_right: bool) -> str:
    """Print an operand of an infix operator, in parentheses only when needed."""
    text = _print(term)
    term = _shown(term)
    inner = INFIX.get(term.op) if len(term.args) == 2 else None
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


def parse(text: str, *, patterns: bool = False) -> Term:
    """Parse a term; `patterns=True` also accepts `?name` pattern variables."""
    try:
        return _Parser(text, patterns).parse()
    except TermSyntaxError:
        raise
    except RecursionError:  # e.g. 5,000 nested brackets off the work queue: bad input, not a crash
        raise TermSyntaxError(text, 0, "nested too deeply") from None
    except ValueError as error:  # a numeral past int()'s digit limit
        raise TermSyntaxError(text, 0, str(error)) from None


class _Parser:
    """Precedence climbing over a token list of (kind, text, position)."""

    def __init__(self, text: str, patterns: bool):
        self.text = text
        self.patterns = patterns
        self.tokens = self._tokenize()
        self.index = 0

    def _tokenize(self) -> list[tuple[str, str, int]]:
        tokens: list[tuple[str, str, int]] = []
        text = self.text
        position = _after_space(text, 0)
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.lastgroup is None:  # (every alternative is a named group)
                symbol = _UNLAWFUL.match(text, position)
                if symbol is not None:
                    lawful = " ".join(INFIX)
                    raise TermSyntaxError(text, position, f"operator {symbol.group()!r} is not supported: the engine "
                                          f"has no laws for it (operators: {lawful})")  # fmt: skip
                raise TermSyntaxError(text, position, f"unexpected character {text[position]!r}")
            tokens.append((match.lastgroup, match.group(), position))
            position = _after_space(text, match.end())
        tokens.append(("end", "end of input", len(text)))
        return tokens

    def parse(self) -> Term:
        term = self._expression(0)
        kind, token, position = self.tokens[self.index]
        if kind != "end":
            raise TermSyntaxError(self.text, position, f"unexpected {token!r}, expected an operator or end of input")
        return term

    def _peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def _next(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _expect(self, symbol: str) -> None:
        kind, token, position = self._next()
        if token != symbol or kind != "symbol":
            raise TermSyntaxError(self.text, position, f"expected {symbol!r}, found {_describe(kind, token)}")

    def _expression(self, min_precedence: int) -> Term:
        left = self._primary()
        while True:
            kind, token, _ = self._peek()
            operator = INFIX.get(token) if kind == "symbol" else None
            if operator is None or operator.precedence < min_precedence:
                return left
            self.index += 1
            next_min = operator.precedence if operator.right_assoc else operator.precedence + 1
            left = Term(token, (left, self._expression(next_min)))

    def _primary(self) -> Term:
        kind, token, position = self._next()
        if kind == "number":
            return Term(_numeral(token))
        if kind == "pvar":
            if not self.patterns:
                raise TermSyntaxError(self.text, position, f"pattern variable {token!r} outside a rule")
            return Term(token)
        if kind == "name":
            if self._peek()[1] != "(":
                return Term(token)
            self.index += 1
            args = [self._expression(0)]
            while self._peek()[1] == ",":
                self.index += 1
                args.append(self._expression(0))
            self._expect(")")
            return Term(token, tuple(args))
        if token == "(" and kind == "symbol":
            inner = self._expression(0)
            self._expect(")")
            return inner
        found = _describe(kind, token)
        raise TermSyntaxError(self.text, position, f"expected a number, variable or '(', found {found}")


def _describe(kind: str, token: str) -> str:
    return token if kind == "end" else repr(token)
