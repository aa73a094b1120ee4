"""duck-colors (/colors): the display palette and the RED/BLUE/GREEN 3-colouring.

GET  /palette?count=N&seed=S   golden-angle display colours (default: one per agent, the network's seed)
GET  /assignment               the network's assignment, as the operator computed it (network.json)
POST /assignment               colour any topology: {"agents", "kind", "degree"?, "seed"?, "dimensions"?}
                               or an explicit {"edges": [[a, b], ...]}; conflicts are listed when no
                               proper 3-colouring exists

Settings (settings.ColorsSettings): ALGORITHM, the palette's, gay-jl-golden-spiral (the only one).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.components import Service
from agentnet_runtime.core.colouring import colour_graph, display_palette
from agentnet_runtime.core.topology import TOPOLOGY_KINDS, TopologyError, build_topology
from agentnet_runtime.settings import ColorsSettings
from agentnet_runtime.web import RequestError, json_body

MAX_COUNT = 100_000  # palette entries one request may ask for
MAX_AGENTS = 10_000  # agents of a topology one request may colour
TOPOLOGY_FIELDS = ("agents", "kind", "degree", "seed", "dimensions")


def _int(value: Any, field: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RequestError(f"{field} must be an integer (got {value!r})", field=field, rule=f"integer {low}..{high}") from None
    if isinstance(value, bool) or not low <= number <= high or (isinstance(value, float) and value != number):
        raise RequestError(f"{field} must be an integer {low}..{high} (got {value!r})", field=field, rule=f"integer {low}..{high}")
    return number


def _graph_from(body: dict[str, Any]) -> nx.Graph:
    if "edges" in body:
        extra = sorted(set(body) - {"edges"})
        if extra:
            raise RequestError(f"give edges or a topology, not both ({extra[0]!r})", field=extra[0], rule="edges alone")
        edges = body["edges"]
        if not isinstance(edges, list) or not all(isinstance(e, list) and len(e) == 2 for e in edges):
            raise RequestError("edges must be a list of [a, b] pairs", field="edges", rule="list of [a, b] agent id pairs")
        graph = nx.Graph()
        graph.add_edges_from((_int(a, "edges[]", 0, MAX_AGENTS - 1), _int(b, "edges[]", 0, MAX_AGENTS - 1)) for a, b in edges)
        return graph
    unknown = sorted(set(body) - set(TOPOLOGY_FIELDS))
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}", field=unknown[0], rule=f"allowed: edges, or {', '.join(TOPOLOGY_FIELDS)}")
    if "agents" not in body or "kind" not in body:
        missing = "agents" if "agents" not in body else "kind"
        raise RequestError(f"{missing} is required", field=missing, rule="required")
    try:
        return build_topology(
            str(body["kind"]), _int(body["agents"], "agents", 1, MAX_AGENTS),
            degree=None if body.get("degree") is None else _int(body["degree"], "degree", 1, MAX_AGENTS),
            seed=_int(body.get("seed", 0), "seed", 0, 2**31 - 1),
            dimensions=_int(body.get("dimensions", 2), "dimensions", 2, 3),
        )  # fmt: skip
    except TopologyError as error:
        field = "kind" if body["kind"] not in TOPOLOGY_KINDS else "agents"
        raise RequestError(str(error), field=field, rule="a topology that can be built") from None


class DuckColors(Service):
    name = "duck-colors"
    settings_model = ColorsSettings

    def routes(self) -> list[Route]:
        return [
            Route("/palette", self.palette),
            Route("/assignment", self.assignment),
            Route("/assignment", self.colour_topology, methods=["POST"]),
        ]

    async def palette(self, request: Request) -> JSONResponse:
        query = request.query_params
        count = _int(query.get("count", self.config.network.size), "count", 1, MAX_COUNT)
        seed = _int(query.get("seed", self.config.network.raw.get("topology", {}).get("seed", 0)), "seed", 0, 2**31 - 1)
        return JSONResponse({"count": count, "seed": seed, "colours": display_palette(count, seed=seed)})

    async def assignment(self, request: Request) -> JSONResponse:
        network = self.config.network
        colouring = network.raw.get("colouring", {})
        return JSONResponse({
            "network": network.name,
            "proper": colouring.get("proper", True),
            "conflicts": colouring.get("conflicts", 0),
            "agents": [{"id": n.id, "colour": n.colour, "display": n.display, "neighbours": list(n.neighbours)} for n in network.nodes],
        })  # fmt: skip

    async def colour_topology(self, request: Request) -> JSONResponse:
        graph = _graph_from(await json_body(request))
        colouring = colour_graph(graph)
        colours = colouring.colours if colouring.proper else colouring.best_effort
        return JSONResponse({
            "proper": colouring.proper,
            "certain": colouring.exhaustive,
            "reason": colouring.reason,
            "colours": {str(node): colours[node].value for node in sorted(graph.nodes())},
            "conflicts": [list(edge) for edge in colouring.conflicts],
        })  # fmt: skip


def create(config) -> DuckColors:
    return DuckColors(config)
