"""The engine's rules and terms in egglog, the baseline of the engine benchmarks.

egglog gets the same rules (rewrites.py) over its own exact rationals (`Rational`):
a rule's condition on a variable (number, nonzero, positive-integer) becomes the pattern
(Num v) with a `:when` test, arithmetic on numbers in a right side is computed by
egglog (collect-once builds (Num (+ a 1))), and a folding rule rewrites to the value,
with the same partiality as numbers.apply (no x / 0, only integer exponents within
numbers.MAX_EXPONENT, no 0 ^ -n).
"""

from fractions import Fraction

from agentnet_runtime.core import numbers
from agentnet_runtime.core.rewrites import FoldRule, Rule
from agentnet_runtime.core.terms import Term, is_number, is_pattern_var

OPS = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div", "^": "Pow"}
DATATYPE = "(datatype Math (Num Rational) (Var String) " + " ".join(f"({name} Math Math)" for name in OPS.values()) + ")\n"
ONE, ZERO = "(rational 1 1)", "(rational 0 1)"
_TESTS = {  # a condition's test on the (Num v) its variable matched
    "number": lambda v: [],
    "nonzero": lambda v: [f"(!= {v} {ZERO})"],
    "positive-integer": lambda v: [f"(= (denom {v}) 1)", f"(>= {v} {ONE})", f"(<= {v} (rational {numbers.MAX_EXPONENT} 1))"],
}


def rule(law: Rule, ruleset: str) -> str:
    """A rule as egglog rewrites (two for folding ^: egglog's pow fails on 0 ^ -n)."""
    valued = frozenset(variable for _, variable in law.conditions)
    when = [test for condition, variable in law.conditions for test in _TESTS[condition](variable[1:])]
    lhs = sexp(law.lhs, valued)
    if isinstance(law, FoldRule):
        op = law.lhs.op
        rhs = f"(Num ({op if op != '^' else 'pow'} a b))"
        if op == "/":
            when.append(f"(!= b {ZERO})")
        if op == "^":
            integer = ["(= (denom b) 1)", f"(<= b (rational {numbers.MAX_EXPONENT} 1))"]
            negative = ["(= (denom b) 1)", f"(< b {ZERO})", f"(>= b (rational -{numbers.MAX_EXPONENT} 1))", f"(!= a {ZERO})"]
            return _rewrite(lhs, rhs, ruleset, [*integer, f"(>= b {ZERO})"]) + _rewrite(lhs, rhs, ruleset, negative)
    else:
        rhs = sexp(law.rhs, valued, compute=True)
    return _rewrite(lhs, rhs, ruleset, when)


def _rewrite(lhs: str, rhs: str, ruleset: str, when: list[str]) -> str:
    condition = f" :when ({' '.join(when)})" if when else ""
    return f"(rewrite {lhs} {rhs}{condition} :ruleset {ruleset})\n"


def program(rulesets: dict[str, tuple[Rule, ...]]) -> str:
    """The datatype and each named ruleset."""
    text = DATATYPE
    for name, rules in rulesets.items():
        text += f"(ruleset {name})\n" + "".join(rule(each, name) for each in rules)
    return text


def sexp(term: Term, valued: frozenset[str] = frozenset(), compute: bool = False) -> str:
    """A term (or a rule's side) in egglog; `valued` variables are numbers, and with `compute` (a
    right side) arithmetic on numbers only is computed by egglog."""
    if is_pattern_var(term):
        return f"(Num {term.op[1:]})" if term.op in valued else term.op[1:]
    if is_number(term):
        return f"(Num {_rational(term.op)})"
    if not term.args:
        return f'(Var "{term.op}")'
    if compute and all(_numeric(arg, valued) for arg in term.args):
        return f"(Num {_arithmetic(term)})"
    return f"({OPS[term.op]} {' '.join(sexp(arg, valued, compute) for arg in term.args)})"


def _rational(numeral: str) -> str:
    value = numbers.value(numeral)
    return f"(rational {value.numerator} {value.denominator})"


def _numeric(term: Term, valued: frozenset[str]) -> bool:
    return term.op in valued or is_number(term) or (bool(term.args) and all(_numeric(arg, valued) for arg in term.args))


def _arithmetic(term: Term) -> str:
    """egglog's rational arithmetic for a term of numbers: (+ a (rational 1 1))."""
    if is_pattern_var(term):
        return term.op[1:]
    if not term.args:
        return _rational(term.op)
    return f"({term.op} {' '.join(_arithmetic(arg) for arg in term.args)})"


def from_sexp(text: str) -> Term:
    """egglog's printed term, e.g. (Add (Var "a") (Num (rational 2 1))), back into a Term."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    names = {name: op for op, name in OPS.items()}

    def read(position: int) -> tuple[Term, int]:
        name = tokens[position + 1]  # tokens[position] is "("
        if name == "Var":
            return Term(tokens[position + 2].strip('"')), position + 4
        if name == "Num":  # ( Num ( rational p q ) )
            value = Fraction(int(tokens[position + 4]), int(tokens[position + 5]))
            return Term(numbers.spell(value)), position + 8
        left, position = read(position + 2)
        right, position = read(position)
        return Term(names[name], (left, right)), position + 1

    return read(0)[0]
