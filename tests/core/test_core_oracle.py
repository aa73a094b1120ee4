"""The equality oracle: the engine's three answers checked against arithmetic the test does itself.

Random terms over all five operators, each paired either with its own expanded polynomial
normal form (a true identity) or with another random term (nearly always not one):

- never "equal" when the two sides take different values at some rational point
  (exact evaluation here, zero tolerance);
- never "unequal" when they agree everywhere, which the test knows from a polynomial
  normal form it computes itself (a dict of monomials), and the counterexample an
  "unequal" shows must check out;
- the share of true identities proven is reported (hypothesis events, and printed by
  test_share_of_true_identities_proven).
"""

import random
from fractions import Fraction

from hypothesis import currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from agentnet_runtime.core import numbers
from agentnet_runtime.core.saturate import Budget, Saturator
from agentnet_runtime.core.terms import Term

VARIABLES = ("x", "y", "z")
BUDGET = Budget(iterations=30, nodes=10_000, seconds=1.0)  # the Saturator's default

# --- the test's own arithmetic -------------------------------------------------------------------

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


# --- random terms ----------------------------------------------------------------------------------

leaves = st.sampled_from(VARIABLES + ("0", "1", "2", "3", "0.5")).map(Term)
exponents = st.sampled_from(["0", "1", "2", "3"]).map(Term)


def terms(depth: int) -> st.SearchStrategy[Term]:
    """Terms of height at most `depth` over + - * / ^ (exponents mostly small numerals)."""
    if depth == 0:
        return leaves
    smaller = terms(depth - 1)
    binary = st.tuples(st.sampled_from("+-*/"), smaller, smaller).map(lambda t: Term(t[0], (t[1], t[2])))
    power = st.tuples(smaller, exponents | smaller).map(lambda t: Term("^", t))
    return leaves | binary | binary | power


@st.composite
def claims(draw, depth: int = 3) -> tuple[Term, Term]:
    """(term, its expanded normal form) half the time, else (term, another random term)."""
    lhs = draw(terms(depth))
    form = normal_form(lhs)
    if form is not None and draw(st.booleans()):
        return lhs, polynomial_term(form)
    return lhs, draw(terms(depth))


def values_differ_somewhere(lhs: Term, rhs: Term, rng: random.Random, points: int = 30) -> bool:
    for _ in range(points):
        point = {name: Fraction(rng.randint(-40, 40), rng.randint(1, 9)) for name in VARIABLES}
        if rng.random() < 0.3:
            point = {name: Fraction(rng.randint(-5, 5)) for name in VARIABLES}  # exponents need integers
        left, right = value_at(lhs, point), value_at(rhs, point)
        if left is not None and right is not None and left != right:
            return True
    return False


def judge(lhs: Term, rhs: Term, saturator: Saturator) -> str:
    """Check the engine's answer against the test's arithmetic; return what kind of claim it was."""
    verdict = saturator.verify(lhs, rhs)
    forms = normal_form(lhs), normal_form(rhs)
    identity = forms[0] is not None and forms[0] == forms[1]
    if verdict.equal is True:
        assert not values_differ_somewhere(lhs, rhs, random.Random(str((lhs, rhs)))), f"{lhs} = {rhs} derived, but false"
    elif verdict.equal is False:
        assert not identity, f"{lhs} = {rhs} is an identity, but was answered unequal"
        example = verdict.counterexample
        point = {name: value for name, value in example.point.items()}
        assert value_at(lhs, point) == example.lhs != example.rhs == value_at(rhs, point), example
    if identity:
        kind = "identity proven" if verdict.equal else "identity not proven"
    else:
        kind = f"other claim: {verdict.verdict}"
    if currently_in_test_context():
        event(kind)
    return kind


@settings(max_examples=150, deadline=None)
@given(claims())
def test_the_engine_never_contradicts_arithmetic(claim):
    judge(*claim, Saturator(budget=Budget(iterations=30, nodes=4_000, seconds=0.3)))


def random_term(rng: random.Random, height: int) -> Term:
    """A term of exactly this height: every path from the top is `height` operators long."""
    if height == 0:
        return Term(rng.choice(VARIABLES + ("0", "1", "2", "3", "0.5")))
    op = rng.choice("+-*/^")
    left = random_term(rng, height - 1)
    right = Term(rng.choice("0123")) if op == "^" else random_term(rng, height - 1)
    return Term(op, (left, right))


def test_share_of_true_identities_proven(capsys):
    """Random true polynomial identities: a term of height 3 (seeded, not shrunk towards small
    ones) and its expanded normal form, under the default budget. The share proven is printed;
    the test fails only if it falls below half."""
    rng, saturator = random.Random(3), Saturator(budget=BUDGET)
    outcomes: list[str] = []
    while len(outcomes) < 100:
        term = random_term(rng, 3)
        form = normal_form(term)
        if form is not None:
            outcomes.append(judge(term, polynomial_term(form), saturator))
    proven = outcomes.count("identity proven")
    with capsys.disabled():
        print(f"\ntrue polynomial identities of height 3 proven: {proven}/{len(outcomes)}")
    assert proven / len(outcomes) >= 0.5
