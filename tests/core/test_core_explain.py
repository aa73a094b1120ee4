"""Explanations replay: every step of a proof path is one rule really rewriting one subterm.

The checker here is the test's own (syntactic matching, its own arithmetic for folds), not
the engine's: a step is valid when the subterm at its path matches the rule's left side
(right side, backward), the conditions hold on what the variables are bound to, the new
subterm is the other side under the same binding, and nothing else changed. A path starts
at the claim's left side and ends at its right side, and every equal answer has one.
"""

import random
from fractions import Fraction

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.explain import Explanation
from agentnet_runtime.core.rewrites import ALL_RULES, FoldRule, Rule
from agentnet_runtime.core.saturate import Budget, Saturator
from agentnet_runtime.core.terms import Term, is_pattern_var, parse
from polynomials import VARIABLES, normal_form, polynomial_term, random_term, value_at

RULES: dict[str, Rule] = {rule.name: rule for rule in ALL_RULES}


def match(pattern: Term, term: Term, binding: dict[str, Term]) -> bool:
    if is_pattern_var(pattern):
        return binding.setdefault(pattern.op, term) == term
    return (
        pattern.op == term.op
        and len(pattern.args) == len(term.args)
        and all(match(sub, arg, binding) for sub, arg in zip(pattern.args, term.args))
    )


def instantiate(pattern: Term, binding: dict[str, Term]) -> Term:
    if is_pattern_var(pattern):
        return binding[pattern.op]
    return Term(pattern.op, tuple(instantiate(arg, binding) for arg in pattern.args))


def subterm(term: Term, path: tuple[int, ...]) -> Term:
    for position in path:
        term = term.args[position]
    return term


def replaced(term: Term, path: tuple[int, ...], new: Term) -> Term:
    if not path:
        return new
    args = list(term.args)
    args[path[0]] = replaced(args[path[0]], path[1:], new)
    return Term(term.op, tuple(args))


def numeral(term: Term) -> Fraction | None:
    if term.args:
        return None
    try:
        return Fraction(term.op)
    except ValueError:
        return None


CONDITIONS = {
    "number": lambda value: True,
    "nonzero": lambda value: value != 0,
    "positive-integer": lambda value: value.denominator == 1 and value >= 1,
}


def rewrites(rule: Rule, source: Term, target: Term) -> bool:
    """Does one application of `rule` at the top turn `source` into `target`?"""
    if isinstance(rule, FoldRule):  # both operands numerals, the result their exact value
        operands = [numeral(arg) for arg in source.args]
        return (
            source.op == rule.lhs.op
            and None not in operands
            and numeral(target) is not None
            and value_at(source, {}) == numeral(target)
        )
    binding: dict[str, Term] = {}
    if not match(rule.lhs, source, binding):
        return False
    for condition, variable in rule.conditions:
        value = numeral(binding[variable])
        if value is None or not CONDITIONS[condition](value):
            return False
    return instantiate(rule.rhs, binding) == target


def assert_replays(explanation: Explanation, lhs: Term, rhs: Term) -> None:
    assert explanation.start == lhs
    current = lhs
    for step in explanation.steps:
        old, new = subterm(current, step.path), subterm(step.term, step.path)
        assert replaced(current, step.path, new) == step.term, f"{step} changes more than the subterm at its path"
        source, target = (old, new) if step.forward else (new, old)
        assert rewrites(RULES[step.rule], source, target), f"{step.rule} does not rewrite {source} to {target}"
        current = step.term
    assert current == rhs
    passed = [lhs] + [step.term for step in explanation.steps]
    assert len(set(passed)) == len(passed), "the path passes a term twice (a loop left in)"


@pytest.mark.parametrize(
    "lhs, rhs",
    [
        ("2*2", "4"),
        ("1+1", "2"),
        ("6/4", "3/2"),
        ("x+x", "2*x"),
        ("(x+1)*(x+1)", "x*x+2*x+1"),
        ("(2*(2*1))*(x+(z*z))", "4*x + 4*z*z"),
        ("x - y", "x + (0 - 1) * y"),
        ("x ^ 3", "x * x * x"),
        ("f(x + 0, y * 1)", "f(x, y)"),  # congruence below an uninterpreted call
        ("x * (y + z)", "z * x + x * y"),
    ],
)
def test_every_equal_answer_has_a_path_that_replays(lhs: str, rhs: str):
    saturator = Saturator()
    assert saturator.verify(lhs, rhs).equal is True
    explanation = saturator.explain(lhs, rhs)
    assert explanation is not None
    assert_replays(explanation, parse(lhs), parse(rhs))


@pytest.mark.parametrize("lhs, rhs", [("x / x", "1"), ("(x+y)^2", "x^2 + y^2")])
def test_no_path_for_what_was_not_derived(lhs: str, rhs: str):
    saturator = Saturator()
    assert saturator.verify(lhs, rhs).equal is not True
    assert saturator.explain(lhs, rhs) is None


def test_a_step_that_is_no_rewrite_fails_the_replay():
    """The checker can fail: a path with a step its rule does not make is refused."""
    explanation = Saturator().explain("x + x", "2 * x")
    assert explanation is not None
    (step,) = explanation.steps
    forged = Explanation(explanation.start, (type(step)("add-comm", True, step.path, step.term),))
    with pytest.raises(AssertionError):
        assert_replays(forged, parse("x + x"), parse("2 * x"))


# Shared: explanations of repeated claims come from its memo. Its iterations and nodes, not the clock, end a
# search: with the default 1 s, a busy machine let verify give up on an identity that explain then proved.
SATURATOR = Saturator(budget=Budget(seconds=60.0))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32), height=st.sampled_from([1, 2, 3]))
@example(seed=37, height=2)  # verify stops at its node limit; the proof graph, folding eagerly, had joined the sides
def test_random_true_identities_explained_step_by_step(seed: int, height: int):
    """Every proven random polynomial identity has a path; every step keeps the value (soundness)."""
    rng = random.Random(seed)
    lhs = random_term(rng, height)
    form = normal_form(lhs)
    if form is None:  # no polynomial value (a division by a non-constant): not an identity to test
        event("no normal form")
        return
    rhs = polynomial_term(form)
    verdict = SATURATOR.verify(lhs, rhs)
    event(f"height {height}: {verdict.verdict}")
    if verdict.equal is not True:
        assert SATURATOR.explain(lhs, rhs) is None
        return
    explanation = SATURATOR.explain(lhs, rhs)
    assert explanation is not None
    assert_replays(explanation, lhs, rhs)
    event(f"steps: {'<10' if len(explanation.steps) < 10 else '<100' if len(explanation.steps) < 100 else '100+'}")
    point = {name: Fraction(rng.randint(-9, 9), rng.randint(1, 4)) for name in VARIABLES}
    values = [value_at(term, point) for term in (lhs, *[step.term for step in explanation.steps])]
    assert len({value for value in values if value is not None}) <= 1
