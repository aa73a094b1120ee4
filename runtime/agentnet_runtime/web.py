"""HTTP and metrics plumbing shared by every agentnet process (agents, `up`, components).

- `METRICS`: the metrics every process shares (HTTP, errors, agents, timeline); a service
  component defines its own, named `agentnet_<component>_...`, in its module.
- `create_app(name, routes)`: a Starlette app with `/` (its service metadata, as the deployment
  guides' `curl <component>/` checks expect), `/health` (liveness), `/ready` (readiness, 503
  listing the reasons), `/metrics`, JSON errors that name the field and the rule, and request
  count/latency metrics per route template.
- `MUTATING`: the routes that change state, which the process's guard (guard.py) keeps to holders of
  the network's API token and to each client's rate limit; every route has its body-size limit.
- `json_body`: a request's JSON object; `RequestError`, `parse_term` (request_checks.py): how a handler
  refuses bad input.
- `HttpServer`: uvicorn run inside an existing event loop, stopped on request (the
  caller owns the signals), and `run_until_signal` for a process's main coroutine (which
  also sets the garbage collector's pace: `tune_collector`).

A component is `create_app("crdt-service", [Route(...), ...])`; `agentnet up` mounts it
under its route prefix, and the metrics middleware then counts the request once, at the
outermost app, with the full route template.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import signal
import socket
import time
from typing import Any, Awaitable, Callable, Iterable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Host, Mount, Route

from agentnet_runtime import __version__
from agentnet_runtime.catalogue import BY_NAME, HEALTH_PATH, READY_PATH
from agentnet_runtime.guard import SCOPE_KEY, BodyTooLarge, Guard, GuardMiddleware, too_large
from agentnet_runtime.request_checks import RequestError, json_object, number, parse_term  # noqa: F401 (where handlers found them)

log = logging.getLogger("agentnet")

# --- metrics: every name the runtime exports ------------------------------------------------

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class METRICS:
    """The shared Prometheus metrics (process-wide, in prometheus-client's default registry)."""

    http_requests = Counter("agentnet_http_requests", "HTTP requests served", ["app", "method", "route", "status"])
    http_latency = Histogram(
        "agentnet_http_request_duration_seconds", "HTTP request latency", ["app", "method", "route"], buckets=LATENCY_BUCKETS
    )
    errors = Counter("agentnet_errors", "Errors, by where they happened and what they were", ["source", "kind"])
    messages = Counter("agentnet_messages", "NATS messages by agent, direction (in/out) and kind", ["agent", "direction", "kind"])
    syncs = Counter("agentnet_syncs", "Anti-entropy exchanges with a neighbour, by result", ["agent", "result"])
    clock_progress = Gauge("agentnet_vector_clock_events", "Sum of the agent's vector clock entries (events seen)", ["agent"])
    egraph_nodes = Gauge("agentnet_egraph_nodes", "E-nodes in the agent's replica", ["agent"])
    convergence = Gauge(
        "agentnet_convergence_ratio", "Share of neighbours whose last reported digest equals the agent's", ["agent"]
    )
    rewrites = Counter("agentnet_rewrite_matches", "Rewrite matches applied by the agent's colour family", ["agent"])
    rewrite_passes = Counter("agentnet_rewrite_passes", "Rewrite passes: run, or left to the agent of the same colour "
                             "that searches for this process's agents of that colour", ["agent", "outcome"])  # fmt: skip
    timeline_events = Counter("agentnet_timeline_events", "Timeline events handed to the sink", ["sink"])
    timeline_flush = Histogram("agentnet_timeline_flush_seconds", "Time to append one timeline batch", buckets=LATENCY_BUCKETS)


# --- errors ------------------------------------------------------------------------------------


async def json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says why not."""
    return json_object(await request.body())


async def _request_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestError)
    return JSONResponse(error.body(), status_code=error.status)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 404 and error.detail == "Not Found":
        detail = f"no route for {request.method} {request.url.path}"
    else:
        detail = error.detail
    return JSONResponse({"error": detail}, status_code=error.status_code, headers=getattr(error, "headers", None))


async def _body_too_large(request: Request, error: Exception) -> Response:
    assert isinstance(error, BodyTooLarge)
    return too_large(error.limit)


async def _server_error(request: Request, error: Exception) -> Response:
    METRICS.errors.labels("http", type(error).__name__).inc()
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return JSONResponse({"error": f"internal error ({type(error).__name__})"}, status_code=500)


# --- the app -------------------------------------------------------------------------------------


class _Metrics:
    """ASGI middleware: request count and latency per route template; only the outermost app counts.

    The probes are left out: they are the kubelet's requests, not users', and a 503 from /ready is
    the answer working (counted, a NATS outage would read as an HTTP error ratio)."""

    def __init__(self, app: Callable, name: str):
        self.app, self.name = app, name

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or "agentnet.timed" in scope:
            return await self.app(scope, receive, send)
        scope["agentnet.timed"] = True
        status = 500
        start = time.perf_counter()

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route not in _PROBES:
                template = scope.get("root_path", "") + route if route is not None else "unmatched"
                METRICS.http_latency.labels(self.name, scope["method"], template).observe(time.perf_counter() - start)
                METRICS.http_requests.labels(self.name, scope["method"], template, str(status)).inc()
                if status >= 500:
                    METRICS.errors.labels("http", str(status)).inc()


_PROBES = (HEALTH_PATH, READY_PATH)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


# --- routes that change state ---------------------------------------------------------------------

# Each as the guides write it (the component's route prefix, then its path). Left open: the probes,
# every GET, and POSTs that only compute an answer (/egraph/*, /verify/terms, /verify/embedding,
# /colors/assignment): their caches are not state a caller can change.
MUTATING: frozenset[tuple[str, str]] = frozenset({
    ("POST", "/agent/{id}/message"),  # adds terms to an agent's replica
    ("POST", "/agent/{id}/sync"),  # runs anti-entropy now
    *(("POST", f"/stream/{colour}/{path}") for colour in ("red", "blue", "green") for path in ("terms", "apply")),
    ("POST", "/crdt/merge"),  # joins the states into the service's replica
    ("POST", "/verify/skills"),  # stores a skill
    ("POST", "/agents/sync-round"),  # runs a round of anti-entropy
    ("POST", "/sync/exchange"),  # joins a peer network's delta
    ("POST", "/sync/peer"),  # changes the peer
    ("POST", "/dashboard/ask"),  # submits a term to an agent
})  # fmt: skip


def _guarded(route: Route, prefix: str) -> Route:
    """`route`, behind the process's guard (token and rate limit) if it is in MUTATING."""
    if not any((method, prefix + route.path) in MUTATING for method in route.methods or ()):
        return route
    endpoint = route.endpoint

    async def guarded(request: Request) -> Response:
        guard: Guard | None = request.scope.get(SCOPE_KEY)
        refusal = guard.refusal(request.scope) if guard is not None else None
        return refusal if refusal is not None else await endpoint(request)

    return Route(route.path, guarded, methods=list(route.methods or ()), name=route.name)


# --- GET /: service metadata ------------------------------------------------------------------------

_DESCRIBES = "agentnet-describes"  # the name of routes that answer the metadata (not listed among the routes)

def route_table(routes: Iterable[BaseRoute], prefix: str = "") -> list[dict[str, Any]]:
    """Every route of a router as {"path", "methods"}, mounted apps' routes under their prefix
    (static files as one `prefix/...` entry), read from the router so the list cannot drift."""
    table: list[dict[str, Any]] = []
    for route in routes:
        if isinstance(route, Route) and route.name == _DESCRIBES:
            continue  # GET on a POST route: the metadata again, not a route of its own
        if isinstance(route, Route):
            table.append({"path": prefix + route.path, "methods": sorted((route.methods or set()) - {"HEAD"})})
        elif isinstance(route, Mount):
            inner = getattr(route.app, "routes", None)
            if inner is None:
                table.append({"path": prefix + route.path + "/...", "methods": ["GET"]})
            else:
                table.extend(route_table(inner, prefix + route.path))
        # Host routes repeat what a Mount already lists (agentnet up serves a component both ways).
    return table


def settings_json(settings: Any) -> dict[str, Any]:
    """A settings object as JSON: a pydantic model (model_dump), a dataclass, or a mapping."""
    if hasattr(settings, "model_dump"):
        return settings.model_dump(mode="json")
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return json.loads(json.dumps(dataclasses.asdict(settings), default=str))
    return dict(settings or {})


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def create_app(
    name: str,
    routes: Iterable[BaseRoute] = (),
    *,
    health: Callable[[], dict[str, Any]] | None = None,
    ready: Callable[[], list[str]] | None = None,
    about: Callable[[Request], Awaitable[dict[str, Any]]] | None = None,
    settings: Any = None,
    catch_all: bool = False,
    guard: Guard | None = None,
) -> Starlette:
    """A Starlette app with the runtime's conventions.

    `GET /` is the service's metadata: status, name, version, what `await about(request)` adds (a
    stream's colour and polarity, ...), its routes (from the router, under the prefix it is mounted
    at) and the `settings` in force (frozen, read once at start). `GET` on a route that only takes
    POST answers the same (the guides expect `curl /crdt/merge` to describe the service, not a 405). An app with a page of its own at
    `/` (the dashboard) keeps it, and answers the metadata to a request that accepts JSON, not HTML.
    With `catch_all`, any GET or POST to a path of no route answers the metadata too (the streams:
    the guides' `curl /stream/red/test`).
    `GET /health` is liveness: 200 while the process serves, `health()` adds facts to its body.
    `GET /ready` is readiness: `ready()` lists why the process cannot do its work now (NATS
    away, a JetStream object missing, ...); 200 when the list is empty, else 503 with it.
    `guard` (default: from the environment, settings.GuardSettings) limits bodies and terms on every
    route and guards the MUTATING ones; an app mounted in another is guarded by the outer one's."""

    async def health_endpoint(request: Request) -> Response:
        return JSONResponse({"status": "ok", "app": name, **(health() if health else {})})

    async def ready_endpoint(request: Request) -> Response:
        reasons = ready() if ready else []
        if reasons:
            return JSONResponse({"status": "not ready", "app": name, "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ready", "app": name})

    async def metadata(request: Request) -> Response:
        return JSONResponse({
            "status": "ok", "name": name, "version": __version__, **(await about(request) if about else {}),
            "routes": route_table(app.routes, request.scope.get("root_path", "")),
            "settings": settings_json(settings),
        })  # fmt: skip

    routes = list(routes)
    page = next((r for r in routes if isinstance(r, Route) and r.path == "/"), None)

    async def root_endpoint(request: Request) -> Response:
        if page is not None and not _wants_json(request):
            return await page.endpoint(request)
        return await metadata(request)

    hosts = [r for r in routes if isinstance(r, Host)]  # first: a request for that host is its app's, any path
    prefix = BY_NAME[name].route if name in BY_NAME else ""
    own = [_guarded(r, prefix) if isinstance(r, Route) else r for r in routes if r is not page and not isinstance(r, Host)]
    # Paths no route answers GET for; described before the app's own routes, so that `GET /sync-round`
    # is described rather than taken by a `/{id}` after it.
    answered = {r.path for r in own if isinstance(r, Route) and (not r.methods or "GET" in r.methods)}
    post_only = sorted({r.path for r in own if isinstance(r, Route)} - answered)
    app = Starlette(
        routes=[*hosts, Route("/", root_endpoint), Route(HEALTH_PATH, health_endpoint), Route(READY_PATH, ready_endpoint),
                Route("/metrics", metrics_endpoint),
                *(Route(path, metadata, methods=["GET"], name=_DESCRIBES) for path in post_only), *own,
                *([Route("/{path:path}", metadata, methods=["GET", "POST"], name=_DESCRIBES)] if catch_all else [])],
        exception_handlers={RequestError: _request_error, HTTPException: _http_error, BodyTooLarge: _body_too_large,
                            Exception: _server_error},
    )
    app.add_middleware(GuardMiddleware, guard=guard or Guard.from_environment())
    app.add_middleware(_Metrics, name=name)  # outermost: refusals are counted too
    return app


# --- serving -------------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn that leaves SIGINT/SIGTERM to the process's main coroutine (see run_until_signal)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class HttpServer:
    """uvicorn serving `app` inside the running loop; port 0 picks a free port (see `.port`)."""

    def __init__(self, app: Callable, host: str = "127.0.0.1", port: int = 0):
        self.app, self.host = app, host
        # proto=IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every keep-alive response waits ~40 ms (Nagle against delayed ACKs).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.port: int = self.socket.getsockname()[1]
        self._server = None
        self._task: asyncio.Task | None = None

    async def start(self) -> "HttpServer":
        config = uvicorn.Config(
            self.app, http="h11", ws="none", lifespan="off", log_level="warning", access_log=False,
            timeout_graceful_shutdown=2, log_config=None,  # None: uvicorn's records go to the process's handler (logs.py)
        )  # fmt: skip
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self.socket]), name=f"http:{self.port}")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.005)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.socket.close()


# Container allocations between two young-generation collections (CPython's default is 700).
YOUNG_COLLECTION_THRESHOLD = 50_000


def tune_collector() -> None:
    """Collect garbage less often than CPython's default.

    Replicas hold many long-lived containers, and deltas arrive as many short-lived ones
    (wire rows); at the default pace the collector re-scanned the replicas so often that
    it took a third of a 9-agent burst's time (bench_runtime). Nothing here makes cycles
    in bulk, so fewer, larger young collections cost little memory.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[Any]]) -> Any:
    """Run `main(stop)` in a fresh event loop; SIGINT and SIGTERM set `stop` so it can clean up."""
    tune_collector()

    async def runner() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())
