"""The built-in rules' search and apply compiled by mypyc (setup.py writes their source to a module,
rewrites.native_module): what runs is compiled exactly when the engine is, and it does what the same
source does as Python bytecode (the way a user's rule runs)."""

import pytest
from core_strategies import arith_terms, terms
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core import compiled_modules
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.rewrites import ALL_RULES, RED_RULES, _interpret, parse_rules
from agentnet_runtime.core.saturate import Budget, saturate

pytestmark = pytest.mark.timeout(120)

NATIVE = "agentnet_runtime.core.generated_rules"
# A user's rules: one the built-in ones do not have, and one that is a built-in one with other names.
USER_RULES = parse_rules("""
    f(?a) => g(?a, ?a)
    ?y + ?y => 2 * ?y
    """)
CALL_TERMS = terms(("+", "*", "-", "/", "^"), calls=True, variables=st.sampled_from("ab"),
                   numbers=st.sampled_from(["0", "1", "2"]), max_leaves=6)


def runs_native(rule) -> bool:
    search, apply, _, _ = rule._compiled
    assert search.__module__ == apply.__module__
    return search.__module__ == NATIVE


def test_the_built_in_rules_run_compiled_exactly_when_the_engine_is():
    compiled = "generated_rules" in compiled_modules()
    assert [rule.name for rule in ALL_RULES if runs_native(rule) != compiled] == []
    # A rule is found by its source, whatever its name and variables are called.
    assert [runs_native(rule) for rule in USER_RULES] == [False, compiled]


@settings(max_examples=30)
@given(st.lists(arith_terms | CALL_TERMS, min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=2))
def test_compiled_rules_do_what_their_source_does(term_list, unions):
    """Every rule's search finds the same matches in the same order, and applying them makes the
    same e-graph (digest) and says the same number applied, under a node limit too."""
    egraph = EGraph("a")
    roots = [egraph.add_term(term) for term in term_list]
    for i, j in unions:
        egraph.union(roots[i % len(roots)], roots[j % len(roots)])
    saturate(egraph, RED_RULES, Budget(iterations=2, nodes=400))  # merges, several shapes a class
    egraph.rebuild()
    classes, values = egraph.class_index(), egraph._numbers
    for rule in ALL_RULES + USER_RULES:
        search, apply, source, _ = rule._compiled
        python_search, python_apply = _interpret(source, rule.name)
        tops = [(shape, root) for root, shapes in classes.items() if root not in values
                for shape in shapes if shape[0] == rule.lhs.op]
        matches = search(classes, values, tops, None)
        assert matches == python_search(classes, values, tops, None), str(rule)
        if not matches:
            continue
        for limit in (float("inf"), len(egraph) + 1):
            ours, theirs = egraph.fork("b"), egraph.fork("b")
            ours.class_index(), theirs.class_index()
            assert apply(matches, ours, rule.colour.bit, limit) == python_apply(matches, theirs, rule.colour.bit, limit)
            assert ours.digest() == theirs.digest(), str(rule)
