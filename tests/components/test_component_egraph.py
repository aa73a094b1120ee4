"""egraph-service: saturation under a time budget, canonical forms, the memo, extraction, refused input."""

from __future__ import annotations

from fractions import Fraction

import pytest
from component_support import component_config, serving
from engine_support import metric

from agentnet_runtime.components import create
from agentnet_runtime.config import ConfigError
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def client():
    config = component_config("egraph-service", settings={"SATURATION_TIMEOUT_MS": "200"})
    async with serving("egraph-service", config) as (_, client):
        yield client


def written(*texts: str) -> set[str]:
    """How the service prints these terms (extraction may pick any commutative variant of equal cost)."""
    return {str(parse(text)) for text in texts}


def distributed_pair() -> dict:
    """An e-graph that holds x*(y+z) and x*y + x*z as one class, in wire form."""
    egraph = EGraph("test")
    egraph.union(egraph.add_term(parse("x*(y+z)")), egraph.add_term(parse("x*y + x*z")))
    return egraph.to_wire()


async def test_saturate_finds_the_canonical_form_and_remembers_it(client):
    first = (await client.post("/saturate", json={"term": "(x*1)*(y+0)"})).json()
    assert first["canonical"] in written("x*y", "y*x") and first["cost"] == 3
    assert first["saturated"] is True and first["stop"] == "saturated" and first["memoised"] is False
    assert first["families"] == ["RED", "BLUE", "GREEN"] and first["timeoutMs"] == 200
    memo = {"app": "egraph-service", "cache": "memo"}
    hits, misses = metric("agentnet_cache_hits_total", **memo), metric("agentnet_cache_misses_total", **memo)
    again = (await client.post("/saturate", json={"term": "(x*1)*(y+0)"})).json()
    assert again["memoised"] is True and again["canonical"] == first["canonical"]
    assert metric("agentnet_cache_hits_total", **memo) == hits + 1  # the counters the chart's cache alert reads
    assert metric("agentnet_cache_misses_total", **memo) == misses
    await client.post("/saturate", json={"term": "(u*1)*(v+0)"})
    assert metric("agentnet_cache_misses_total", **memo) == misses + 1
    health = (await client.get("/health")).json()
    assert health["memo"]["hits"] >= 1 and health["timeoutMs"] == 200


async def test_families_choose_the_rules(client):
    body = {"terms": ["0 + x", "x*(y+z)"], "families": ["red"]}
    red = (await client.post("/saturate", json=body)).json()
    assert red["families"] == ["RED"]
    assert [r["cost"] for r in red["results"]] == [3, 5]  # RED has no identities: 0 + x stays a sum
    everything = (await client.post("/saturate", json={"terms": ["0 + x", "x*(y+z)"]})).json()
    zero_plus_x, distributed = (r["canonical"] for r in everything["results"])
    assert zero_plus_x == "x" and distributed in written("x*(y+z)", "x*(z+y)", "(y+z)*x", "(z+y)*x")


async def test_the_time_budget_is_capped_by_the_setting(client):
    sum_of_twelve = " + ".join(f"v{i}" for i in range(12))  # associativity and commutativity: far too many forms
    body = (await client.post("/saturate", json={"term": sum_of_twelve, "timeoutMs": 5_000})).json()
    assert body["timeoutMs"] == 200  # a request may lower the budget, never raise it
    assert body["saturated"] is False and body["stop"] in ("time-limit", "node-limit")
    short = (await client.post("/saturate", json={"term": "x*(y+z)", "timeoutMs": 50})).json()
    assert short["timeoutMs"] == 50 and short["saturated"] is True


async def test_extract_gives_the_cheapest_equivalent(client):
    body = (await client.post("/extract", json={"term": "(a + 0) * (1 * b)"})).json()
    assert body["extracted"] in written("a*b", "b*a") and body["cost"] == 3
    # From a given e-graph, with no rewriting: the cheaper of the two forms it holds.
    from_graph = (await client.post("/extract", json={"egraph": distributed_pair(), "term": "x*y + x*z"})).json()
    assert from_graph["extracted"] == str(parse("x*(y+z)")) and from_graph["cost"] == 5
    by_class = (await client.post("/extract", json={"egraph": distributed_pair(), "class": from_graph["class"]})).json()
    assert by_class["extracted"] == from_graph["extracted"]


