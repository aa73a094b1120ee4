"""egraph-service (/egraph): equality saturation under a time budget, canonical forms, memoised.

POST /saturate  {"term": "x*(y+z)"} or {"terms": [...]}, optional "families" (["RED", "BLUE", "GREEN"],
                default all three) and "timeoutMs" (lowers the time budget for this request, never raises it)
                -> per term: canonical (cheapest equivalent found), cost (AST size), saturated, stop, iterations,
                nodes, matches, elapsedMs, memoised; "terms" answers {"results": [...]}
POST /verify    {"lhs", "rhs", "families"?, "timeoutMs"?, "explain"?}: are two terms equal? Three honest
                answers: "verdict" equal (derived; "explain": true adds the proof path), unequal (refuted: the
                values differ at the point shown as "counterexample") or unknown (neither within the budget,
                or saturated without deriving it); "equal" says the same as true / false / null
POST /extract   {"term", "families"?}: the cheapest equivalent of a term (saturating it first, memoised)
                {"egraph": wire, "term" | "class"}: the cheapest term of a class in a given e-graph state or delta
                (e.g. GET /agent/{id}/egraph), with no rewriting

The time budget is SATURATION_TIMEOUT_MS (settings.EgraphSettings: the environment variable, else the component
setting, else the guides' 5000 ms);
NODE_LIMIT (10,000 e-nodes) and MEMO_SIZE (10,000 answers per family set and budget) are read the same way.
Memo hits and misses are exported as agentnet_cache_*_total{cache="memo"} (cache.py).
The answers (answers/egraph.py, shared with the Spin build) come from the core's Saturator, whose memo returns a repeated question without saturating again; one
Saturator (and memo) per family set and budget. The budget bounds each phase of the Saturator's schedule
(identities alone, then every rule); the first only shrinks a term and ends at once. Saturation runs on one
worker thread, so a long one does not hold up the event loop (other requests get in at the next GIL switch),
and the memo is only ever touched by that thread. Measured against the alternatives (the component under load
from another process): running inline was no faster within the noise and blocks everything for a whole budget; a worker
process (as the streams use) cost about twice the CPU per memo hit (pickling both ways) and was slower on two
cores, where there is no idle core for it to use.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from prometheus_client import Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.components import Service
from agentnet_runtime.components.cache import Lookups
from agentnet_runtime.answers.egraph import EgraphAnswers
from agentnet_runtime.settings import EgraphSettings
from agentnet_runtime.web import LATENCY_BUCKETS, json_body


class EGRAPH_METRICS:
    """egraph-service's metrics (to move into web.METRICS)."""

    saturation_seconds = Histogram(
        "agentnet_egraph_saturation_seconds", "Time egraph-service spent saturating one term (memo misses)",
        buckets=LATENCY_BUCKETS,
    )  # fmt: skip


# --- the service ---------------------------------------------------------------------------------------


class EgraphService(Service):
    name = "egraph-service"
    settings_model = EgraphSettings

    def __init__(self, config):
        super().__init__(config)
        self.lookups = Lookups(self.name, "memo")
        self.answers = EgraphAnswers(self.settings.saturation_timeout_ms, self.settings.node_limit, self.settings.memo_size,
                                     on_lookup=self._counted)  # fmt: skip
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="egraph-saturate")

    def routes(self) -> list[Route]:
        return [
            Route("/saturate", self._route(self.answers.saturate), methods=["POST"]),
            Route("/verify", self._route(self.answers.verify), methods=["POST"]),
            Route("/extract", self._route(self.answers.extract), methods=["POST"]),
        ]

    def health(self) -> dict[str, Any]:
        return self.answers.health()

    async def on_stop(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    def _counted(self, memoised: bool, seconds: float | None) -> None:
        (self.lookups.hit if memoised else self.lookups.miss)()
        if seconds is not None:
            EGRAPH_METRICS.saturation_seconds.observe(seconds)

    def _route(self, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Request], Any]:
        """An endpoint answering on the worker thread, which alone touches the memos."""

        async def endpoint(request: Request) -> JSONResponse:
            body = await json_body(request)
            # In the request's context, so the worker parses within this network's term limits (request_checks).
            in_context = contextvars.copy_context().run
            return JSONResponse(await asyncio.get_running_loop().run_in_executor(self._thread, in_context, answer, body))

        return endpoint


def create(config) -> EgraphService:
    return EgraphService(config)
