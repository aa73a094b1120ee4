"""What a process's HTTP server refuses before a handler does any work (issue 17; guide 001's security notes).

- Every route: a body over `max_body_bytes` is a 413, from its Content-Length before a byte is read, or
  as soon as the bytes streamed pass the limit (a body without a length).
- Every term a route parses: deeper than `max_term_depth` or larger than `max_term_size` is a 422 that
  names the limit (request_checks.term_limits(), which the parser is given while the request runs).
- The mutating routes (web.MUTATING): with an API token set, a request without `Authorization: Bearer
  <token>`, or with another token, is a 401 with WWW-Authenticate; with a rate limit set, a client
  (its address) past its token bucket is a 429 with Retry-After.

The settings are settings.GuardSettings (AGENTNET_* variables; the operator sets them from spec.limits
and the network's API token Secret). One Guard per process, at its outermost app (web.create_app).
"""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict
from typing import Any, Callable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from agentnet_runtime.request_checks import TERM_LIMITS
from agentnet_runtime.settings import GuardSettings

SCOPE_KEY = "agentnet.guard"  # the ASGI scope's entry of the outermost app's Guard
REALM = 'Bearer realm="agentnet"'
MOST_CLIENTS = 10_000  # token buckets kept; the least recently seen client's goes first

class BodyTooLarge(Exception):
    """The body streamed past max_body_bytes (raised from `receive`: web.py answers it with a 413)."""

    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


def too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"the request body is larger than the limit maxBodyBytes = {limit}", "field": "body",
                         "rule": f"at most {limit} bytes (maxBodyBytes)"}, status_code=413)  # fmt: skip


class RateLimiter:
    """A token bucket per client: `requests` tokens, refilled evenly over `period` seconds."""

    def __init__(self, requests: int, period: float, clock: Callable[[], float] = time.monotonic):
        self.capacity, self.period, self.rate, self.clock = requests, period, requests / period, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when counted)

    def take(self, client: str) -> float:
        """0.0 when the client may go ahead (its token is taken), else the seconds until it may."""
        now = self.clock()
        tokens, then = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[client] = (tokens - 1 if wait == 0.0 else tokens, now)
        if len(self._buckets) > MOST_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


class Guard:
    """A process's limits, API token and rate limiter (see the module's docstring)."""

    def __init__(self, settings: GuardSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.token = settings.api_token.get_secret_value().encode() if settings.api_token is not None else None
        requests = settings.rate_limit_requests
        self.limiter = RateLimiter(requests, settings.rate_limit_period_seconds, clock) if requests else None

    @classmethod
    def from_environment(cls, **given: Any) -> "Guard":
        return cls(GuardSettings.read(**given))

    def refusal(self, scope: dict) -> JSONResponse | None:
        """Why a request to a mutating route is refused (a 429 or 401 response), or None to let it through.
        The rate limit comes first: a client guessing tokens spends its bucket."""
        if self.limiter is not None:
            client = scope.get("client")
            wait = self.limiter.take(client[0] if client else "unknown")
            if wait:
                requests, period = self.settings.rate_limit_requests, self.settings.rate_limit_period_seconds
                return JSONResponse(
                    {"error": f"too many requests: at most {requests} per {period:g} s per client", "field": "client",
                     "rule": f"at most {requests} mutating requests per {period:g} s (rateLimit)"},
                    status_code=429, headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )  # fmt: skip
        if self.token is None:
            return None
        scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _unauthorized("this route needs the network's API token: Authorization: Bearer <token>", REALM)
        if not hmac.compare_digest(given.strip().encode(), self.token):
            return _unauthorized("the bearer token is not the network's API token", f'{REALM}, error="invalid_token"')
        return None


def _unauthorized(message: str, challenge: str) -> JSONResponse:
    return JSONResponse({"error": message, "field": "Authorization", "rule": "Bearer <the network's API token>"},
                        status_code=401, headers={"WWW-Authenticate": challenge})  # fmt: skip


class GuardMiddleware:
    """ASGI middleware of every app; only the outermost one of a request acts (an app mounted in
    another, as `agentnet up` mounts the components, is guarded by the outer one's Guard)."""

    def __init__(self, app: Callable, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or SCOPE_KEY in scope:
            return await self.app(scope, receive, send)
        scope[SCOPE_KEY] = self.guard
        settings = self.guard.settings
        limit = settings.max_body_bytes
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > limit:  # (h11 has refused a malformed length already)
            return await too_large(limit)(scope, receive, send)
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        token = TERM_LIMITS.set((settings.max_term_depth, settings.max_term_size))
        try:
            await self.app(scope, limited, send)
        finally:
            TERM_LIMITS.reset(token)
