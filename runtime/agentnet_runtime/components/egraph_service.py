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
Answers come from the core's Saturator, whose memo returns a repeated question without saturating again; one
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
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from prometheus_client import Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.agent.http import term_field
from agentnet_runtime.components import Service
from agentnet_runtime.components.cache import Lookups
from agentnet_runtime.components.common import only_fields, requested_terms, verdict_fields
from agentnet_runtime.core.colour import COLOURS, Colour
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.core.explain import Explanation
from agentnet_runtime.core.rewrites import rules_for
from agentnet_runtime.core.saturate import LRU, Budget, Saturator, Verdict, extract
from agentnet_runtime.core.terms import Term, size
from agentnet_runtime.settings import EgraphSettings
from agentnet_runtime.web import LATENCY_BUCKETS, RequestError, json_body

MAX_TERMS = 1_000  # terms one /saturate request may carry
SATURATORS = 16  # (families, budget) pairs kept with their memos
FAMILIES_RULE = "a non-empty list of RED, BLUE, GREEN"


class EGRAPH_METRICS:
    """egraph-service's metrics (to move into web.METRICS)."""

    saturation_seconds = Histogram(
        "agentnet_egraph_saturation_seconds", "Time egraph-service spent saturating one term (memo misses)",
        buckets=LATENCY_BUCKETS,
    )  # fmt: skip


def term_cost(term: Term) -> int:
    """AST size: the cost extraction minimises (terms.size: without recursion, as an extracted term may be deep)."""
    return size(term)


def families_field(value: Any) -> tuple[Colour, ...]:
    """Requested rewrite families, deduplicated, in the fixed colour order."""
    if not isinstance(value, list) or not value:
        raise RequestError("families must be a non-empty list", field="families", rule=FAMILIES_RULE)
    try:
        wanted = {Colour(str(name).upper()) for name in value}
    except ValueError:
        raise RequestError(f"families must name RED, BLUE or GREEN (got {value!r})", field="families", rule=FAMILIES_RULE) from None
    return tuple(colour for colour in COLOURS if colour in wanted)


# --- the service ---------------------------------------------------------------------------------------


