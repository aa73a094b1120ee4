"""duck-colors: the palette and the 3-colouring, happy paths and refused input."""

from __future__ import annotations

import pytest
from component_support import component_config, serving

from agentnet_runtime.core.colouring import display_palette

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def client():
    async with serving("duck-colors", component_config("duck-colors")) as (_, client):
        yield client


async def test_palette_defaults_to_one_colour_per_agent(client):
    body = (await client.get("/palette")).json()
    assert body["count"] == 9 and body["colours"] == display_palette(9, seed=0)
    assert len(set(body["colours"])) == 9
    seeded = (await client.get("/palette", params={"count": 4, "seed": 7})).json()
    assert seeded["colours"] == display_palette(4, seed=7) != display_palette(4, seed=0)


async def test_assignment_is_the_networks_proper_colouring(client):
    body = (await client.get("/assignment")).json()
    colour = {a["id"]: a["colour"] for a in body["agents"]}
    assert body["proper"] is True and len(colour) == 9
    assert all(colour[a["id"]] != colour[n] for a in body["agents"] for n in a["neighbours"])


async def test_any_topology_is_coloured_or_its_conflicts_listed(client):
    torus = (await client.post("/assignment", json={"agents": 9, "kind": "torus"})).json()
    assert torus["proper"] is True and torus["conflicts"] == []
    k4 = (await client.post("/assignment", json={"edges": [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]})).json()
    assert k4["proper"] is False and k4["certain"] is True and "K4" in k4["reason"]
    assert k4["conflicts"] and all(k4["colours"][str(a)] == k4["colours"][str(b)] for a, b in k4["conflicts"])


@pytest.mark.parametrize(
    "method, path, kwargs, field, rule",
    [
        ("get", "/palette", {"params": {"count": "many"}}, "count", "integer"),
        ("get", "/palette", {"params": {"count": 0}}, "count", "integer 1.."),
        ("post", "/assignment", {"json": {"agents": 9}}, "kind", "required"),
        ("post", "/assignment", {"json": {"agents": 9, "kind": "star"}}, "kind", "can be built"),
        ("post", "/assignment", {"json": {"agents": 9, "kind": "ramanujan", "degree": 3}}, "agents", "can be built"),
        ("post", "/assignment", {"json": {"agents": 9, "kind": "ring", "colour": "RED"}}, "colour", "allowed"),
        ("post", "/assignment", {"json": {"edges": [[0]]}}, "edges", "pairs"),
        ("post", "/assignment", {"content": b"[1"}, "body", "JSON object"),
    ],
)
async def test_bad_input_names_the_field(client, method, path, kwargs, field, rule):
    response = await getattr(client, method)(path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["field"] == field and rule in body["rule"], body
