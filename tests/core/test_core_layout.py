"""core/layout.py: a picture of each topology kind, up to 10,000 agents, with numpy and networkx only."""

import math
from functools import lru_cache

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.layout import FORCE_AGENTS, positions
from agentnet_runtime.core.topology import build_topology, torus_sides


@lru_cache(maxsize=None)
def picture(kind: str, agents: int, **topology) -> tuple[nx.Graph, list[tuple[float, float]]]:
    graph = build_topology(kind, agents, **topology)
    neighbours = [sorted(graph.neighbors(i)) for i in range(agents)]
    return graph, positions({"kind": kind, **topology}, neighbours)


def assert_fits_the_page(points: list[tuple[float, float]]) -> None:
    assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in points)
    assert len(set(points)) == len(points), "two agents on one spot"


def test_a_ring_and_a_clique_are_circles():
    for kind, agents in (("ring", 1000), ("complete", 40)):
        _, points = picture(kind, agents)
        radii = [math.hypot(x - 0.5, y - 0.5) for x, y in points]
        assert max(radii) - min(radii) < 1e-3 and min(radii) > 0.49
        assert_fits_the_page(points)


@pytest.mark.parametrize(("agents", "dimensions"), [(1000, 2), (1000, 3), (10_000, 2), (10_000, 3)])
def test_a_torus_is_its_grid_every_edge_but_the_wrapping_ones_one_cell_long(agents, dimensions):
    """A 2-D torus is one grid; a 3-D one is a grid per layer (edges between layers join the same cell of
    two layers drawn side by side)."""
    graph, points = picture("torus", agents, dimensions=dimensions)
    assert_fits_the_page(points)
    sides = torus_sides(agents, dimensions)
    rows, columns = sides[-2:]
    layer = rows * columns
    within = [(a, b) for a, b in graph.edges() if a // layer == b // layer]
    lengths = sorted(math.dist(points[a], points[b]) for a, b in within)
    cell = lengths[0]
    wrapping = (agents // layer) * (rows + columns)  # in each layer, one edge per row and per column closes it
    assert all(abs(length - cell) < 1e-3 for length in lengths[: len(lengths) - wrapping])
    assert all(length > 1.5 * cell for length in lengths[len(lengths) - wrapping :])
    between = [(a, b) for a, b in graph.edges() if a // layer != b // layer]
    assert len(between) == (agents if dimensions == 3 else 0)
    for a, b in between:  # the same cell of its layer
        (ax, ay), (bx, by) = points[a], points[b]
        (a0x, a0y), (b0x, b0y) = points[a - a % layer], points[b - b % layer]  # the first cell of each layer
        assert math.isclose(ax - a0x, bx - b0x, abs_tol=1e-3) and math.isclose(ay - a0y, by - b0y, abs_tol=1e-3)


def test_a_large_expander_is_a_disc_whose_radius_is_the_hops_from_agent_0():
    graph, points = picture("ramanujan", 1000, degree=4)
    assert_fits_the_page(points)
    hops = nx.single_source_shortest_path_length(graph, 0)
    radius = [math.dist(point, points[0]) for point in points]  # agent 0 is the centre
    # Nearer in hops, nearer the centre: every agent at h hops lies inside every agent at h+1.
    for h in range(1, max(hops.values())):
        inner = max(radius[a] for a, d in hops.items() if d == h)
        outer = min(radius[a] for a, d in hops.items() if d == h + 1)
        assert inner <= outer + 1e-3, f"hop {h} reaches out to {inner}, hop {h + 1} starts at {outer}"


def test_a_small_expander_is_laid_out_by_force_and_the_same_seed_draws_the_same_picture():
    graph = build_topology("ramanujan", FORCE_AGENTS, degree=4, seed=3)
    neighbours = [sorted(graph.neighbors(i)) for i in range(FORCE_AGENTS)]
    points = positions({"kind": "ramanujan", "seed": 3}, neighbours)
    assert_fits_the_page(points)
    assert positions({"kind": "ramanujan", "seed": 3}, neighbours) == points
    # A force layout puts neighbours nearer each other than agents picked at random.
    mean_edge = sum(math.dist(points[a], points[b]) for a, b in graph.edges()) / graph.number_of_edges()
    pairs = [(a, (a * 7919 + 13) % FORCE_AGENTS) for a in range(FORCE_AGENTS)]
    mean_any = sum(math.dist(points[a], points[b]) for a, b in pairs if a != b) / len(pairs)
    assert mean_edge < mean_any


@settings(max_examples=40)
@given(
    kind=st.sampled_from(["ring", "complete", "torus", "ramanujan"]),
    agents=st.integers(min_value=1, max_value=600),
    dimensions=st.sampled_from([2, 3]),
)
def test_every_buildable_topology_fits_the_page_with_no_two_agents_on_one_spot(kind, agents, dimensions):
    topology = {"kind": kind, "dimensions": dimensions} if kind == "torus" else {"kind": kind}
    if kind == "torus" and torus_sides(agents, dimensions) is None:
        agents = 3**dimensions * 2  # a torus needs a product of sides of at least 3
    if kind == "ramanujan":
        agents += agents % 2 + (6 if agents < 6 else 0)  # degree 4 needs agents*4 even and more than 4 agents
        topology["degree"] = 4
    if kind == "complete":
        agents = min(agents, 80)
    graph = build_topology(kind, agents, **{k: v for k, v in topology.items() if k != "kind"})
    points = positions(topology, [sorted(graph.neighbors(i)) for i in range(agents)])
    assert len(points) == agents
    assert_fits_the_page(points)
