"""The HTTP guard (guard.py, web.MUTATING): bearer tokens on the mutating routes, a token bucket per client
(429 with Retry-After), the body-size limit (413 before the body is read), all on a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_support import network, runtime_config

from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.agent.main import agent_app
from agentnet_runtime.config import ConfigError
from agentnet_runtime.guard import Guard, RateLimiter
from agentnet_runtime.settings import GuardSettings
from agentnet_runtime.web import HttpServer

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token-of-the-network-0123"


class Serving:
    """The agents' app over an unstarted host (no NATS needed for these routes), behind `guard`, on a
    real uvicorn server on a free loopback port."""

    def __init__(self, **guard_settings):
        host = AgentHost(runtime_config(network(9), "nats://127.0.0.1:1", agent_ids=range(3)))
        self.server = HttpServer(agent_app(host, guard=Guard(GuardSettings(**guard_settings))))

    async def __aenter__(self) -> httpx.AsyncClient:
        await self.server.start()
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.server.port}", timeout=10)
        return self.client

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()
        await self.server.stop()


@pytest.fixture(autouse=True)
def no_guard_environment(monkeypatch):
    for field in GuardSettings.model_fields:
        monkeypatch.delenv(GuardSettings.env_name(field), raising=False)


# --- bearer tokens -----------------------------------------------------------------------------------


async def test_a_mutating_route_needs_the_networks_token_and_read_only_routes_stay_open():
    async with Serving(api_token=TOKEN) as client:
        missing = await client.post("/agent/0/message", json={"term": "x*(y+z)"})
        assert missing.status_code == 401 and missing.headers["content-type"] == "application/json"
        assert missing.json()["field"] == "Authorization" and "Bearer" in missing.json()["error"]
        assert missing.headers["www-authenticate"] == 'Bearer realm="agentnet"'

        wrong = await client.post("/agent/0/message", json={"term": "x"}, headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
        assert "not the network's API token" in wrong.json()["error"]
        basic = await client.post("/agent/0/sync", headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401

        right = await client.post("/agent/0/message", json={"term": "x*(y+z)"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 202, right.text
        # Nothing was added by the refused requests: only the accepted term's five e-nodes.
        assert (await client.get("/agent/0/state")).json()["egraph_nodes"] == 5
        for path in ("/health", "/ready", "/", "/status", "/agent/0/egraph", "/metrics", "/agent/0/message"):
            assert (await client.get(path)).status_code in (200, 503), path  # GETs: no token (/ready: 503, no NATS)


async def test_without_a_token_the_routes_are_open():
    async with Serving() as client:
        assert (await client.post("/agent/0/message", json={"term": "x"})).status_code == 202


# --- rate limits -----------------------------------------------------------------------------------------


async def test_a_client_past_its_rate_gets_429_with_retry_after_then_is_served_again():
    async with Serving(rate_limit_requests=2, rate_limit_period_seconds=2) as client:
        for _ in range(2):
            assert (await client.post("/agent/0/message", json={"term": "x"})).status_code == 202
        refused = await client.post("/agent/0/message", json={"term": "x"})
        assert refused.status_code == 429 and refused.json()["field"] == "client"
        assert "at most 2 per 2 s" in refused.json()["error"]
        retry_after = int(refused.headers["retry-after"])
        assert retry_after == 1  # one token comes back every period/requests = 1 s
        for _ in range(5):  # reads are not limited
            assert (await client.get("/agent/0/state")).status_code == 200
        await asyncio.sleep(retry_after)
        assert (await client.post("/agent/0/message", json={"term": "x"})).status_code == 202


def test_the_bucket_refills_evenly_and_keeps_clients_apart():
    now = [0.0]
    limiter = RateLimiter(3, 3.0, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] = 1.0
    assert limiter.take("a") == 0.0 and limiter.take("a") == pytest.approx(1.0)


@settings(max_examples=200)
@given(requests=st.integers(1, 20), period=st.floats(0.5, 100),
       gaps=st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=200))
def test_no_client_gets_more_than_the_burst_plus_the_refill(requests, period, gaps):
    now = [0.0]
    limiter = RateLimiter(requests, period, clock=lambda: now[0])
    allowed = []
    for gap in gaps:
        now[0] += gap
        wait = limiter.take("client")
        if wait == 0.0:
            allowed.append(now[0])
        else:  # the wait it announces is the truth: one instant later there is a token
            assert wait <= period / requests + 1e-9
    # In any span of time, at most the bucket plus what refills during it.
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            assert j - i + 1 <= requests + (allowed[j] - start) * requests / period + 1e-6


# --- body size ---------------------------------------------------------------------------------------------


def _raw_post(port: int, head: str) -> tuple[int, dict]:
    """Send only the request line and headers; read the answer (the body is never sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1])


