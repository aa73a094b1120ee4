"""Extraction: the cheapest term of an e-class (egg's Extractor), the same on converged replicas."""

import math
from typing import Callable

from .egraph import EGraph, NodeId
from .terms import Term

Cost = Callable[[str, list[float]], float]


def ast_size(op: str, kid_costs: list[float]) -> float:
    return 1.0 + sum(kid_costs, 0.0)  # (a float start: compiled, sum([]) would be the int 0)


def extract(egraph: EGraph, class_id: NodeId, cost: Cost = ast_size) -> Term:
    """The cheapest term in a class (AST size by default).

    Among equally cheap choices the smallest shape written with class ids wins (not
    replica-local roots), so converged replicas extract the same term.
    """
    classes = egraph.class_index()  # class root -> its shapes
    best: dict[NodeId, float] = {}  # class root -> cheapest cost found
    tied: dict[NodeId, list[tuple]] = {}  # class root -> its shapes of that cost
    size = cost is ast_size  # (a binary e-node's size inline: this loop is hot)
    infinity = math.inf
    changed = True
    while changed:  # costs only fall, over finitely many choices: a fixpoint is reached
        changed = False
        for cls, shapes in classes.items():
            cheapest = best.get(cls, infinity)  # (best.get, not a bound `get`: compiled, a direct dict read)
            cheapest_shapes = []
            for shape in shapes:
                if size and len(shape) == 3:  # a binary operator, by far the most common e-node
                    left, right = best.get(shape[1]), best.get(shape[2])
                    if left is None or right is None:
                        continue
                    total = 1 + left + right
                else:
                    if not all(kid in best for kid in shape[1:]):
                        continue
                    total = cost(shape[0], [best[kid] for kid in shape[1:]])
                if total < cheapest:
                    cheapest, cheapest_shapes, changed = total, [shape], True
                elif total == cheapest:
                    cheapest_shapes.append(shape)
            if cheapest_shapes:  # (the last pass changes nothing, so its ties are final)
                best[cls], tied[cls] = cheapest, cheapest_shapes
    root = egraph.root(class_id)
    if root not in best:
        raise ValueError(f"class {class_id} has no finite term (its e-nodes have not all arrived)")
    return _build(root, tied, egraph)


def _build(root: NodeId, tied: dict[NodeId, list[tuple]], egraph: EGraph) -> Term:
    """The chosen term of `root`'s class, children first on an explicit stack: a chain of any depth (say, a
    state from the wire) is built without recursion, which compiled would overflow the C stack."""
    built: dict[NodeId, Term] = {}
    chosen: dict[NodeId, tuple] = {}  # expanded, not built yet: the path from the root, with its choice
    todo: list[tuple[NodeId, bool]] = [(root, False)]
    while todo:
        cls, expanded = todo.pop()
        if expanded:
            shape = chosen.pop(cls)
            built[cls] = Term(shape[0], tuple([built[kid] for kid in shape[1:]]))
        elif cls not in built:
            if cls in chosen:
                raise ValueError("cost function is not increasing: the cheapest choice is cyclic")
            shape = chosen[cls] = _choice(tied[cls], egraph)
            todo.append((cls, True))
            todo.extend([(kid, False) for kid in shape[1:]])
    return built[root]


def _choice(cheapest: list[tuple], egraph: EGraph) -> tuple:
    """One of a class's equally cheap shapes, the same on every replica: the least written with class ids."""
    if len(cheapest) == 1:
        return cheapest[0]
    best, best_key = cheapest[0], None
    for shape in cheapest:
        key = (shape[0], *[egraph.find(kid) for kid in shape[1:]])
        if best_key is None or key < best_key:
            best, best_key = shape, key
    return best
