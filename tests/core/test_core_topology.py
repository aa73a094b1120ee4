import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.topology import (
    TOPOLOGY_KINDS,
    TopologyError,
    build_topology,
    check_topology,
    nontrivial_spectral_radius,
    rook_graph,
)

# (agents, degree) for the Ramanujan sizes the issue asks for, where agents*degree is even.
RAMANUJAN_CASES = [(n, d) for n in (9, 64, 256, 1000) for d in (3, 4, 6) if n * d % 2 == 0]


def dense_nontrivial_radius(graph: nx.Graph, degree: int) -> float:
    """The reference: every eigenvalue by a dense solve, less d once (and -d once when bipartite)."""
    eigenvalues = np.sort(np.linalg.eigvalsh(nx.to_numpy_array(graph, nodelist=range(graph.number_of_nodes()))))
    nontrivial = eigenvalues[:-1]
    if nx.is_bipartite(graph):
        nontrivial = nontrivial[1:]
    return float(np.abs(nontrivial).max()) if nontrivial.size else 0.0


def assert_ramanujan(graph: nx.Graph, degree: int) -> None:
    """Independent check: connected, d-regular, non-trivial |eigenvalues| <= 2 sqrt(d - 1)."""
    assert nx.is_connected(graph)
    assert {d for _, d in graph.degree()} == {degree}
    eigenvalues = np.sort(np.linalg.eigvalsh(nx.to_numpy_array(graph, nodelist=sorted(graph))))
    assert abs(eigenvalues[-1] - degree) < 1e-8 and eigenvalues[-2] < degree - 1e-8  # d once: connected
    nontrivial = eigenvalues[:-1]
    if nx.is_bipartite(graph):
        nontrivial = nontrivial[1:]  # -d is trivial for a bipartite graph
    assert np.abs(nontrivial).max() <= 2 * math.sqrt(degree - 1) + 1e-9


@pytest.mark.parametrize("agents, degree", RAMANUJAN_CASES)
def test_ramanujan_graphs_meet_the_bound(agents, degree):
    graph = build_topology("ramanujan", agents, degree=degree, seed=7)
    assert sorted(graph) == list(range(agents))
    assert_ramanujan(graph, degree)
    assert graph.graph["kind"] == "ramanujan" and graph.graph["degree"] == degree


@settings(max_examples=60)
@given(agents=st.integers(4, 120), degree=st.integers(3, 8), seed=st.integers(0, 2**32 - 1), parts=st.integers(1, 3))
def test_spectral_radius_matches_a_dense_eigensolve(agents, degree, seed, parts):
    """Lanczos agrees with every eigenvalue solved densely: regular graphs, disconnected ones (d repeats,
    so the radius is d) and bipartite ones (-d is trivial) alike."""
    size = max(4, agents // parts)
    if degree >= size or size * degree % 2:
        degree = 3 if size > 3 and size % 2 == 0 else 2
    graph = nx.Graph()
    for part in range(parts):  # `parts` random regular components, numbered on
        graph = nx.disjoint_union(graph, nx.random_regular_graph(degree, size, seed=seed + part))
    assert nontrivial_spectral_radius(graph, degree) == pytest.approx(dense_nontrivial_radius(graph, degree), abs=1e-8)


@pytest.mark.parametrize("graph, degree", [(nx.cycle_graph(10), 2), (nx.complete_bipartite_graph(4, 4), 4),
                                           (nx.convert_node_labels_to_integers(nx.hypercube_graph(5)), 5),
                                           (nx.complete_graph(6), 5), (rook_graph(3), 4)])  # fmt: skip
def test_spectral_radius_of_known_spectra(graph, degree):
    assert nontrivial_spectral_radius(graph, degree) == pytest.approx(dense_nontrivial_radius(graph, degree), abs=1e-8)


def edges(graph: nx.Graph) -> set[frozenset]:
    return {frozenset(edge) for edge in graph.edges()}


def test_ramanujan_is_deterministic_per_seed():
    first = build_topology("ramanujan", 64, degree=3, seed=1)
    assert edges(first) == edges(build_topology("ramanujan", 64, degree=3, seed=1))
    assert edges(first) != edges(build_topology("ramanujan", 64, degree=3, seed=2))


def test_nine_agents_degree_four_is_the_rook_graph():
    graph = build_topology("ramanujan", 9, seed=123)  # degree defaults to 4
    assert edges(graph) == edges(rook_graph(3))
    assert nx.is_isomorphic(graph, nx.cartesian_product(nx.complete_graph(3), nx.complete_graph(3)))


def test_ring_complete_and_torus():
    assert TOPOLOGY_KINDS == ("ring", "torus", "complete", "ramanujan")
    ring = build_topology("ring", 5)
    assert nx.is_isomorphic(ring, nx.cycle_graph(5))
    assert build_topology("ring", 1).number_of_edges() == 0 and build_topology("ring", 2).number_of_edges() == 1
    assert build_topology("complete", 6).number_of_edges() == 15
    torus = build_topology("torus", 12)  # 3 x 4
    assert nx.is_isomorphic(torus, nx.grid_2d_graph(3, 4, periodic=True))
    assert torus.graph["sides"] == (3, 4)
    cube = build_topology("torus", 27, dimensions=3)
    assert nx.is_isomorphic(cube, nx.grid_graph(dim=[3, 3, 3], periodic=True))
    assert {d for _, d in cube.degree()} == {6}
    assert build_topology("torus", 36).graph["sides"] == (6, 6)  # the most even split
    for graph in (ring, torus, cube):
        assert sorted(graph) == list(range(graph.number_of_nodes()))


@pytest.mark.parametrize(
    "kind, agents, options, reason",
    [
        ("ramanujan", 9, {"degree": 3}, "ramanujan topology needs agents*degree to be even (got 9*3=27)"),
        ("ramanujan", 4, {"degree": 4}, "needs degree < agents (got degree 4 with 4 agents)"),
        ("ramanujan", 10, {"degree": 2}, "needs degree >= 3"),
        ("ramanujan", 10_000, {"degree": 4}, "at most 5000 agents"),
        ("torus", 7, {}, "(got 7, which is prime)"),
        ("torus", 10, {}, "at least 3 each (got 10 = 2x5)"),
        ("torus", 40, {"dimensions": 3}, "3 sides of at least 3 each (got 40 = 2x2x2x5)"),
        ("torus", 27, {"dimensions": 4}, "torus dimensions must be 2 or 3"),
        ("ring", 0, {}, "at least 1 agent"),
        ("ring", 5, {"degree": 4}, "ring topology with 5 agents has degree 2"),
        ("mesh", 5, {}, "unknown topology kind 'mesh'"),
    ],
)
def test_impossible_topologies_say_why(kind, agents, options, reason):
    found = check_topology(kind, agents, **options)
    assert found is not None and reason in found
    with pytest.raises(TopologyError) as raised:
        build_topology(kind, agents, **options)
    assert str(raised.value) == found
    assert isinstance(raised.value, ValueError)


def test_possible_topologies_check_clean():
    assert check_topology("ramanujan", 1000, degree=6) is None
    assert check_topology("torus", 64, dimensions=3) is None
    assert check_topology("complete", 4, degree=3) is None
