"""A term too deep or too large is a 422 that names the limit on each route that parses terms (the agents'
/agent/{id}/message, egraph-service's /saturate, skill-verification's /terms), never a RecursionError; the
limits are settable per network (AGENTNET_MAX_TERM_DEPTH / _SIZE, which the operator sets from spec.limits)."""

from __future__ import annotations

import httpx
import pytest
from component_support import component_config, serving
from runtime_support import network, runtime_config

from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.agent.main import agent_app
from agentnet_runtime.core.terms import DEPTH_CEILING
from agentnet_runtime.settings import GuardSettings

pytestmark = pytest.mark.timeout(120)

DEEP = "(" * 50_000 + "x" + ")" * 50_000  # nested 50,000 brackets deep
DEEP_SUM = "(" * 3_000 + "x" + " + x)" * 3_000  # a term 3,001 levels deep, of 6,001 nodes
WIDE = " + ".join(["x"] * 20_000)  # a flat sum of 20,000 terms: 39,999 nodes

# (route, the body that carries a term, the field it is named by)
ROUTES = [
    ("agents", "/agent/0/message", lambda term: {"term": term}, "term"),
    ("egraph-service", "/saturate", lambda term: {"term": term}, "term"),
    ("skill-verification", "/terms", lambda term: {"lhs": term, "rhs": "x"}, "lhs"),
]


@pytest.fixture(autouse=True)
def no_guard_environment(monkeypatch):
    for field in GuardSettings.model_fields:
        monkeypatch.delenv(GuardSettings.env_name(field), raising=False)


async def _client(app_name: str, nats_url: str, stack) -> httpx.AsyncClient:
    if app_name == "agents":
        host = AgentHost(runtime_config(network(9), "nats://127.0.0.1:1", agent_ids=range(3)))
        app = agent_app(host)
    else:
        settings = {"pull_interval": "0"} if app_name == "skill-verification" else None
        _, client = await stack.enter_async_context(serving(app_name, component_config(app_name, nats_url, settings=settings)))
        return client
    return await stack.enter_async_context(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agents"))


@pytest.mark.parametrize("app_name, path, body, field", ROUTES, ids=[route[0] for route in ROUTES])
async def test_deep_and_wide_terms_are_422s_naming_the_limit(app_name, path, body, field, nats_server):
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        client = await _client(app_name, nats_server.url, stack)
        for text, limit in ((DEEP, "maxTermDepth = 256"), (DEEP_SUM, "maxTermDepth = 256"), (WIDE, "maxTermSize = 10000")):
            response = await client.post(path, json=body(text))
            assert response.status_code == 422, response.text[:300]
            error = response.json()
            assert error["field"] == field and limit in error["error"], error
            assert error["rule"].startswith(limit.split(" ")[0] + ": at most")
        # Under the limits a term is served as before: 255 levels of brackets round a sum.
        response = await client.post(path, json=body("(" * 255 + "x + 1" + ")" * 255))
        assert response.status_code in (200, 202), response.text[:300]


async def test_the_limits_are_the_networks_own(monkeypatch, nats_server):
    from contextlib import AsyncExitStack

    monkeypatch.setenv(GuardSettings.env_name("max_term_depth"), "4")
    monkeypatch.setenv(GuardSettings.env_name("max_term_size"), "9")
    async with AsyncExitStack() as stack:
        client = await _client("egraph-service", nats_server.url, stack)
        assert (await client.post("/saturate", json={"term": "((a + b) * c) ^ d"})).status_code == 200  # depth 4, 7 nodes
        deeper = await client.post("/saturate", json={"term": "(((a + b) * c) ^ d) - e"})
        assert deeper.status_code == 422 and "maxTermDepth = 4" in deeper.json()["error"]
        larger = await client.post("/saturate", json={"term": "(a + b) * (c + d) - e * f"})  # depth 4, 11 nodes
        assert larger.status_code == 422 and "maxTermSize = 9" in larger.json()["error"]


@pytest.mark.parametrize("app_name, path, body, field", ROUTES[:2], ids=[route[0] for route in ROUTES[:2]])
async def test_a_term_as_deep_as_the_ceiling_allows_is_served_not_a_recursion_error(app_name, path, body, field,
                                                                                   monkeypatch, nats_server):
    """The highest a network may set maxTermDepth (DEPTH_CEILING) keeps the engine's recursive passes (evaluation of
    a counterexample, e-graph insertion, saturation) under Python's recursion limit. (skill-verification refuses
    terms of more than 200 operators itself, so no term it takes is that deep.)"""
    from contextlib import AsyncExitStack

    monkeypatch.setenv(GuardSettings.env_name("max_term_depth"), str(DEPTH_CEILING))
    deep = "(" * (DEPTH_CEILING - 2) + "x + 1" + " + 1)" * (DEPTH_CEILING - 2)  # DEPTH_CEILING levels
    async with AsyncExitStack() as stack:
        client = await _client(app_name, nats_server.url, stack)
        answer = await client.post(path, json=body(deep) if app_name != "agents" else {"prove": [deep, "x + 299"]})
        assert answer.status_code in (200, 202), answer.text[-300:]
        deeper = await client.post(path, json=body("(" + deep + ") * 2"))
        assert deeper.status_code == 422 and f"maxTermDepth = {DEPTH_CEILING}" in deeper.json()["error"]
