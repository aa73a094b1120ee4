"""Who talks to whom: ring, 2D/3D torus, complete, and Ramanujan expander topologies.

Every graph has nodes 0..agents-1 and records how it was made in `graph.graph`.
A Ramanujan graph is a connected d-regular graph whose non-trivial adjacency
eigenvalues (all but d, and -d when bipartite) satisfy |λ| <= 2·sqrt(d-1): the
best possible expansion, so gossip mixes fast. We draw random regular graphs
(most are Ramanujan) and check the bound numerically, retrying with seeds
derived from the caller's seed, so a seed always gives the same graph.
"""

import math
from hashlib import blake2b

import networkx as nx
import numpy as np

TOPOLOGY_KINDS = ("ring", "torus", "complete", "ramanujan")
DEFAULT_DEGREE = 4
MAX_RAMANUJAN_AGENTS = 5_000  # (the CRD stops at 1,000; random_regular_graph slows past this)
MAX_ATTEMPTS = 64
_TOLERANCE = 1e-9
# The spectral check (nontrivial_spectral_radius): Lanczos until the extreme Ritz values are this close to eigenvalues.
LANCZOS_TOLERANCE = 1e-10
LANCZOS_CHECK_EVERY = 32  # steps between looks at the Ritz values (each look is a small dense eigensolve)
LANCZOS_STEPS_PER_DIMENSION = 4  # a bound that is never reached in practice: it stops with an error, not a guess
LANCZOS_SEED = 0


class TopologyError(ValueError):
    """A topology that cannot be built; the message says why."""


def check_topology(kind: str, agents: int, *, degree: int | None = None, dimensions: int = 2) -> str | None:
    """Why a topology request is impossible, or None if it can be built. Cheap: builds nothing."""
    if kind not in TOPOLOGY_KINDS:
        return f"unknown topology kind {kind!r} (expected one of {', '.join(TOPOLOGY_KINDS)})"
    if not _is_int(agents) or agents < 1:
        return f"a topology needs at least 1 agent (got {agents!r})"
    if kind == "ramanujan":
        return _check_ramanujan(agents, DEFAULT_DEGREE if degree is None else degree)
    if kind == "torus":
        if dimensions not in (2, 3):
            return f"torus dimensions must be 2 or 3 (got {dimensions!r})"
        if torus_sides(agents, dimensions) is None:
            return (
                f"torus topology needs agents = a product of {dimensions} sides of at least 3 each "
                f"(got {agents}{_factor_note(agents)})"
            )
    if degree is not None:
        implied = {"ring": min(2, agents - 1), "torus": 2 * dimensions, "complete": agents - 1}[kind]
        if degree != implied:
            return (
                f"{kind} topology with {agents} agents has degree {implied} "
                f"(got degree={degree!r}; degree is for ramanujan)"
            )
    return None


def build_topology(
    kind: str, agents: int, *, degree: int | None = None, seed: int = 0, dimensions: int = 2
) -> nx.Graph:
    """Build a topology on agents 0..agents-1; raises TopologyError saying why if impossible."""
    problem = check_topology(kind, agents, degree=degree, dimensions=dimensions)
    if problem:
        raise TopologyError(problem)
    if kind == "ring":
        graph = nx.cycle_graph(agents) if agents >= 3 else nx.path_graph(agents)
    elif kind == "complete":
        graph = nx.complete_graph(agents)
    elif kind == "torus":
        graph = torus(torus_sides(agents, dimensions))
    else:
        graph = ramanujan(agents, DEFAULT_DEGREE if degree is None else degree, seed)
    graph.graph.update(kind=kind, agents=agents)
    if kind == "torus":
        graph.graph["dimensions"] = dimensions
    return graph


# --- torus ---------------------------------------------------------------------------------------


def torus_sides(agents: int, dimensions: int) -> tuple[int, ...] | None:
    """The most even factorisation of agents into `dimensions` sides, each at least 3."""
    best = None
    for sides in _factorisations(agents, dimensions, smallest=3):
        if best is None or max(sides) - min(sides) < max(best) - min(best):
            best = sides
    return best


