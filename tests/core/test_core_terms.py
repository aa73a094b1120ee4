import pytest
from core_strategies import terms
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.terms import Term, TermLimitError, TermSyntaxError, num, parse, size, var, variables


@settings(max_examples=200)
@given(terms())
def test_print_then_parse_round_trips(term):
    assert parse(str(term)) == term


@settings(max_examples=100)
@given(terms())
def test_printing_is_stable(term):
    text = str(term)
    assert str(parse(text)) == text


@pytest.mark.parametrize(
    "text, printed",
    [
        ("(a + b) * c", "(a + b) * c"),
        ("a + b * c", "a + b * c"),
        ("a+b+c", "a + b + c"),  # left-associative
        ("a + (b + c)", "a + (b + c)"),
        ("a - (b - c)", "a - (b - c)"),
        ("2 ^ 3 ^ 4", "2 ^ 3 ^ 4"),  # right-associative
        ("(2 ^ 3) ^ 4", "(2 ^ 3) ^ 4"),
        ("f(x, y + 1) * 3", "f(x, y + 1) * 3"),
        ("  ((x))  ", "x"),
        ("007 + 2.50", "7 + 2.5"),  # one spelling per number
    ],
)
def test_parse_and_print(text, printed):
    assert str(parse(text)) == printed


def test_structure():
    term = parse("(a + b) * c")
    assert term == Term("*", (Term("+", (var("a"), var("b"))), var("c")))
    assert size(term) == 5
    assert num(7) == parse("7") and num("2.50") == parse("2.5")
    assert repr(term) == "parse('(a + b) * c')"


@pytest.mark.parametrize(
    "text, column, words",
    [
        ("a +", 4, "end of input"),
        ("(a + b", 7, "expected ')'"),
        ("a b", 3, "unexpected 'b'"),
        ("a $ b", 3, "unexpected character '$'"),
        ("", 1, "expected a number, variable or '('"),
        ("f()", 3, "found ')'"),
        ("?x + 1", 1, "pattern variable '?x' outside a rule"),
    ],
)
def test_bad_text_says_where_and_what(text, column, words):
    with pytest.raises(TermSyntaxError) as raised:
        parse(text)
    assert raised.value.position + 1 == column
    assert f"column {column}" in str(raised.value)
    assert words in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_patterns():
    pattern = parse("(?a + ?b) * ?a", patterns=True)
    assert variables(pattern) == {"?a", "?b"}
    assert str(pattern) == "(?a + ?b) * ?a"


# --- limits: no recursion, refused by name -------------------------------------------------------------


def _depth(term):
    """Levels of the syntax tree (a leaf is 1), walked without recursion."""
    deepest, todo = 0, [(term, 1)]
    while todo:
        term, level = todo.pop()
        deepest = max(deepest, level)
        todo.extend((arg, level + 1) for arg in term.args)
    return deepest


@pytest.mark.parametrize(
    "text, limit",
    [
        ("(" * 50_000 + "x" + ")" * 50_000, "maxTermDepth"),  # brackets
        ("(" * 50_000 + "x" + " + 1)" * 50_000, "maxTermSize"),  # too many nodes before too deep
        ("x" + "^x" * 4_000, "maxTermDepth"),  # right-associative: the parser's stack, not Python's
        ("f(" * 3_000 + "x" + ")" * 3_000, "maxTermDepth"),
        (" + ".join(["x"] * 20_000), "maxTermSize"),
    ],
)
def test_terms_past_the_limits_are_refused_by_name_not_by_recursion(text, limit):
    with pytest.raises(TermLimitError) as raised:
        parse(text)
    assert raised.value.limit == limit and f"{limit} = " in str(raised.value)
    assert isinstance(raised.value, TermSyntaxError)


def test_a_term_50000_deep_parses_and_prints_when_the_limit_allows_it():
    text = "x" + " + 1" * 50_000  # left-associative: 50,001 levels
    term = parse(text, max_depth=60_000, max_size=200_000)
    assert _depth(term) == 50_001 and size(term) == 100_001
    assert str(term) == text  # the printer walks it without recursion
    nested = "(" * 50_000 + "a - b" + ")" * 50_000
    assert str(parse(nested, max_depth=60_000)) == "a - b"


@settings(max_examples=200)
@given(terms(), st.integers(1, 12))
def test_a_term_is_refused_exactly_when_it_is_deeper_or_larger_than_the_limit(term, limit):
    text = str(term)
    deep, large = _depth(term) > limit, size(term) > 3 * limit
    if deep or large:
        with pytest.raises(TermLimitError):
            parse(text, max_depth=limit, max_size=3 * limit)
    else:
        assert parse(text, max_depth=limit, max_size=3 * limit) == term
