"""Numbers are numbers: exact rational values, their one spelling, and the operators' arithmetic.

This is the value domain of the constant-folding e-class analysis (egg's first example of
an analysis, with egglog's rationals): a class's value is the numeral in it, so `2 * 2`,
`1 + 1 + 2` and `4` end in one class once folding (rewrites.FOLD_RULES) has run.

- A value is a `fractions.Fraction`: `/` stays exact, no float ever enters.
- Every value has exactly one spelling as a numeral leaf, so equal values are equal
  e-nodes (content addressing does the rest): integers `7`, `-3`; values with a finite
  decimal expansion `2.5`, `-0.125`; the others `1/3`, `-7/3`. The parser writes the
  non-negative decimals; folding writes any of them.
- The analysis lattice per class: no value < a value < CONFLICT (two different values
  were asserted equal). `join` is commutative, associative and idempotent, so a class's
  value depends only on which numerals are in it, never on merge order: replicas agree.
- `apply` is each operator's arithmetic. It is partial: division by zero, a power whose
  exponent is not an integer, or a result too large to be worth holding is `None`
  (no value), never an approximation.
"""

import re
from fractions import Fraction
from functools import lru_cache

CONFLICT = "!"  # the class holds two different numerals (someone asserted 1 = 2): it has no value

# Bounds that keep folding and evaluation cheap: a power's exponent, and a result's size in bits.
MAX_EXPONENT = 64
MAX_BITS = 4_096

_SPELLING = re.compile(r"-?(?:\d+(?:\.\d+)?|\d+/\d+)")


def is_numeral(op: str) -> bool:
    """Is a leaf operator a numeral (as opposed to a variable name)?"""
    first = op[0]
    return first.isdigit() or (first == "-" and len(op) > 1)


@lru_cache(maxsize=4_096)
def value(numeral: str) -> Fraction:
    """The exact value of a numeral in any accepted spelling ("2.50", "-7/3")."""
    if not _SPELLING.fullmatch(numeral):
        raise ValueError(f"not a numeral: {numeral!r}")
    return Fraction(numeral)


@lru_cache(maxsize=4_096)
def spell(number: Fraction) -> str:
    """The one spelling of a value: an integer, a finite decimal, or `p/q` in lowest terms."""
    if number < 0:
        return "-" + spell(-number)
    numerator, denominator = number.numerator, number.denominator
    if denominator == 1:
        return str(numerator)
    twos, fives, rest = 0, 0, denominator
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        return f"{numerator}/{denominator}"
    places = max(twos, fives)  # 10**places / denominator is an integer
    digits = str(numerator * 10**places // denominator).rjust(places + 1, "0")
    return f"{digits[:-places]}.{digits[-places:]}"


@lru_cache(maxsize=4_096)  # (asked of every leaf an e-graph files: few distinct ones)
def numeral_of(op: str) -> str | None:
    """The one spelling of a leaf operator that is a numeral (in any accepted spelling), else None."""
    if not is_numeral(op) or not _SPELLING.fullmatch(op):
        return None
    return spell(value(op))


def canonical(numeral: str) -> str:
    """The one spelling of a numeral written any accepted way: 007 -> 7, 2.50 -> 2.5, 2.0 -> 2."""
    return spell(value(numeral))


def join(known: str | None, numeral: str) -> str:
    """The analysis's merge: a class's numeral (None: no value yet) and another (or CONFLICT)."""
    return numeral if known is None or known == numeral else CONFLICT


def apply(op: str, left: Fraction, right: Fraction) -> Fraction | None:
    """`left op right` exactly, or None where the operator has no (reasonably sized) rational value."""
    if op == "+":
        result = left + right
    elif op == "-":
        result = left - right
    elif op == "*":
        result = left * right
    elif op == "/":
        if right == 0:
            return None
        result = left / right
    elif op == "^":
        if right.denominator != 1 or abs(right) > MAX_EXPONENT or (left == 0 and right < 0):
            return None
        result = left ** int(right)
    else:
        raise ValueError(f"no arithmetic for operator {op!r}")
    if result.numerator.bit_length() > MAX_BITS or result.denominator.bit_length() > MAX_BITS:
        return None
    return result


ARITHMETIC = ("+", "-", "*", "/", "^")  # the operators `apply` knows
