"""Extraction builds the chosen term without recursion: a class whose cheapest term is a chain 100,000 deep
(as a state from the wire can hold) was a segmentation fault in the compiled engine (the C stack)."""

from __future__ import annotations

from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.extract import extract
from agentnet_runtime.core.terms import parse, size


def test_a_chain_100000_deep_is_extracted_and_printed():
    egraph = EGraph("deep")
    node = egraph.add_node("x")
    for _ in range(100_000):
        node = egraph.add_node("f", [node])
    term = extract(egraph, node)
    assert size(term) == 100_001
    assert str(term) == "f(" * 100_000 + "x" + ")" * 100_000


def test_shared_classes_are_built_once_and_alike():
    egraph = EGraph("shared")
    root = egraph.add_term(parse("(a + b) * (a + b) + f(a + b, c)"))
    assert str(extract(egraph, root)) == "(a + b) * (a + b) + f(a + b, c)"
