"""How a handler refuses bad input: `RequestError` (a 4xx answer naming the field and the rule) and the
checks of a request's JSON body and fields.

Pure: no HTTP framework, no metrics, so that the Spin (wasi:http) build of the components
(agentnet_runtime.wasm) refuses exactly as the Python processes do (web.py serves these errors there).
"""

from __future__ import annotations

import json
import math
from contextvars import ContextVar
from typing import Any, Iterable

from agentnet_runtime.core.explain import Explanation
from agentnet_runtime.core.saturate import Verdict
from agentnet_runtime.core.terms import MAX_TERM_DEPTH, MAX_TERM_SIZE, Term, TermLimitError, TermSyntaxError, parse

TERM_RULE = "must be a term such as x*(y+z): numbers, variables, + - * / ^, f(args)"

# The parser's limits while a request runs (the process's guard sets them, guard.py; outside a request, terms.py's).
TERM_LIMITS: ContextVar[tuple[int, int]] = ContextVar("agentnet_term_limits", default=(MAX_TERM_DEPTH, MAX_TERM_SIZE))


def term_limits() -> dict[str, int]:
    """The keyword arguments of terms.parse for the request being served."""
    depth, size = TERM_LIMITS.get()
    return {"max_depth": depth, "max_size": size}


class RequestError(Exception):
    """A request the server refuses: becomes `{"error", "field", "rule"}` with a 4xx status."""

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None, status: int = 422):
        super().__init__(message)
        self.message, self.field, self.rule, self.status = message, field, rule, status

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.rule is not None:
            body["rule"] = self.rule
        return body


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or a 400 that says why not."""
    try:
        body = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(f"the body is not valid JSON: {error}", field="body", rule="must be a JSON object", status=400) from None
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object", field="body", rule="must be a JSON object", status=400)
    return body


def number(value: Any, field: str, low: float, high: float, *, integer: bool = False) -> float | int:
    """`value` (a JSON number or a query string) as a number in [low, high], or a 422 naming `field`."""
    kind = "an integer" if integer else "a number"
    rule = f"{kind} {low:g}..{high:g}"
    try:
        if isinstance(value, bool):
            raise ValueError
        parsed = float(value)
        if integer and parsed != int(parsed):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"{field} must be {kind} (got {value!r})", field=field, rule=rule) from None
    if not (math.isfinite(parsed) and low <= parsed <= high):
        raise RequestError(f"{field} must be {kind} {low:g}..{high:g} (got {value!r})", field=field, rule=rule)
    return int(parsed) if integer else parsed


def only_fields(body: dict[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}", field=unknown[0], rule=f"allowed fields: {', '.join(allowed)}")


def term_field(value: object, field: str) -> Term:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{field} must be a non-empty string", field=field, rule=TERM_RULE)
    return parse_term(value, field, TERM_RULE)


def parse_term(text: str, field: str, rule: str) -> Term:
    """`text` parsed within the request's term limits, or a 422 naming `field` (and the limit it passes)."""
    try:
        return parse(text, **term_limits())
    except TermLimitError as error:
        raise RequestError(f"{field} is not accepted: {error.problem}", field=field,
                           rule=f"{error.limit}: at most {error.bound}") from None  # fmt: skip
    except TermSyntaxError as error:
        raise RequestError(f"{field} is not a term: {error}", field=field, rule=rule) from None


def requested_terms(body: dict[str, Any], limit: int) -> list[Term]:
    """The terms of {"term": ...} or {"terms": [...]}; a bad one is named by its field (e.g. terms[2])."""
    if ("term" in body) == ("terms" in body):
        raise RequestError("give exactly one of term, terms", field="term", rule="exactly one of: term, terms")
    if "term" in body:
        return [term_field(body["term"], "term")]
    values = body["terms"]
    if not isinstance(values, list) or not 1 <= len(values) <= limit:
        raise RequestError(f"terms must be a list of 1..{limit} terms", field="terms", rule=f"a list of 1..{limit} terms")
    return [term_field(value, f"terms[{index}]") for index, value in enumerate(values)]


def verdict_fields(verdict: Verdict, explain: bool, path: Explanation | None = None) -> dict[str, Any]:
    """A verdict as JSON: equal (true / false / null) and in words, the counterexample of an unequal,
    for an equal on request its proof path (Saturator.explain: start, steps, the rules they use), or
    the rules used when there is none (egraph-service's /verify and the dashboard's /ask)."""
    fields: dict[str, Any] = {"equal": verdict.equal, "verdict": verdict.verdict}
    if verdict.counterexample is not None:
        fields["counterexample"] = verdict.counterexample.to_json()
    if explain and verdict.equal:
        fields["explanation"] = {"rules": list(verdict.report.rules)} if path is None else path.to_json()
    return fields
