"""egraph-service's answers as functions of a request body: the one place its routes' fields, checks and
results are made, whether a Python process serves them (egraph_service.py: HTTP, metrics, a worker thread)
or a Spin component does (agentnet_runtime.wasm: a fresh instance, so a fresh memo, per request).

Routes, settings and the memo are described in egraph_service.py. No HTTP framework, metrics or threads here.
"""

from __future__ import annotations

from typing import Any, Callable

from agentnet_runtime.core.colour import COLOURS, Colour
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.core.explain import Explanation
from agentnet_runtime.core.rewrites import rules_for
from agentnet_runtime.core.saturate import LRU, Budget, Saturator, Verdict, extract
from agentnet_runtime.core.terms import Term, size
from agentnet_runtime.request_checks import RequestError, only_fields, requested_terms, term_field, verdict_fields

MAX_TERMS = 1_000  # terms one /saturate request may carry
SATURATORS = 16  # (families, budget) pairs kept with their memos
FAMILIES_RULE = "a non-empty list of RED, BLUE, GREEN"

# Told of every memo lookup: (answered from the memo?, seconds spent saturating, None when not measured).
LookupHook = Callable[[bool, "float | None"], None]


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


class EgraphAnswers:
    """The routes' answers over one Saturator (and memo) per family set and budget; not thread-safe."""

    def __init__(self, timeout_ms: int, node_limit: int, memo_size: int, on_lookup: LookupHook | None = None):
        self.timeout_ms, self.node_limit, self.memo_size = timeout_ms, node_limit, memo_size
        self.on_lookup = on_lookup or (lambda memoised, seconds: None)
        self._saturators = LRU(SATURATORS)
        self.hits = self.misses = 0

    def health(self) -> dict[str, Any]:
        return {"timeoutMs": self.timeout_ms, "memo": {"hits": self.hits, "misses": self.misses, "hitRate": self.hit_rate}}

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return round(self.hits / total, 4) if total else 0.0

    def _options(self, body: dict[str, Any]) -> tuple[tuple[Colour, ...], int]:
        families = families_field(body["families"]) if "families" in body else COLOURS
        timeout = body.get("timeoutMs", self.timeout_ms)
        if type(timeout) is not int or timeout < 1:
            raise RequestError(f"timeoutMs must be a positive integer (got {timeout!r})", field="timeoutMs",
                               rule=f"integer milliseconds, at most {self.timeout_ms} (SATURATION_TIMEOUT_MS)")  # fmt: skip
        return families, min(timeout, self.timeout_ms)

    def _saturator(self, families: tuple[Colour, ...], timeout_ms: int) -> Saturator:
        key = (families, timeout_ms)
        saturator = self._saturators.get(key)
        if saturator is None:
            rules = tuple(rule for colour in families for rule in rules_for(colour))
            budget = Budget(seconds=timeout_ms / 1000, nodes=self.node_limit)
            saturator = Saturator(rules, budget, memo_size=self.memo_size)
            self._saturators.put(key, saturator)
        return saturator

    def _simplify_all(self, terms: list[Term], families: tuple[Colour, ...], timeout_ms: int) -> list[dict[str, Any]]:
        saturator = self._saturator(families, timeout_ms)
        results = []
        for term in terms:
            hits = saturator.memo.hits
            simplified = saturator.simplify(term)
            memoised = saturator.memo.hits > hits
            report = simplified.report
            if memoised:
                self.hits += 1
            else:
                self.misses += 1
            self.on_lookup(memoised, None if memoised else report.elapsed)
            results.append({
                "term": str(term), "canonical": str(simplified.term), "cost": term_cost(simplified.term),
                "saturated": report.saturated, "stop": report.stop_reason.value, "iterations": report.iterations,
                "nodes": report.nodes, "matches": report.matches, "elapsedMs": round(report.elapsed * 1000, 3),
                "memoised": memoised,
            })  # fmt: skip
        return results

    # --- the routes' answers ------------------------------------------------------------------------

    def saturate(self, body: dict[str, Any]) -> dict[str, Any]:
        only_fields(body, ("term", "terms", "families", "timeoutMs"))
        terms = requested_terms(body, MAX_TERMS)
        families, timeout_ms = self._options(body)
        results = self._simplify_all(terms, families, timeout_ms)
        options = {"families": [colour.value for colour in families], "timeoutMs": timeout_ms}
        if "term" in body:
            return {**results[0], **options}
        return {"results": results, **options}

    def verify(self, body: dict[str, Any]) -> dict[str, Any]:
        only_fields(body, ("lhs", "rhs", "families", "timeoutMs", "explain"))
        lhs, rhs = (term_field(body.get(side), side) for side in ("lhs", "rhs"))
        explain = body.get("explain", False)
        if not isinstance(explain, bool):
            raise RequestError("explain must be true or false", field="explain", rule="a boolean")
        families, timeout_ms = self._options(body)
        saturator = self._saturator(families, timeout_ms)
        hits = saturator.memo.hits
        verdict: Verdict = saturator.verify(lhs, rhs)
        memoised = saturator.memo.hits > hits
        path: Explanation | None = saturator.explain(lhs, rhs) if explain and verdict.equal else None
        self.on_lookup(memoised, None)
        report = verdict.report
        return {
            "lhs": str(lhs), "rhs": str(rhs), **verdict_fields(verdict, explain, path),
            "saturated": report.saturated, "stop": report.stop_reason.value, "iterations": report.iterations,
            "nodes": report.nodes, "elapsedMs": round(report.elapsed * 1000, 3), "memoised": memoised,
            "families": [colour.value for colour in families], "timeoutMs": timeout_ms,
        }  # fmt: skip

    def extract(self, body: dict[str, Any]) -> dict[str, Any]:
        if "egraph" in body:
            only_fields(body, ("egraph", "term", "class"))
            return self._extract_from(body)
        only_fields(body, ("term", "families"))
        if "term" not in body:
            raise RequestError("term is required", field="term", rule="required")
        term = term_field(body["term"], "term")
        families, timeout_ms = self._options(body)
        (result,) = self._simplify_all([term], families, timeout_ms)
        return {"term": result["term"], "extracted": result["canonical"], "cost": result["cost"],
                "saturated": result["saturated"], "memoised": result["memoised"],
                "families": [colour.value for colour in families]}  # fmt: skip

    def _extract_from(self, body: dict[str, Any]) -> dict[str, Any]:
        """The cheapest term of a class of the given e-graph (state or delta), with no rewriting."""
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
