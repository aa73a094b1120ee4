"""Numbers are numbers: exact rational values with one spelling each, the constant-folding
analysis on the CRDT e-graph (replicas agree on it whatever the order of events), and folding."""

from fractions import Fraction

import pytest
from core_strategies import histories, play
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core import numbers
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.core.rewrites import FOLD_RULES, GREEN_RULES, parse_rule
from agentnet_runtime.core.saturate import saturate
from agentnet_runtime.core.terms import Term, TermSyntaxError, parse

fractions = st.fractions(max_denominator=10**6).filter(lambda value: abs(value) < 10**12)


@given(fractions)
def test_every_value_has_one_spelling_that_reads_back(value):
    spelling = numbers.spell(value)
    assert numbers.value(spelling) == value and numbers.canonical(spelling) == spelling
    assert numbers.numeral_of(spelling) == spelling and numbers.is_numeral(spelling)


@pytest.mark.parametrize(
    "written, spelling",
    [("007", "7"), ("2.50", "2.5"), ("2.0", "2"), ("0.125", "0.125"), ("6/4", "1.5"), ("-2/6", "-1/3"), ("1/3", "1/3")],
)
def test_spellings(written, spelling):
    assert numbers.canonical(written) == spelling


def test_the_parser_writes_one_spelling_per_number():
    assert parse("2.0 + 007") == parse("2 + 7")
    assert numbers.numeral_of("x") is None and numbers.numeral_of("1abc") is None


@pytest.mark.parametrize("numeral, printed", [("-3", "0 - 3"), ("1/3", "1 / 3"), ("-1/3", "0 - 1 / 3"), ("2.5", "2.5")])
def test_a_computed_numeral_prints_as_a_term_of_its_value(numeral, printed):
    assert str(Term(numeral)) == printed
    assert str(Term("*", (Term("x"), Term(numeral)))) == f"x * ({printed})" if " " in printed else f"x * {printed}"


@pytest.mark.parametrize("text, operator", [("x % y", "%"), ("x <= y", "<="), ("a & b", "&")])
def test_an_operator_without_laws_is_refused_by_name(text, operator):
    with pytest.raises(TermSyntaxError, match=f"operator '{operator}' is not supported: the engine has no laws"):
        parse(text)


numerals = st.sampled_from(["1", "2", "1.5", "-3", "1/3", numbers.CONFLICT])


@given(st.none() | numerals, numerals, numerals)
def test_the_analysis_join_is_a_semilattice(a, b, c):
    join = numbers.join
    if a is not None:
        assert join(a, a) == a and join(a, b) == join(b, a)
        assert join(join(a, b), c) == join(a, join(b, c))
    assert join(None, b) == b


@pytest.mark.parametrize(
    "op, left, right, result",
    [("+", 1, 1, 2), ("-", 1, 4, -3), ("*", 2, 2, 4), ("/", 6, 4, Fraction(3, 2)), ("^", 2, 10, 1024),
     ("^", 2, -1, Fraction(1, 2)), ("/", 1, 0, None), ("^", 2, Fraction(1, 2), None), ("^", 0, -1, None),
     ("^", 2, numbers.MAX_EXPONENT + 1, None)],
)  # fmt: skip
def test_arithmetic_is_exact_and_partial(op, left, right, result):
    assert numbers.apply(op, Fraction(left), Fraction(right)) == result


def folded(*texts: str) -> tuple[EGraph, list[str]]:
    egraph = EGraph("a")
    classes = [egraph.add_term(parse(text)) for text in texts]
    assert saturate(egraph, FOLD_RULES).saturated
    return egraph, [egraph.find(cls) for cls in classes]


def test_numbers_fold_into_one_class_with_their_value():
    egraph, classes = folded("2 * 2", "1 + 1 + 2", "4", "2 ^ 2")
    assert len(set(classes)) == 1 and egraph.number(classes[0]) == "4"
    egraph, classes = folded("6 / 4", "3 / 2", "1.5", "0.5 + 1")
    assert len(set(classes)) == 1 and egraph.number(classes[0]) == "1.5"
    egraph, (third, negative) = folded("1 / 3", "1 - 4")
    assert egraph.number(third) == "1/3" and egraph.number(negative) == "-3"


def test_what_has_no_value_is_not_folded():
    egraph, (by_zero, root, variable) = folded("1 / 0", "2 ^ (1 / 2)", "x + 1")
    assert egraph.number(by_zero) is None and egraph.number(root) is None and egraph.number(variable) is None
    assert len(egraph) == 9  # the terms' 8 e-nodes and 0.5 (1 / 2 folded): nothing for what has no value
    egraph = EGraph("a")
    cls = egraph.add_term(parse("x / 0"))
    saturate(egraph, GREEN_RULES)
    assert egraph.lookup(parse("x * (1 / 0)")) is None and egraph.number(cls) is None  # 0 is no divisor


def test_two_different_numbers_asserted_equal_have_no_value():
    egraph = EGraph("a")
    one, two, three = (egraph.add_term(parse(n)) for n in ("1", "2", "1 + 2"))
    egraph.union(one, two)
    egraph.rebuild()
    assert egraph.number(one) is None
    saturate(egraph, FOLD_RULES)
    assert egraph.number(three) is None  # folding does not compute with a class of no single value


def test_a_condition_holds_only_for_a_class_whose_value_passes_it():
    rule = parse_rule("?a / ?b => ?a * (1 / ?b) if nonzero(?b)")
    egraph = EGraph("a")
    egraph.add_term(parse("x / 0"))
    egraph.add_term(parse("x / y"))
    good = egraph.add_term(parse("x / 2"))
    assert [match[0] for match in rule.search(egraph)] == [egraph.root(good)]
    assert rule.depth == 2  # a class that gains a value can make a match hold one level down


number_histories = histories(numbers=st.sampled_from(["0", "1", "2", "0.5"]), operators=("+", "*", "-", "/"))


@settings(max_examples=60)
@given(number_histories, number_histories, st.randoms(use_true_random=False))
def test_replicas_agree_on_every_class_value_whatever_the_order_of_events(first, second, rng):
    source = play(EGraph("a"), first)
    saturate(source, FOLD_RULES)
    play(source, second)
    events = [Delta({}, {}, (batch,)) for batch in source.delta_since({}).batches]
    rng.shuffle(events)
    replica = EGraph("b")
    for delta in events:
        replica.join(delta)
    assert replica.digest() == source.digest()
    assert {node: replica.number(node) for node in source._nodes} == {node: source.number(node) for node in source._nodes}