async def test_verify_gives_three_honest_answers(client):
    equal = (await client.post("/verify", json={"lhs": "(x+1)*(x+1)", "rhs": "x*x + 2*x + 1", "explain": True})).json()
    assert equal["verdict"] == "equal" and equal["equal"] is True and equal["stop"] == "goal"
    path = equal["explanation"]  # the proof path (tests/core/test_core_explain.py replays such paths)
    assert path["start"] == str(parse("(x+1)*(x+1)")) and path["steps"][-1]["term"] == str(parse("x*x + 2*x + 1"))
    assert "distribute" in path["rules"] and set(path["rules"]) == {step["rule"] for step in path["steps"]}
    assert "counterexample" not in equal
    unequal = (await client.post("/verify", json={"lhs": "x*x", "rhs": "2*x"})).json()
    assert unequal["verdict"] == "unequal" and unequal["equal"] is False and unequal["stop"] == "refuted"
    example = unequal["counterexample"]
    x = Fraction(example["point"]["x"])
    assert Fraction(example["lhs"]) == x * x and Fraction(example["rhs"]) == 2 * x and x * x != 2 * x
    unknown = (await client.post("/verify", json={"lhs": "x/x", "rhs": "1"})).json()  # x may be 0
    assert unknown["verdict"] == "unknown" and unknown["equal"] is None and unknown["saturated"] is True
    again = (await client.post("/verify", json={"lhs": "1", "rhs": "x/x"})).json()
    assert again["memoised"] is True and again["verdict"] == "unknown"


def test_saturation_timeout_comes_from_the_environment_first(monkeypatch):
    config = component_config("egraph-service", settings={"SATURATION_TIMEOUT_MS": "300"})
    assert create("egraph-service", config).answers.timeout_ms == 300
    monkeypatch.setenv("SATURATION_TIMEOUT_MS", "40")
    assert create("egraph-service", config).answers.timeout_ms == 40
    monkeypatch.setenv("SATURATION_TIMEOUT_MS", "soon")
    with pytest.raises(ConfigError, match="SATURATION_TIMEOUT_MS must be an integer"):
        create("egraph-service", config)
    monkeypatch.delenv("SATURATION_TIMEOUT_MS")
    with pytest.raises(ConfigError, match=r"settings\.SATURATION_TIMEOUT_MS must be > 0, got 0"):
        create("egraph-service", component_config("egraph-service", settings={"SATURATION_TIMEOUT_MS": "0"}))


@pytest.mark.parametrize(
    "path, body, field, rule",
    [
        ("/saturate", {}, "term", "exactly one of"),
        ("/saturate", {"term": "x*("}, "term", "must be a term"),
        ("/saturate", {"terms": "x"}, "terms", "list of 1.."),
        ("/saturate", {"terms": ["x", 5]}, "terms[1]", "must be a term"),
        ("/saturate", {"term": "x", "families": ["PURPLE"]}, "families", "RED, BLUE, GREEN"),
        ("/saturate", {"term": "x", "families": []}, "families", "non-empty"),
        ("/saturate", {"term": "x", "timeoutMs": 0}, "timeoutMs", "integer milliseconds"),
        ("/saturate", {"term": "x", "colour": "RED"}, "colour", "allowed fields"),
        ("/verify", {"lhs": "x"}, "rhs", "must be a"),
        ("/verify", {"lhs": "x % 2", "rhs": "x"}, "lhs", "must be a term"),
        ("/verify", {"lhs": "x", "rhs": "x", "explain": "yes"}, "explain", "boolean"),
        ("/extract", {}, "term", "required"),
        ("/extract", {"egraph": {"kind": "nope"}, "term": "x"}, "egraph", "wire form"),
        ("/extract", {"egraph": "distributed", "term": "q + r"}, "term", "the e-graph holds"),
        ("/extract", {"egraph": "distributed", "class": "0000000000000000"}, "class", "e-node id"),
        ("/extract", {"egraph": "distributed"}, "class", "exactly one of"),
    ],
)
async def test_bad_input_names_the_field(client, path, body, field, rule):
    if body.get("egraph") == "distributed":
        body = {**body, "egraph": distributed_pair()}
    response = await client.post(path, json=body)
    assert 400 <= response.status_code < 500, response.text
    answer = response.json()
    assert answer["field"] == field and rule in answer["rule"], answer


async def test_a_body_that_is_not_json_is_refused(client):
    response = await client.post("/saturate", content=b"{term")
    assert response.status_code == 400 and response.json()["field"] == "body"
