"""Polynomial identities the engine must prove, with arithmetic of their own (not the engine's).

The equality oracle test and bench/bench_identities.py share them: random terms of a
given height over + - * / ^, and the expanded polynomial normal form a term equals
(a dict of monomials), written back as a term.
"""

import random
from fractions import Fraction

from agentnet_runtime.core import numbers
from agentnet_runtime.core.terms import Term

VARIABLES = ("x", "y", "z")
LEAVES = VARIABLES + ("0", "1", "2", "3", "0.5")

Monomial = tuple[tuple[str, int], ...]  # sorted (variable, exponent > 0) pairs; () is the constant
Polynomial = dict[Monomial, Fraction]  # monomial -> non-zero coefficient


def value_at(term: Term, point: dict[str, Fraction]) -> Fraction | None:
    """Exact value, or None where there is none (division by zero, an exponent that is no integer in the
    engine's range: numbers.MAX_EXPONENT)."""
    if not term.args:
        return point[term.op] if term.op in point else numbers.value(term.op)
    left, right = (value_at(arg, point) for arg in term.args)
    if left is None or right is None:
        return None
    if term.op == "+":
        return left + right
    if term.op == "-":
        return left - right
    if term.op == "*":
        return left * right
    if term.op == "/":
        return None if right == 0 else left / right
    if right.denominator != 1 or abs(right) > numbers.MAX_EXPONENT or (left == 0 and right < 0):
        return None
    return left ** int(right)


def _times(p: Polynomial, q: Polynomial) -> Polynomial:
    product: Polynomial = {}
    for m1, c1 in p.items():
        for m2, c2 in q.items():
            powers = dict(m1)
            for variable, exponent in m2:
                powers[variable] = powers.get(variable, 0) + exponent
            monomial = tuple(sorted(powers.items()))
            product[monomial] = product.get(monomial, Fraction(0)) + c1 * c2
    return {m: c for m, c in product.items() if c}


def _plus(p: Polynomial, q: Polynomial, sign: int = 1) -> Polynomial:
    total = dict(p)
    for monomial, coefficient in q.items():
        total[monomial] = total.get(monomial, Fraction(0)) + sign * coefficient
    return {m: c for m, c in total.items() if c}


def _constant(p: Polynomial) -> Fraction | None:
    return None if any(p.keys() - {()}) else p.get((), Fraction(0))


def normal_form(term: Term) -> Polynomial | None:
    """The expanded polynomial, or None if the term is not one (division by a non-constant, say)."""
    if not term.args:
        if term.op in VARIABLES:
            return {((term.op, 1),): Fraction(1)}
        value = numbers.value(term.op)
        return {(): value} if value else {}
    left, right = (normal_form(arg) for arg in term.args)
    if left is None or right is None:
        return None
    if term.op in "+-":
        return _plus(left, right, 1 if term.op == "+" else -1)
    if term.op == "*":
        return _times(left, right)
    divisor_or_exponent = _constant(right)
    if divisor_or_exponent is None:
        return None
    if term.op == "/":
        return None if divisor_or_exponent == 0 else {m: c / divisor_or_exponent for m, c in left.items()}
    if divisor_or_exponent.denominator != 1 or not 0 <= divisor_or_exponent <= 8:
        return None
    power: Polynomial = {(): Fraction(1)}
    for _ in range(int(divisor_or_exponent)):
        power = _times(power, left)
    return power


def polynomial_term(p: Polynomial) -> Term:
    """A polynomial written as a sum of coefficient * x ^ e * ... (what the engine must prove equal)."""
    if not p:
        return Term("0")
    summands = []
    for monomial, coefficient in sorted(p.items()):
        factors = [Term(variable) if exponent == 1 else Term("^", (Term(variable), Term(str(exponent))))
                   for variable, exponent in monomial]  # fmt: skip
        if coefficient != 1 or not factors:
            factors.insert(0, Term(numbers.spell(coefficient)))
        product = factors[0]
        for factor in factors[1:]:
            product = Term("*", (product, factor))
        summands.append(product)
    total = summands[0]
    for summand in summands[1:]:
        total = Term("+", (total, summand))
    return total


def random_term(rng: random.Random, height: int) -> Term:
    """A term of exactly this height: every path from the top is `height` operators long."""
    if height == 0:
        return Term(rng.choice(LEAVES))
    op = rng.choice("+-*/^")
    left = random_term(rng, height - 1)
    right = Term(rng.choice("0123")) if op == "^" else random_term(rng, height - 1)
    return Term(op, (left, right))