class EgraphService(Service):
    name = "egraph-service"
    settings_model = EgraphSettings

    def __init__(self, config):
        super().__init__(config)
        self.timeout_ms = self.settings.saturation_timeout_ms
        self.node_limit = self.settings.node_limit
        self.memo_size = self.settings.memo_size
        self._saturators = LRU(SATURATORS)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="egraph-saturate")
        self.hits = self.misses = 0
        self.lookups = Lookups(self.name, "memo")

    def routes(self) -> list[Route]:
        return [
            Route("/saturate", self.saturate, methods=["POST"]),
            Route("/verify", self.verify, methods=["POST"]),
            Route("/extract", self.extract, methods=["POST"]),
        ]

    def health(self) -> dict[str, Any]:
        return {"timeoutMs": self.timeout_ms, "memo": {"hits": self.hits, "misses": self.misses, "hitRate": self.hit_rate}}

    async def on_stop(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return round(self.hits / total, 4) if total else 0.0

    async def _in_thread(self, work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    # --- options --------------------------------------------------------------------------------------

    def _options(self, body: dict[str, Any]) -> tuple[tuple[Colour, ...], int]:
        families = families_field(body["families"]) if "families" in body else COLOURS
        timeout = body.get("timeoutMs", self.timeout_ms)
        if type(timeout) is not int or timeout < 1:
            raise RequestError(f"timeoutMs must be a positive integer (got {timeout!r})", field="timeoutMs",
                               rule=f"integer milliseconds, at most {self.timeout_ms} (SATURATION_TIMEOUT_MS)")  # fmt: skip
        return families, min(timeout, self.timeout_ms)

    def _saturator(self, families: tuple[Colour, ...], timeout_ms: int) -> Saturator:
        """The Saturator for these rules and budget (worker thread only: it owns the memos)."""
        key = (families, timeout_ms)
        saturator = self._saturators.get(key)
        if saturator is None:
            rules = tuple(rule for colour in families for rule in rules_for(colour))
            budget = Budget(seconds=timeout_ms / 1000, nodes=self.node_limit)
            saturator = Saturator(rules, budget, memo_size=self.memo_size)
            self._saturators.put(key, saturator)
        return saturator

    def _simplify_all(self, terms: list[Term], families: tuple[Colour, ...], timeout_ms: int) -> list[dict[str, Any]]:
        """Saturate and extract each term (worker thread)."""
        saturator = self._saturator(families, timeout_ms)
        results = []
        for term in terms:
            hits = saturator.memo.hits
            simplified = saturator.simplify(term)
            memoised = saturator.memo.hits > hits
            report = simplified.report
            if memoised:
                self.hits += 1
                self.lookups.hit()
            else:
                self.misses += 1
                self.lookups.miss()
                EGRAPH_METRICS.saturation_seconds.observe(report.elapsed)
            results.append({
                "term": str(term), "canonical": str(simplified.term), "cost": term_cost(simplified.term),
                "saturated": report.saturated, "stop": report.stop_reason.value, "iterations": report.iterations,
                "nodes": report.nodes, "matches": report.matches, "elapsedMs": round(report.elapsed * 1000, 3),
                "memoised": memoised,
            })  # fmt: skip
        return results

    # --- routes --------------------------------------------------------------------------------------

    async def saturate(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        only_fields(body, ("term", "terms", "families", "timeoutMs"))
        terms = requested_terms(body, MAX_TERMS)
        families, timeout_ms = self._options(body)
        results = await self._in_thread(lambda: self._simplify_all(terms, families, timeout_ms))
        options = {"families": [colour.value for colour in families], "timeoutMs": timeout_ms}
        if "term" in body:
            return JSONResponse({**results[0], **options})
        return JSONResponse({"results": results, **options})

    async def verify(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        only_fields(body, ("lhs", "rhs", "families", "timeoutMs", "explain"))
        lhs, rhs = (term_field(body.get(side), side) for side in ("lhs", "rhs"))
        explain = body.get("explain", False)
        if not isinstance(explain, bool):
            raise RequestError("explain must be true or false", field="explain", rule="a boolean")
        families, timeout_ms = self._options(body)

        def work() -> tuple[Verdict, bool, Explanation | None]:
            saturator = self._saturator(families, timeout_ms)
            hits = saturator.memo.hits
            verdict = saturator.verify(lhs, rhs)
            memoised = saturator.memo.hits > hits
            return verdict, memoised, saturator.explain(lhs, rhs) if explain and verdict.equal else None

        verdict, memoised, path = await self._in_thread(work)
        (self.lookups.hit if memoised else self.lookups.miss)()
        report = verdict.report
        return JSONResponse({
            "lhs": str(lhs), "rhs": str(rhs), **verdict_fields(verdict, explain, path),
            "saturated": report.saturated, "stop": report.stop_reason.value, "iterations": report.iterations,
            "nodes": report.nodes, "elapsedMs": round(report.elapsed * 1000, 3), "memoised": memoised,
            "families": [colour.value for colour in families], "timeoutMs": timeout_ms,
        })  # fmt: skip

    async def extract(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        if "egraph" in body:
            only_fields(body, ("egraph", "term", "class"))
            return JSONResponse(await self._in_thread(lambda: self._extract_from(body)))
        only_fields(body, ("term", "families"))
        if "term" not in body:
            raise RequestError("term is required", field="term", rule="required")
        term = term_field(body["term"], "term")
        families, timeout_ms = self._options(body)
        (result,) = await self._in_thread(lambda: self._simplify_all([term], families, timeout_ms))
        return JSONResponse({"term": result["term"], "extracted": result["canonical"], "cost": result["cost"],
                             "saturated": result["saturated"], "memoised": result["memoised"],
                             "families": [colour.value for colour in families]})  # fmt: skip

    def _extract_from(self, body: dict[str, Any]) -> dict[str, Any]:
        """The cheapest term of a class of the given e-graph (worker thread: a large state takes a while)."""
        try:
            egraph = EGraph("egraph-service").join(Delta.from_wire(body["egraph"]))
        except ValueError as error:
            raise RequestError(f"egraph: {error}", field="egraph", rule="an e-graph state or delta in wire form") from None
        if ("term" in body) == ("class" in body):
            raise RequestError("give exactly one of term, class", field="class", rule="exactly one of: term, class")
        if "term" in body:
            term = term_field(body["term"], "term")
            class_id = egraph.lookup(term)
            if class_id is None:
                raise RequestError(f"the e-graph does not hold {term}", field="term", rule="a term the e-graph holds")
        else:
            class_id = body["class"]
            if not isinstance(class_id, str) or class_id not in egraph:
                raise RequestError(f"no e-node {class_id!r} in the e-graph", field="class", rule="an e-node id of the e-graph")
        try:
            term = extract(egraph, class_id)
        except ValueError as error:  # the class's e-nodes have not all arrived
            raise RequestError(str(error), field="egraph", rule="holds a whole term for the class") from None
        return {"class": egraph.find(class_id), "extracted": str(term), "cost": term_cost(term), "nodes": len(egraph)}


def create(config) -> EgraphService:
    return EgraphService(config)
