"""One table of request/response cases for the Spin components, run against both the wasm component
(wasmtime serve) and the Python component (the Service's app) by test_wasm_components.py.

Each case says what both must answer (its status and the fields in `expect`); the two answers must then
be equal field by field, except the fields in `ignore`, which depend on the process's state or timing:
`elapsedMs` (timing), `memoised` and the memo counters (the Python process keeps a memo across requests;
a Spin instance serves one request), crdt-service's cache statistics and skill-verification's NATS
connection (only the Python process has them), and GET /'s route list (the Python process also has
/metrics). A path like `results[].elapsedMs` ignores the field in every element of a list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse


@dataclass(frozen=True)
class Case:
    id: str
    component: str
    method: str
    path: str  # relative to the component's prefix, as its Python app serves it
    body: Any = None  # a JSON value, or bytes sent as they are
    status: int = 200
    expect: dict[str, Any] = field(default_factory=dict)  # fields both answers must have, with these values
    ignore: tuple[str, ...] = ()


def _wire(*terms: str, replica: str = "a") -> dict:
    egraph = EGraph(replica)
    for term in terms:
        egraph.add_term(parse(term))
    return egraph.to_wire()


LEFT, RIGHT = _wire("x * (y + z)", "a + 0"), _wire("x * y + x * z", "b", replica="b")
TIMING = ("elapsedMs", "memoised")
# Every verifier saturates within its budget, in both: the votes do not depend on the machine's speed.
VERIFICATION_SETTINGS = {"budget_ms": 60_000}

CASES: tuple[Case, ...] = (
    # --- egraph-service ---------------------------------------------------------------------------------
    Case("egraph-health", "egraph-service", "GET", "/health", expect={"status": "ok", "app": "egraph-service", "timeoutMs": 5000},
         ignore=("memo",)),
    Case("egraph-metadata", "egraph-service", "GET", "/", expect={"status": "ok", "name": "egraph-service"}, ignore=("routes",)),
    Case("egraph-get-on-a-post-route", "egraph-service", "GET", "/saturate", expect={"name": "egraph-service"}, ignore=("routes",)),
    Case("egraph-ready", "egraph-service", "GET", "/ready", expect={"status": "ready"}),
    Case("saturate-one", "egraph-service", "POST", "/saturate", {"term": "x*(y+z)"},
         expect={"term": "x * (y + z)", "cost": 5, "saturated": True, "families": ["RED", "BLUE", "GREEN"]}, ignore=TIMING),
    Case("saturate-many-one-family", "egraph-service", "POST", "/saturate", {"terms": ["(a+0)*1", "x*1"], "families": ["green"]},
         expect={"families": ["GREEN"]}, ignore=("results[].elapsedMs", "results[].memoised")),
    Case("saturate-lower-budget", "egraph-service", "POST", "/saturate", {"term": "(a+b)+c", "timeoutMs": 2000},
         expect={"timeoutMs": 2000}, ignore=TIMING),
    Case("saturate-not-a-term", "egraph-service", "POST", "/saturate", {"term": "x*(y+"}, 422, {"field": "term"}),
    Case("saturate-both-term-and-terms", "egraph-service", "POST", "/saturate", {"term": "x", "terms": ["y"]}, 422, {"field": "term"}),
    Case("saturate-unknown-field", "egraph-service", "POST", "/saturate", {"term": "x", "bogus": 1}, 422, {"field": "bogus"}),
    Case("saturate-bad-budget", "egraph-service", "POST", "/saturate", {"term": "x", "timeoutMs": 0}, 422, {"field": "timeoutMs"}),
    Case("saturate-bad-family", "egraph-service", "POST", "/saturate", {"term": "x", "families": ["PURPLE"]}, 422, {"field": "families"}),
    Case("saturate-not-json", "egraph-service", "POST", "/saturate", b"{", 400, {"field": "body"}),
    Case("saturate-not-an-object", "egraph-service", "POST", "/saturate", [1, 2], 400, {"field": "body"}),
    Case("verify-equal-explained", "egraph-service", "POST", "/verify", {"lhs": "x+y", "rhs": "y+x", "explain": True},
         expect={"equal": True, "verdict": "equal"}, ignore=TIMING),
    Case("verify-unequal", "egraph-service", "POST", "/verify", {"lhs": "x+1", "rhs": "x+2"},
         expect={"equal": False, "verdict": "unequal"}, ignore=TIMING),
    Case("verify-missing-side", "egraph-service", "POST", "/verify", {"lhs": "x"}, 422, {"field": "rhs"}),
    Case("verify-bad-explain", "egraph-service", "POST", "/verify", {"lhs": "x", "rhs": "x", "explain": "yes"}, 422, {"field": "explain"}),
    Case("extract-saturating", "egraph-service", "POST", "/extract", {"term": "(x+0)*1"}, expect={"extracted": "x", "cost": 1},
         ignore=("memoised",)),
    Case("extract-from-a-state", "egraph-service", "POST", "/extract", {"egraph": LEFT, "term": "a + 0"}, expect={"extracted": "a + 0"}),
    Case("extract-bad-state", "egraph-service", "POST", "/extract", {"egraph": {"kind": "nothing"}, "term": "x"}, 422, {"field": "egraph"}),
    Case("extract-term-not-held", "egraph-service", "POST", "/extract", {"egraph": LEFT, "term": "q"}, 422, {"field": "term"}),
    Case("egraph-no-route", "egraph-service", "GET", "/nowhere", status=404, expect={"error": "no route for GET /nowhere"}),
    Case("egraph-wrong-method", "egraph-service", "PUT", "/saturate", {"term": "x"}, 405, {"error": "Method Not Allowed"}),
    # --- crdt-service -----------------------------------------------------------------------------------
    Case("crdt-health", "crdt-service", "GET", "/health", expect={"status": "ok", "app": "crdt-service"}, ignore=("cache",)),
    Case("crdt-metadata", "crdt-service", "GET", "/merge", expect={"name": "crdt-service"}, ignore=("routes",)),
    Case("merge-states", "crdt-service", "POST", "/merge", {"states": [LEFT, RIGHT]}, expect={"cached": False}),
    Case("merge-base-and-delta", "crdt-service", "POST", "/merge", {"base": RIGHT, "delta": LEFT}, expect={"cached": False}),
    Case("merge-no-states", "crdt-service", "POST", "/merge", {"states": []}, 422, {"field": "states"}),
    Case("merge-not-a-wire-form", "crdt-service", "POST", "/merge", {"states": [LEFT, {"kind": "x"}]}, 422, {"field": "states[1]"}),
    Case("merge-missing-delta", "crdt-service", "POST", "/merge", {"base": LEFT}, 422, {"field": "delta"}),
    Case("merge-states-and-more", "crdt-service", "POST", "/merge", {"states": [LEFT], "base": LEFT}, 422, {"field": "base"}),
    Case("merge-not-json", "crdt-service", "POST", "/merge", b"not json", 400, {"field": "body"}),
    # --- skill-verification -------------------------------------------------------------------------------
    Case("verification-health", "skill-verification", "GET", "/health", expect={"status": "ok", "verifiers": 17}, ignore=("nats",)),
    Case("vote-equal", "skill-verification", "POST", "/terms", {"lhs": "x*(y+z)", "rhs": "x*y + x*z"},
         expect={"verdict": "equal", "equal": True, "verifiers": 17}),
    Case("vote-unequal", "skill-verification", "POST", "/terms", {"lhs": "x+1", "rhs": "x+2"},
         expect={"verdict": "unequal", "equal": False, "agreement": 1.0}),
    Case("vote-missing-side", "skill-verification", "POST", "/terms", {"lhs": "x"}, 422, {"field": "rhs"}),
    Case("vote-term-too-large", "skill-verification", "POST", "/terms", {"lhs": "+".join(["x"] * 202), "rhs": "x"}, 422, {"field": "lhs"}),
    Case("vote-unknown-field", "skill-verification", "POST", "/terms", {"lhs": "x", "rhs": "x", "by": "me"}, 422, {"field": "by"}),
)