async def test_a_20_mb_body_is_refused_from_its_length_before_a_byte_of_it_is_read():
    async with Serving(api_token=TOKEN) as client:
        port = int(str(client.base_url).rsplit(":", 1)[1])
        for path in ("/agent/0/message", "/agent/0/state"):  # every route, mutating or not
            head = (f"POST {path} HTTP/1.1\r\nHost: agents\r\nContent-Type: application/json\r\n"
                    f"Authorization: Bearer {TOKEN}\r\nContent-Length: {20 * 1024 * 1024}\r\n\r\n")
            status, body = await asyncio.to_thread(_raw_post, port, head)
            assert status == 413 and body["field"] == "body" and "maxBodyBytes = 4194304" in body["error"]


async def test_a_streamed_body_is_refused_once_it_passes_the_limit():
    async def chunks():
        for _ in range(64):
            yield b" " * 65536  # 4 MiB in all, without a Content-Length (chunked)

    async with Serving(max_body_bytes=1024 * 1024) as client:
        refused = await client.post("/agent/0/message", content=chunks(), headers={"content-type": "application/json"})
        assert refused.status_code == 413 and "maxBodyBytes = 1048576" in refused.json()["error"]
        small = await client.post("/agent/0/message", content=json.dumps({"term": "x"}).encode())
        assert small.status_code == 202


# --- settings ----------------------------------------------------------------------------------------------


def test_the_guard_reads_the_environment_and_names_a_bad_variable(monkeypatch):
    monkeypatch.setenv("AGENTNET_API_TOKEN", TOKEN)
    monkeypatch.setenv("AGENTNET_MAX_TERM_DEPTH", "12")
    monkeypatch.setenv("AGENTNET_RATE_LIMIT_REQUESTS", "100")
    guard = Guard.from_environment()
    assert guard.token == TOKEN.encode() and guard.settings.max_term_depth == 12 and guard.limiter is not None
    assert TOKEN not in json.dumps(guard.settings.model_dump(mode="json"))  # shown as a secret, never in clear
    monkeypatch.setenv("AGENTNET_MAX_TERM_DEPTH", "100000")
    with pytest.raises(ConfigError, match=r"AGENTNET_MAX_TERM_DEPTH must be <= 300, got 100000"):
        Guard.from_environment()
    monkeypatch.setenv("AGENTNET_MAX_TERM_DEPTH", "12")
    monkeypatch.setenv("AGENTNET_API_TOKEN", "short")
    with pytest.raises(ConfigError, match="AGENTNET_API_TOKEN"):
        Guard.from_environment()


def test_every_mutating_route_in_the_table_is_a_route_of_the_runtime():
    """web.MUTATING cannot name a route that is not there (a renamed route would silently go unguarded)."""
    from agentnet_runtime import components
    from agentnet_runtime.catalogue import BY_NAME, COMPONENT_NAMES
    from agentnet_runtime.web import MUTATING, route_table

    config = runtime_config(network(9), "nats://127.0.0.1:1", agent_ids=())
    host = AgentHost(runtime_config(network(9), "nats://127.0.0.1:1", agent_ids=range(3)))
    served = {(method, row["path"]) for row in route_table(agent_app(host).routes) for method in row["methods"]}
    for name in COMPONENT_NAMES:
        app = components.create(name, config).app()
        served |= {(method, row["path"]) for row in route_table(app.routes, BY_NAME[name].route) for method in row["methods"]}
    assert MUTATING <= served, sorted(MUTATING - served)
