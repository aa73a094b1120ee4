"""Refutation: two terms that take different values at some point are not equal.

A claim the e-graph has not derived is not thereby false; it is false when a
counterexample shows it: exact evaluation (numbers.py: rationals, numerals as
numbers) at a point where both sides have a value and the values differ. Every
rule of the engine holds at every point where both of its sides have a value, so a
counterexample never contradicts a derivation.

Variables get small random rationals (integers half the time, so that powers with a
variable exponent get a value); a function call f(...) is read as a random function
of its arguments' values (there is such a function, so a difference under it refutes
the claim as surely as one under +). Points are drawn from a seed, so the same
question gets the same answer.
"""

import random
from dataclasses import dataclass, field
from fractions import Fraction
from hashlib import blake2b

from . import numbers
from .terms import INFIX, Term

POINTS = 12  # points tried before giving up on refuting


@dataclass(frozen=True)
class Counterexample:
    """A point where both sides have a value and the values differ."""

    point: dict[str, Fraction]  # variable -> value
    lhs: Fraction
    rhs: Fraction
    functions: dict[str, Fraction] = field(default_factory=dict)  # call as written with values -> its value

    def to_json(self) -> dict:
        """Plain JSON: every value spelt as a numeral (7, -3, 2.5, 1/3)."""
        spell = numbers.spell
        return {
            "point": {name: spell(value) for name, value in sorted(self.point.items())},
            "lhs": spell(self.lhs),
            "rhs": spell(self.rhs),
            **({"functions": {call: spell(value) for call, value in self.functions.items()}} if self.functions else {}),
        }


class _Evaluation:
    """One point: values of variables and of function calls, chosen as they are first needed."""

    def __init__(self, rng: random.Random, seed: int):
        self.rng = rng
        self.seed = seed
        self.point: dict[str, Fraction] = {}
        self.functions: dict[str, Fraction] = {}

    def value(self, term: Term) -> Fraction | None:
        """The term's exact value at this point, or None where it has none (x / 0, say)."""
        op, args = term
        if not args:
            numeral = numbers.numeral_of(op)
            if numeral is not None:
                return numbers.value(numeral)
            if op not in self.point:
                self.point[op] = _draw(self.rng)
            return self.point[op]
        values = [value for value in [self.value(arg) for arg in args] if value is not None]
        if len(values) != len(args):
            return None
        if op in INFIX and len(values) == 2:
            return numbers.apply(op, values[0], values[1])
        call = f"{op}({', '.join(numbers.spell(value) for value in values)})"
        if call not in self.functions:
            self.functions[call] = _draw(random.Random(_digest(self.seed, call)))
        return self.functions[call]


def _draw(rng: random.Random) -> Fraction:
    """A small rational: an integer in -9..9 half the time, else p/q with q in 2..7."""
    if rng.random() < 0.5:
        return Fraction(rng.randint(-9, 9))
    return Fraction(rng.randint(-30, 30), rng.randint(2, 7))


def _digest(*parts: object) -> int:
    return int.from_bytes(blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def refute(lhs: Term, rhs: Term, seed: int = 0, points: int = POINTS) -> Counterexample | None:
    """A point where the two terms have different values, if one of `points` random points is one."""
    rng = random.Random(_digest(seed, lhs, rhs))
    for _ in range(points):
        evaluation = _Evaluation(rng, seed)
        left, right = evaluation.value(lhs), evaluation.value(rhs)
        if left is not None and right is not None and left != right:
            return Counterexample(evaluation.point, left, right, evaluation.functions)
    return None
