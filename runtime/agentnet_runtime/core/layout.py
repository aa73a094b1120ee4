"""Where a picture of the network puts each agent: positions in [0, 1]², from the topology's kind.

A force-directed layout is quadratic (or needs scipy, which networkx's spring layout asks for at 500 nodes
and more): a network of 1,000 agents would wait seconds or not be drawn at all. The kinds have shapes of
their own, so each is drawn as what it is, in time linear in its edges:
- ring, complete: a circle in id order (a ring is a circle; a clique reads best as one);
- torus: the wrap-around grid itself, ids row-major over the sides the topology chose; a 3-D torus as its
  layers side by side, each layer a grid;
- ramanujan (or anything else): a small one by a force layout that needs only numpy (spring up to
  SPRING_AGENTS, where it reads best; ForceAtlas2 up to FORCE_AGENTS, which spreads an expander evenly);
  a larger one as a sunflower (the golden-angle disc) filled in breadth-first
  order from agent 0: an agent's distance from the centre reads as its hops from agent 0, and an expander
  has no shape of its own that a force layout would find.

Pure: the graph comes as neighbour lists; the caller draws.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

import networkx as nx

from agentnet_runtime.core.topology import torus_sides

SPRING_AGENTS = 64  # at 256 agents spring's nodes overlap in 68 pairs, ForceAtlas2's in 2
FORCE_AGENTS = 256  # ForceAtlas2 (quadratic) up to here; a sunflower above
GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))

Point = tuple[float, float]


def positions(topology: Mapping, neighbours: Sequence[Sequence[int]]) -> list[Point]:
    """Position of each agent (index = id), scaled into [0, 1]² with one scale for both axes (shape kept)."""
    count = len(neighbours)
    kind = topology.get("kind")
    sides = torus_sides(count, int(topology.get("dimensions") or 2)) if kind == "torus" else None
    if count <= 1:
        raw = [(0.5, 0.5)] * count
    elif kind in ("ring", "complete"):
        raw = circle(count)
    elif sides is not None:
        raw = grid(sides)
    elif count <= FORCE_AGENTS:
        raw = force(neighbours, int(topology.get("seed") or 0))
    else:
        raw = sunflower(breadth_first(neighbours))
    return _fit(raw)


def circle(count: int) -> list[Point]:
    return [(math.cos(2 * math.pi * i / count), math.sin(2 * math.pi * i / count)) for i in range(count)]


def grid(sides: Sequence[int]) -> list[Point]:
    """A 2-D torus as its rows x columns; a 3-D one as `sides[0]` layers of rows x columns, side by side in a
    near-square arrangement with a one-cell gap between layers."""
    layers, rows, columns = (1, *sides) if len(sides) == 2 else sides
    across = math.ceil(math.sqrt(layers))  # layers per line of the arrangement
    return [
        ((layer % across) * (columns + 1) + column, (layer // across) * (rows + 1) + row)
        for layer in range(layers)
        for row in range(rows)
        for column in range(columns)
    ]  # fmt: skip


def breadth_first(neighbours: Sequence[Sequence[int]]) -> list[int]:
    """Agent ids in breadth-first order from agent 0 (neighbours in id order); each unreached part of the
    graph from its lowest id, after the last."""
    order: list[int] = []
    seen = [False] * len(neighbours)
    for start in range(len(neighbours)):
        if seen[start]:
            continue
        seen[start] = True
        queue = deque([start])
        while queue:
            node = queue.popleft()
            order.append(node)
            for other in sorted(neighbours[node]):
                if not seen[other]:
                    seen[other] = True
                    queue.append(other)
    return order


def sunflower(order: Sequence[int]) -> list[Point]:
    """Vogel's spiral: the k-th agent of `order` at radius √k, angle k x the golden angle (the first at the
    centre): evenly spread, no two on one spot."""
    points: list[Point] = [(0.0, 0.0)] * len(order)
    for k, agent in enumerate(order):
        radius, angle = math.sqrt(k), k * GOLDEN_ANGLE
        points[agent] = (radius * math.cos(angle), radius * math.sin(angle))
    return points


def force(neighbours: Sequence[Sequence[int]], seed: int) -> list[Point]:
    graph = nx.Graph()
    graph.add_nodes_from(range(len(neighbours)))
    graph.add_edges_from((a, b) for a, others in enumerate(neighbours) for b in others if a < b)
    if graph.number_of_edges() == 0:
        return circle(len(neighbours))
    if graph.number_of_nodes() <= SPRING_AGENTS:
        found = nx.spring_layout(graph, seed=seed)  # numpy's dense solver below 500 nodes
    else:
        found = nx.forceatlas2_layout(graph, seed=seed, strong_gravity=True)
    return [(float(found[i][0]), float(found[i][1])) for i in range(len(neighbours))]


def _fit(points: Sequence[Point]) -> list[Point]:
    if not points:
        return []
    low_x, low_y = min(x for x, _ in points), min(y for _, y in points)
    span = max(max(x for x, _ in points) - low_x, max(y for _, y in points) - low_y) or 1.0
    offset_x = (1 - (max(x for x, _ in points) - low_x) / span) / 2  # centre the shorter axis
    offset_y = (1 - (max(y for _, y in points) - low_y) / span) / 2
    return [(round(offset_x + (x - low_x) / span, 4), round(offset_y + (y - low_y) / span, 4)) for x, y in points]
