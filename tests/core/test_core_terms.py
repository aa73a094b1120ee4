import pytest
from core_strategies import terms
from hypothesis import given, settings

from agentnet_runtime.core.terms import Term, TermSyntaxError, num, parse, size, var, variables


@settings(max_examples=200, deadline=None)
@given(terms())
def test_print_then_parse_round_trips(term):
    assert parse(str(term)) == term


@settings(max_examples=100, deadline=None)
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
