"""3-colouring of a topology (an agent's RED/BLUE/GREEN polarity) and the display palette.

Finding a proper 3-colouring is NP-complete, so:
  1. peel vertices with fewer than 3 neighbours (they can always be coloured last);
  2. a K4 in what is left proves that no proper 3-colouring exists;
  3. exact search per connected component: DSatur-ordered backtracking with forward
     checking, under a step budget;
  4. if the budget runs out, a seeded min-conflicts tabu search tries to find one;
  5. otherwise report the best effort and the edges that clash in it.
`Colouring.exhaustive` says whether the answer is certain (found, or proven impossible).
"""

import colorsys
import random
from dataclasses import dataclass, field

import networkx as nx

from .colour import COLOURS, Colour

GOLDEN_ANGLE = 137.50776405003785  # degrees: 360 * (1 - 1/phi)
SEARCH_STEPS = 20_000  # colour assignments the exact search may try, per connected component
TABU_MOVES = 20_000  # recolourings tried by the local search
_ALL = 0b111  # a bit per colour: the set of colours a vertex may still take
_COUNT = [bin(mask).count("1") for mask in range(8)]


@dataclass(frozen=True)
class Colouring:
    colours: dict[int, Colour] | None  # a proper 3-colouring, or None if none was found
    conflicts: list[tuple[int, int]]  # edges whose ends share a colour in best_effort
    best_effort: dict[int, Colour] = field(default_factory=dict)  # always a full assignment
    exhaustive: bool = True  # certain: a colouring was found or none exists
    reason: str = ""

    @property
    def proper(self) -> bool:
        return self.colours is not None


class _OutOfSteps(Exception):
    pass


def colour_graph(graph: nx.Graph, *, search_steps: int = SEARCH_STEPS, seed: int = 0) -> Colouring:
    """A proper RED/BLUE/GREEN colouring of a graph if one exists (see module docstring)."""
    nodes = sorted(graph.nodes())
    index = {node: position for position, node in enumerate(nodes)}
    neighbours = [sorted(index[other] for other in graph.neighbors(node) if other != node) for node in nodes]
    loops = sorted(index[u] for u, _ in nx.selfloop_edges(graph))
    if loops:
        why = f"agent {nodes[loops[0]]} is its own neighbour (a self-loop)"
        return _impossible(nodes, neighbours, why, seed, loops)
    core, peeled = _peel(neighbours)
    clique = _find_k4(core, neighbours)
    if clique:
        names = ", ".join(str(nodes[v]) for v in clique)
        return _impossible(nodes, neighbours, f"agents {names} are all adjacent (a K4)", seed)
    colour = [-1] * len(nodes)
    try:
        for component in _components(core, neighbours):
            if not _backtrack(component, neighbours, colour, search_steps):
                return _impossible(nodes, neighbours, "exhaustive search found no proper 3-colouring", seed)
        exhaustive, reason = True, "exact search"
    except _OutOfSteps:
        colour = _tabu(neighbours, seed)
        if _clashes(neighbours, colour):
            reason = (
                f"no proper 3-colouring found within {search_steps} search steps "
                f"and {TABU_MOVES} local moves (not proven impossible)"
            )
            return _report(nodes, neighbours, colour, exhaustive=False, reason=reason)
        exhaustive, reason = True, "local search (exact search ran out of steps)"
    for vertex in reversed(peeled):  # fewer than 3 coloured neighbours when peeled: a colour is free
        if colour[vertex] < 0:
            used = {colour[other] for other in neighbours[vertex]}
            colour[vertex] = min(c for c in range(3) if c not in used)
    return _report(nodes, neighbours, colour, exhaustive=exhaustive, reason=reason)


def is_proper(graph: nx.Graph, colours: dict[int, Colour]) -> bool:
    return all(node in colours for node in graph) and all(colours[u] != colours[v] for u, v in graph.edges())


# --- steps ------------------------------------------------------------------------------------------


