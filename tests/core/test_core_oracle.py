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

from agentnet_runtime.core.saturate import Budget, Saturator
from agentnet_runtime.core.terms import Term
from polynomials import LEAVES, VARIABLES, normal_form, polynomial_term, random_term, value_at

BUDGET = Budget(iterations=30, nodes=10_000, seconds=1.0)  # the Saturator's default

# --- random terms ----------------------------------------------------------------------------------

leaves = st.sampled_from(LEAVES).map(Term)
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


@settings(max_examples=150)
@given(claims())
def test_the_engine_never_contradicts_arithmetic(claim):
    judge(*claim, Saturator(budget=Budget(iterations=30, nodes=4_000, seconds=0.3)))


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
