"""HTTP plumbing and the agents' routes: JSON errors that name the field and the rule, metrics."""

from __future__ import annotations

import httpx
import pytest
from runtime_support import network, runtime_config
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.agent.main import agent_app
from agentnet_runtime.web import RequestError, create_app

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def client():
    """The agents' app over an unstarted host (no NATS needed to validate requests)."""
    host = AgentHost(runtime_config(network(9), "nats://127.0.0.1:1", agent_ids=range(3)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=agent_app(host)), base_url="http://agents") as c:
        yield c


@pytest.mark.parametrize(
    "path, body, status, field, rule",
    [
        ("/agent/0/message", {"term": "x*(y+"}, 422, "term", "must be a term"),
        ("/agent/0/message", {"term": 42}, 422, "term", "must be a term"),
        ("/agent/0/message", {"prove": ["x"]}, 422, "prove", "list of two terms"),
        ("/agent/0/message", {"prove": ["x", "y)"]}, 422, "prove[1]", "must be a term"),
        ("/agent/0/message", {"term": "x", "prove": ["x", "y"]}, 422, "body", "exactly one of"),
        ("/agent/0/message", {"colour": "RED"}, 422, "colour", "allowed fields: term, prove"),
        ("/agent/0/message", [1, 2], 400, "body", "must be a JSON object"),
        ("/agent/7/message", {"term": "x"}, 404, "id", "hosted agent ids 0..2"),
        ("/agent/zero/message", {"term": "x"}, 422, "id", "must be an integer"),
    ],
)
async def test_bad_requests_name_the_field_and_the_rule(client, path, body, status, field, rule):
    response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["field"] == field and rule in error["rule"] and error["error"]


async def test_invalid_json_and_unknown_routes(client):
    response = await client.post("/agent/0/message", content=b"{not json")
    assert response.status_code == 400 and response.json()["field"] == "body"
    response = await client.get("/nowhere")
    assert response.status_code == 404 and "no route for GET /nowhere" in response.json()["error"]
    response = await client.get("/agent/0/message")  # a POST route: GET describes the service, as GET / does
    assert response.status_code == 200 and response.json()["name"] == "agent"
    assert (await client.put("/agent/0/message")).status_code == 405


async def test_state_and_submission_without_nats(client):
    assert (await client.post("/agent/1/message", json={"term": "x*(y+z)"})).status_code == 202
    state = (await client.get("/agent/1/state")).json()
    assert state["agent_id"] == 1 and state["egraph_nodes"] == 5 and state["colour"] in ("RED", "BLUE", "GREEN")
    assert state["messages_received"] == state["messages_sent"] == state["syncs_completed"] == 0  # no NATS: nothing moved
    assert set(state) >= {"node_id", "neighbors", "uptime_seconds", "clock", "digest", "polarity"}
    assert (await client.post("/agent/1/sync")).status_code == 503  # not connected yet, and it says so
    health = (await client.get("/health")).json()
    assert (health["status"], health["agent_id"], health["nats"]) == ("ok", 0, "connecting")  # guide 001's, and ours
    assert health["timestamp"].endswith("Z") and health["agents"] == [0, 1, 2]
    egraph = (await client.get("/agent/1/egraph")).json()
    assert egraph["kind"] == "agentnet.egraph.state"


async def test_guide_001s_timeline_metrics_and_root_without_nats(client):
    for term in ("x*(y+z)", "a+b"):
        assert (await client.post("/agent/1/message", json={"term": term})).status_code == 202
    assert (await client.post("/agent/2/message", json={"prove": ["x", "x"]})).status_code == 200
    events = (await client.get("/api/timeline")).json()
    # causal order (lamport, agent, seq): agent 2's first event is concurrent with agent 1's first two
    assert [(e["type"], e["agent_id"], e["lamport"]) for e in events] == [("submit", 1, 1), ("prove", 2, 1), ("submit", 1, 2)]
    assert events[0]["payload"]["term"] == "x * (y + z)" and events[0]["timestamp"].endswith("Z")
    assert [e["payload"]["term"] for e in (await client.get("/api/timeline", params={"limit": 1})).json()] == ["a + b"]
    refused = await client.get("/api/timeline", params={"limit": 0})
    assert refused.status_code == 422 and refused.json()["field"] == "limit"
    assert (await client.get("/agent/1/messages")).json() == {"agent_id": 1, "messages_received": 0, "messages_sent": 0,
                                                              "messages": []}  # submits are not messages
    metrics = (await client.get("/api/metrics")).json()
    assert [a["agent_id"] for a in metrics["agents"]] == [0, 1, 2]
    assert metrics["performance"]["egraph_nodes"] == sum(a["egraph_nodes"] for a in metrics["agents"]) > 0
    root = (await client.get("/")).json()
    assert root["name"] == "agent" and [a["agent_id"] for a in root["agents"]] == [0, 1, 2]
    assert {a["polarity"] for a in root["agents"]} <= {"positive", "negative", "neutral"}
    assert root["settings"]["sync_interval"] > 0  # the agents' settings in force
    assert {"/agent/{id}/messages", "/api/metrics", "/api/timeline"} <= {r["path"] for r in root["routes"]}


async def test_a_proof_answers_equal_unequal_or_unknown(client):
    async def prove(lhs: str, rhs: str) -> dict:
        response = await client.post("/agent/2/message", json={"prove": [lhs, rhs]})
        assert response.status_code == 200, response.text
        return response.json()

    same = await prove("x*y", "x*y")
    assert same["equal"] is True and same["verdict"] == "equal"
    refuted = await prove("x*y", "x+y")  # no rewriting has run here, and none is needed to refute it
    assert refuted["equal"] is False and refuted["verdict"] == "unequal"
    assert set(refuted["counterexample"]) == {"point", "lhs", "rhs"} and refuted["counterexample"]["lhs"] != refuted["counterexample"]["rhs"]
    not_yet = await prove("x*(y+z)", "x*y + x*z")  # true, but no agent has rewritten it yet: unknown, not false
    assert not_yet["equal"] is None and not_yet["verdict"] == "unknown" and "counterexample" not in not_yet


async def test_component_apps_share_errors_and_metrics_once_mounted():
    async def boom(request):
        raise RuntimeError("broken")

    async def refuse(request):
        raise RequestError("too many", field="count", rule="must be at most 10")

    component = create_app("crdt-service", [Route("/boom", boom), Route("/items/{n}", refuse)])
    root = create_app("root", [Mount("/crdt", app=component), Route("/ok", lambda r: JSONResponse({}))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=root, raise_app_exceptions=False), base_url="http://x") as c:
        assert (await c.get("/crdt/items/3")).json() == {"error": "too many", "field": "count", "rule": "must be at most 10"}
        response = await c.get("/crdt/boom")
        assert response.status_code == 500 and "RuntimeError" in response.json()["error"]
        assert (await c.get("/crdt/health")).json()["app"] == "crdt-service"
        metrics = (await c.get("/metrics")).text
    assert 'agentnet_http_requests_total{app="root",method="GET",route="/crdt/items/{n}",status="422"}' in metrics
    assert 'route="/crdt/boom",status="500"' in metrics
    assert 'app="crdt-service"' not in metrics.split("agentnet_http_requests_total")[1].split("# HELP")[0]