def _peel(neighbours: list[list[int]]) -> tuple[set[int], list[int]]:
    """Repeatedly remove vertices with degree < 3; returns (the 3-core, removal order)."""
    degree = [len(adjacent) for adjacent in neighbours]
    core = set(range(len(neighbours)))
    peeled = []
    stack = [v for v in core if degree[v] < 3]
    while stack:
        vertex = stack.pop()
        if vertex not in core:
            continue
        core.discard(vertex)
        peeled.append(vertex)
        for other in neighbours[vertex]:
            if other in core:
                degree[other] -= 1
                if degree[other] == 2:
                    stack.append(other)
    return core, peeled


def _find_k4(core: set[int], neighbours: list[list[int]]) -> tuple[int, ...] | None:
    adjacent = {v: set(neighbours[v]) & core for v in core}
    for a in sorted(core):
        for b in adjacent[a]:
            if b <= a:
                continue
            common = sorted(c for c in adjacent[a] & adjacent[b] if c > b)
            for position, c in enumerate(common):
                for d in common[position + 1 :]:
                    if d in adjacent[c]:
                        return (a, b, c, d)
    return None


def _components(core: set[int], neighbours: list[list[int]]) -> list[list[int]]:
    seen, components = set(), []
    for start in sorted(core):
        if start in seen:
            continue
        seen.add(start)
        component, frontier = [], [start]
        while frontier:
            vertex = frontier.pop()
            component.append(vertex)
            for other in neighbours[vertex]:
                if other in core and other not in seen:
                    seen.add(other)
                    frontier.append(other)
        components.append(component)
    return components


def _backtrack(component: list[int], neighbours: list[list[int]], colour: list[int], budget: int) -> bool:
    """DSatur backtracking with forward checking over one component; fills `colour` on success.

    Each vertex keeps a bit mask of colours still open to it; the next vertex is one
    with the fewest open colours (buckets by count make the choice O(1)); colouring a
    vertex closes that colour at its uncoloured neighbours and fails if one has none left.
    """
    members = set(component)
    open_colours = {v: _ALL for v in component}
    buckets = {1: set(), 2: set(), 3: set(component)}
    stack: list[list] = []  # frames: [vertex, colours left to try, colour bit tried, neighbours changed]
    steps = 0
    descend = True
    while True:
        if descend:
            bucket = buckets[1] or buckets[2] or buckets[3]
            if not bucket:
                return True
            vertex = next(iter(bucket))
            bucket.discard(vertex)
            # The first vertex takes the first colour: the others are the same up to renaming.
            stack.append([vertex, open_colours[vertex] if stack else 1, 0, ()])
        frame = stack[-1]
        vertex, untried, bit, changed = frame
        if bit:  # undo the previous try of this frame
            colour[vertex] = -1
            for other in changed:
                _move(buckets, open_colours, other, open_colours[other] | bit)
        if not untried:
            stack.pop()
            buckets[_COUNT[open_colours[vertex]]].add(vertex)
            if not stack:
                return False
            descend = False
            continue
        steps += 1
        if steps > budget:
            raise _OutOfSteps
        bit = untried & -untried
        changed, ok = [], True
        for other in neighbours[vertex]:
            # Uncoloured members are exactly those in a bucket.
            if other in members and open_colours[other] & bit and other in buckets[_COUNT[open_colours[other]]]:
                _move(buckets, open_colours, other, open_colours[other] & ~bit)
                changed.append(other)
                if not open_colours[other]:
                    ok = False
                    break
        colour[vertex] = bit.bit_length() - 1
        frame[1:] = [untried & ~bit, bit, changed]
        descend = ok


def _move(buckets: dict[int, set], open_colours: dict[int, int], vertex: int, mask: int) -> None:
    old, new = _COUNT[open_colours[vertex]], _COUNT[mask]
    open_colours[vertex] = mask
    if old != new:
        if old:
            buckets[old].discard(vertex)
        if new:
            buckets[new].add(vertex)