def _factorisations(number: int, parts: int, smallest: int):
    """Non-decreasing tuples of `parts` factors >= smallest whose product is number."""
    if parts == 1:
        if number >= smallest:
            yield (number,)
        return
    factor = smallest
    while factor ** parts <= number:
        if number % factor == 0:
            for rest in _factorisations(number // factor, parts - 1, factor):
                yield (factor, *rest)
        factor += 1


def _factor_note(agents: int) -> str:
    factors, rest, p = [], agents, 2
    while p * p <= rest:
        while rest % p == 0:
            factors.append(p)
            rest //= p
        p += 1
    if rest > 1:
        factors.append(rest)
    if len(factors) <= 1:
        return ", which is prime" if agents > 1 else ""
    return " = " + "x".join(map(str, factors))


def torus(sides: tuple[int, ...]) -> nx.Graph:
    """Wrap-around grid; node number = row-major index of its coordinates."""
    graph = nx.Graph()
    count = math.prod(sides)
    graph.add_nodes_from(range(count))
    strides = [math.prod(sides[axis + 1 :]) for axis in range(len(sides))]
    for node in range(count):
        for side, stride in zip(sides, strides):
            coordinate = (node // stride) % side
            graph.add_edge(node, node - coordinate * stride + ((coordinate + 1) % side) * stride)
    graph.graph["sides"] = sides
    return graph


# --- ramanujan -------------------------------------------------------------------------------------


def _check_ramanujan(agents: int, degree: int) -> str | None:
    if not _is_int(degree) or degree < 3:
        return f"ramanujan topology needs degree >= 3 (got {degree!r}; degree 2 is the ring topology)"
    if degree >= agents:
        return f"ramanujan topology needs degree < agents (got degree {degree} with {agents} agents)"
    if agents * degree % 2:
        return f"ramanujan topology needs agents*degree to be even (got {agents}*{degree}={agents * degree})"
    if agents > MAX_RAMANUJAN_AGENTS:
        return f"ramanujan topology supports at most {MAX_RAMANUJAN_AGENTS} agents (got {agents})"
    return None


def ramanujan_bound(degree: int) -> float:
    return 2 * math.sqrt(degree - 1)


def nontrivial_spectral_radius(graph: nx.Graph, degree: int) -> float:
    """Largest |λ| of a `degree`-regular graph's adjacency matrix, leaving out d (and -d for a bipartite graph).

    Returns at least `degree` for a disconnected graph (d then repeats), so one number
    answers both "connected?" and "expanding?".

    Lanczos on the sparse adjacency (O(edges) per step) with the trivial eigenvectors (all
    ones; ±1 by side when bipartite) projected out: the extreme eigenvalues of what is left
    are the first a Krylov space finds, and the iteration stops once both extreme Ritz values
    are eigenvalues to within LANCZOS_TOLERANCE (their residual bound). A dense eigensolve of
    1,000 agents took seconds (tens with multi-threaded BLAS on busy cores); this takes a
    few hundred matrix-vector products. The start vector comes from a fixed seed, so the
    answer, and the graph ramanujan() keeps, is the same on every run.
    """
    count = graph.number_of_nodes()
    edges = np.array(graph.edges(), dtype=np.intp).reshape(-1, 2)
    ends, starts = edges[:, 0], edges[:, 1]

    def adjacency_times(vector: np.ndarray) -> np.ndarray:
        return np.bincount(ends, weights=vector[starts], minlength=count) + np.bincount(starts, weights=vector[ends], minlength=count)

    trivial = [np.full(count, 1 / math.sqrt(count))] if count else []
    if count and nx.is_bipartite(graph):
        side = nx.bipartite.color(graph)
        trivial.append(np.array([1.0 if side[node] else -1.0 for node in range(count)]) / math.sqrt(count))

    def deflated(vector: np.ndarray) -> np.ndarray:  # rounding would let d (or -d) back in: project every step
        for direction in trivial:
            vector -= (direction @ vector) * direction
        return vector

    dimension = count - len(trivial)
    if dimension <= 0:
        return 0.0
    vector = deflated(np.random.default_rng(LANCZOS_SEED).standard_normal(count))
    vector /= np.linalg.norm(vector)
    previous, beta = np.zeros(count), 0.0
    alphas: list[float] = []
    betas: list[float] = []
    # Without full reorthogonalisation, converged Ritz values repeat ("ghosts") and the process may run past
    # `dimension` steps; the extremes still converge (Paige), so the bound is a few times the dimension.
    for step in range(1, LANCZOS_STEPS_PER_DIMENSION * dimension + 1):
        product = adjacency_times(vector) - beta * previous
        alpha = float(vector @ product)
        product = deflated(product - alpha * vector)
        alphas.append(alpha)
        beta = float(np.linalg.norm(product))
        exhausted = beta <= LANCZOS_TOLERANCE  # an invariant subspace: its Ritz values are eigenvalues
        if exhausted or step % LANCZOS_CHECK_EVERY == 0 or step == LANCZOS_STEPS_PER_DIMENSION * dimension:
            tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
            values, vectors = np.linalg.eigh(tridiagonal)
            residuals = beta * np.abs(vectors[-1, [0, -1]])  # ‖A y - θ y‖ of the smallest and largest Ritz pairs
            if exhausted or residuals.max() <= LANCZOS_TOLERANCE:
                return float(max(abs(values[0]), abs(values[-1])))
        betas.append(beta)
        previous, vector = vector, product / beta
    raise TopologyError(f"the spectral check of a {count}-agent graph did not converge in {step} Lanczos steps")


def is_ramanujan(graph: nx.Graph, degree: int) -> bool:
    if any(d != degree for _, d in graph.degree()):
        return False
    return nontrivial_spectral_radius(graph, degree) <= ramanujan_bound(degree) + _TOLERANCE


def ramanujan(agents: int, degree: int, seed: int = 0) -> nx.Graph:
    """A connected `degree`-regular Ramanujan graph on `agents` nodes, the same for the same seed."""
    problem = _check_ramanujan(agents, degree)
    if problem:
        raise TopologyError(problem)
    if agents == 9 and degree == 4:
        return _tagged(rook_graph(3), degree, seed, attempts=0)  # the canonical answer
    if degree == agents - 1:
        return _tagged(nx.complete_graph(agents), degree, seed, attempts=0)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        graph = _random_regular(agents, degree, _derived_seed(seed, agents, degree, attempt))
        radius = nontrivial_spectral_radius(graph, degree)
        if radius <= ramanujan_bound(degree) + _TOLERANCE:
            graph = _tagged(graph, degree, seed, attempt)
            graph.graph["spectral_radius"] = radius
            return graph
    raise TopologyError(
        f"no ramanujan graph with {agents} agents and degree {degree} found in {MAX_ATTEMPTS} attempts "
        f"from seed {seed}; try another seed or degree"
    )


def rook_graph(side: int) -> nx.Graph:
    """side x side rook's graph (K_side x K_side): cells joined when they share a row or column."""
    graph = nx.Graph()
    graph.add_nodes_from(range(side * side))
    for a in range(side * side):
        for b in range(a + 1, side * side):
            if a // side == b // side or a % side == b % side:
                graph.add_edge(a, b)
    return graph


def _random_regular(agents: int, degree: int, seed: int) -> nx.Graph:
    # Dense requests: draw the sparse complement (also regular) and flip it.
    if degree > (agents - 1) // 2:
        return nx.complement(nx.random_regular_graph(agents - 1 - degree, agents, seed=seed))
    return nx.random_regular_graph(degree, agents, seed=seed)


def _derived_seed(seed: int, agents: int, degree: int, attempt: int) -> int:
    """Seed for one attempt: stable across processes and platforms (unlike hash())."""
    text = f"ramanujan:{seed}:{agents}:{degree}:{attempt}".encode()
    return int.from_bytes(blake2b(text, digest_size=8).digest(), "big")


def _tagged(graph: nx.Graph, degree: int, seed: int, attempts: int) -> nx.Graph:
    graph.graph.update(degree=degree, seed=seed, attempts=attempts, bound=ramanujan_bound(degree))
    return graph


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
