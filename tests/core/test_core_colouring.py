import itertools
import re

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.colouring import colour_graph, display_palette, is_proper
from agentnet_runtime.core.topology import build_topology


def three_colourable(graph: nx.Graph) -> bool:
    nodes = sorted(graph)
    return any(
        all(assignment[nodes.index(u)] != assignment[nodes.index(v)] for u, v in graph.edges())
        for assignment in itertools.product(range(3), repeat=len(nodes))
    )


def assert_consistent(graph, colouring):
    assert set(colouring.best_effort) == set(graph)
    assert colouring.conflicts == [] if colouring.proper else colouring.conflicts
    for u, v in colouring.conflicts:
        assert graph.has_edge(u, v) and colouring.best_effort[u] == colouring.best_effort[v]
    if colouring.proper:
        assert is_proper(graph, colouring.colours) and colouring.colours == colouring.best_effort
        assert set(colouring.colours.values()) <= set(Colour)


@pytest.mark.parametrize(
    "kind, agents, options",
    [
        ("ring", 7, {}),
        ("ring", 8, {}),
        ("torus", 9, {}),
        ("torus", 20, {}),
        ("torus", 27, {"dimensions": 3}),
        ("complete", 3, {}),
        ("ramanujan", 9, {"degree": 4}),
        ("ramanujan", 64, {"degree": 3}),
        ("ramanujan", 256, {"degree": 4}),
        ("ramanujan", 1000, {"degree": 3}),
        ("ramanujan", 1000, {"degree": 4}),
    ],
)
def test_colourable_topologies_get_a_proper_colouring(kind, agents, options):
    graph = build_topology(kind, agents, **options)
    colouring = colour_graph(graph)
    assert colouring.proper and colouring.exhaustive
    assert_consistent(graph, colouring)


@pytest.mark.parametrize("agents", [4, 5, 8])
def test_complete_graphs_on_four_or_more_have_no_proper_colouring(agents):
    graph = build_topology("complete", agents)
    colouring = colour_graph(graph)
    assert not colouring.proper and colouring.colours is None and colouring.exhaustive
    assert "K4" in colouring.reason and colouring.conflicts
    assert_consistent(graph, colouring)


def test_wheel_with_odd_rim_is_proven_impossible_by_search():
    graph = nx.wheel_graph(6)  # hub + 5-cycle: no K4, still needs 4 colours
    colouring = colour_graph(graph)
    assert not colouring.proper and colouring.exhaustive and "exhaustive search" in colouring.reason
    assert_consistent(graph, colouring)


def test_dense_ramanujan_graph_gets_a_best_effort_report():
    graph = build_topology("ramanujan", 256, degree=6)
    colouring = colour_graph(graph)
    assert_consistent(graph, colouring)
    if not colouring.proper:
        assert colouring.reason and len(colouring.conflicts) < graph.number_of_edges() // 5


def test_a_self_loop_can_never_be_coloured():
    graph = nx.path_graph(3)
    graph.add_edge(1, 1)
    colouring = colour_graph(graph)
    assert not colouring.proper and (1, 1) in colouring.conflicts and "self-loop" in colouring.reason


@settings(max_examples=150)
@given(
    st.integers(1, 8).flatmap(
        lambda n: st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=20).map(lambda e: (n, e))
    )
)
def test_colouring_agrees_with_brute_force(case):
    n, edges = case
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((u, v) for u, v in edges if u != v)
    colouring = colour_graph(graph)
    assert colouring.exhaustive
    assert colouring.proper == three_colourable(graph)
    assert_consistent(graph, colouring)


def test_display_palette_is_deterministic_hex():
    palette = display_palette(12, seed=3)
    assert palette == display_palette(12, seed=3) and palette != display_palette(12, seed=4)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", colour) for colour in palette)
    assert len(set(palette)) == 12
    assert display_palette(5) == display_palette(8)[:5]  # a spiral: more colours extend it
    assert display_palette(0) == []