def _tabu(neighbours: list[list[int]], seed: int) -> list[int]:
    """Min-conflicts local search with a tabu list, from a greedy start; deterministic per seed."""
    rng = random.Random(seed)
    count = len(neighbours)
    colour = [-1] * count
    for vertex in sorted(range(count), key=lambda v: -len(neighbours[v])):  # greedy, fewest clashes
        used = [0, 0, 0]
        for other in neighbours[vertex]:
            if colour[other] >= 0:
                used[colour[other]] += 1
        colour[vertex] = used.index(min(used))
    clash = [[0, 0, 0] for _ in range(count)]  # clash[v][c]: neighbours of v coloured c
    for vertex in range(count):
        for other in neighbours[vertex]:
            clash[vertex][colour[other]] += 1
    conflicted = {v for v in range(count) if clash[v][colour[v]]}
    clashing_edges = sum(clash[v][colour[v]] for v in range(count)) // 2
    best, best_clashing = colour[:], clashing_edges
    tabu: dict[tuple[int, int], int] = {}  # (vertex, colour) -> first move it may return
    for move in range(TABU_MOVES):
        if not conflicted:
            return colour
        vertex = rng.choice(sorted(conflicted))
        options = [c for c in range(3) if c != colour[vertex] and tabu.get((vertex, c), 0) <= move]
        if not options:
            continue
        new = min(options, key=lambda c: (clash[vertex][c], rng.random()))
        old = colour[vertex]
        clashing_edges += clash[vertex][new] - clash[vertex][old]
        tabu[(vertex, old)] = move + 7 + rng.randrange(5)
        colour[vertex] = new
        for other in neighbours[vertex]:
            clash[other][old] -= 1
            clash[other][new] += 1
        for other in (vertex, *neighbours[vertex]):
            if clash[other][colour[other]]:
                conflicted.add(other)
            else:
                conflicted.discard(other)
        if clashing_edges < best_clashing:
            best, best_clashing = colour[:], clashing_edges
    return best


def _clashes(neighbours: list[list[int]], colour: list[int]) -> list[tuple[int, int]]:
    return [(u, v) for u in range(len(neighbours)) for v in neighbours[u] if u < v and colour[u] == colour[v]]


def _impossible(nodes: list, neighbours: list[list[int]], why: str, seed: int, loops: list[int] = ()) -> Colouring:
    colour = _tabu(neighbours, seed)
    return _report(nodes, neighbours, colour, exhaustive=True, reason=f"no proper 3-colouring: {why}", loops=loops)


def _report(
    nodes: list, neighbours: list[list[int]], colour: list[int], *, exhaustive: bool, reason: str, loops=()
) -> Colouring:
    """The result for a full assignment: conflicts are its clashing edges (and any self-loops)."""
    assignment = {node: COLOURS[colour[position]] for position, node in enumerate(nodes)}
    conflicts = [(nodes[v], nodes[v]) for v in loops] + [(nodes[u], nodes[v]) for u, v in _clashes(neighbours, colour)]
    return Colouring(
        colours=None if conflicts else assignment,
        conflicts=conflicts,
        best_effort=assignment,
        exhaustive=exhaustive,
        reason=reason,
    )


# --- display palette -----------------------------------------------------------------------------


def display_palette(n: int, seed: int = 0) -> list[str]:
    """n distinct-looking hex colours from the golden-angle hue spiral; the same for the same seed."""
    start = (seed * GOLDEN_ANGLE * 0.5) % 360  # the seed turns the spiral
    palette = []
    for k in range(n):
        hue = (start + k * GOLDEN_ANGLE) % 360
        lightness = 0.50 + 0.08 * ((k // 3) % 2)  # alternate a little so neighbours in hue differ
        red, green, blue = colorsys.hls_to_rgb(hue / 360, lightness, 0.65)
        palette.append("#{:02x}{:02x}{:02x}".format(*(round(channel * 255) for channel in (red, green, blue))))
    return palette
