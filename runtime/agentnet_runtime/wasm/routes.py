"""What each Spin component answers, as a function of the request: `respond(component, method, path,
body, environ) -> (status, headers, JSON body)`.

Each component serves its stateless POST routes over the pure functions its Python twin uses, and the
runtime's conventions as web.create_app serves them: GET / (the service metadata; also GET on a POST
route, as the guides' `curl /crdt/merge` expects), GET /health, GET /ready, errors as
{"error", "field", "rule"} with the same status codes (400 not JSON, 422 a bad field, 404 no route,
405 the wrong method, 500 a setting refused or an internal error). Routes are relative to the
component's prefix (catalogue.py), as Spin strips it (spin.toml's route "/egraph/..." and the
component's path info).

What a Spin component does not serve, its Python twin does (workload Deployment): egraph-service's
memo across requests; crdt-service's merge cache, its replica (GET /state) and NATS crdt.merge;
skill-verification's network replica (so /terms votes on evaluation and saturation only), its
skills store (/skills, /embedding) and GET /replica.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from agentnet_runtime import __version__
from agentnet_runtime.catalogue import HEALTH_PATH, READY_PATH, SPIN_COMPONENTS
from agentnet_runtime.answers import crdt, verification
from agentnet_runtime.answers.egraph import EgraphAnswers
from agentnet_runtime.request_checks import RequestError, json_object
from agentnet_runtime.wasm import settings as wasm_settings

Settings = dict[str, Any]
Answer = Callable[[dict[str, Any], Settings], dict[str, Any]]


def _egraph(settings: Settings) -> EgraphAnswers:
    return EgraphAnswers(settings["saturation_timeout_ms"], settings["node_limit"], settings["memo_size"])


def _terms(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    lhs, rhs = verification.term_claim(body)
    seconds = settings["budget_ms"] / 1000
    verifiers = [verification.verifier(k, settings["iterations"], settings["nodes"], seconds) for k in range(settings["num_agents"])]
    judged = verification.judge_all(verifiers, lhs, rhs, network_equal=False)  # no replica in a Spin instance
    return verification.terms_answer(lhs, rhs, judged, settings["quorum"])


@dataclass(frozen=True)
class SpinComponent:
    settings_model: str  # the settings.py model of the component
    routes: Mapping[str, Answer]  # POST path -> its answer to a JSON object
    health: Callable[[Settings], dict[str, Any]] = lambda settings: {}  # facts added to GET /health


SPIN: dict[str, SpinComponent] = {
    "egraph-service": SpinComponent(
        "EgraphSettings",
        {"/saturate": lambda body, s: _egraph(s).saturate(body), "/verify": lambda body, s: _egraph(s).verify(body),
         "/extract": lambda body, s: _egraph(s).extract(body)},
        health=lambda s: _egraph(s).health(),
    ),
    "crdt-service": SpinComponent("CrdtSettings", {"/merge": lambda body, s: crdt.merge(body)}),
    "skill-verification": SpinComponent("VerificationSettings", {"/terms": _terms},
                                        health=lambda s: {"verifiers": s["num_agents"]}),
}  # fmt: skip
assert set(SPIN) == set(SPIN_COMPONENTS), "catalogue.Component.spin and the Spin build disagree"

Response = tuple[int, dict[str, str], dict[str, Any]]


def _metadata(component: str, spin: SpinComponent, settings: Settings) -> dict[str, Any]:
    routes = [{"path": path, "methods": ["GET"]} for path in ("/", HEALTH_PATH, READY_PATH)]
    routes += [{"path": path, "methods": ["POST"]} for path in spin.routes]
    return {"status": "ok", "name": component, "version": __version__, "routes": routes, "settings": settings}


def respond(component: str, method: str, path: str, body: bytes, environ: Mapping[str, str]) -> Response:
    """The answer of `component` to one request (path relative to its prefix), with the settings
    `environ` gives (settings.given's, in the build)."""
    spin = SPIN[component]
    try:
        settings = wasm_settings.read(wasm_settings.schemas()[spin.settings_model], component, environ)
    except wasm_settings.SettingError as error:  # the Python process would not have started
        return 500, {}, {"error": str(error)}
    try:
        if method in ("GET", "HEAD"):
            if path == HEALTH_PATH:
                return 200, {}, {"status": "ok", "app": component, **spin.health(settings)}
            if path == READY_PATH:
                return 200, {}, {"status": "ready", "app": component}
            if path == "/" or path in spin.routes:
                return 200, {}, _metadata(component, spin, settings)
        elif method == "POST" and path in spin.routes:
            return 200, {}, spin.routes[path](json_object(body), settings)
        if path in spin.routes or path in ("/", HEALTH_PATH, READY_PATH):
            allowed = "POST" if path in spin.routes and path != "/" else "GET, HEAD"
            return 405, {"allow": allowed}, {"error": "Method Not Allowed"}
        return 404, {}, {"error": f"no route for {method} {path}"}
    except RequestError as error:
        return error.status, {}, error.body()
    except Exception as error:  # as web.py's: the type in the answer, the traceback in the log (stderr)
        traceback.print_exc()
        return 500, {}, {"error": f"internal error ({type(error).__name__})"}


def render(payload: dict[str, Any]) -> bytes:
    """JSON as Starlette's JSONResponse writes it."""
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()
