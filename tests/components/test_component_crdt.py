"""crdt-service: merges over HTTP and NATS, the merge cache, the accumulated replica, refused input."""

from __future__ import annotations

import json

import pytest
from component_support import component_config, serving
from engine_support import metric
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime import components, natsclient
from agentnet_runtime.components.cache import ByteLRU
from agentnet_runtime.config import ConfigError
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def served(nats_server):
    async with serving("crdt-service", component_config("crdt-service", nats_server.url)) as running:
        yield running


def replica(name: str, *terms: str) -> EGraph:
    egraph = EGraph(name)
    for term in terms:
        egraph.add_term(parse(term))
    return egraph


def joined(*replicas: EGraph) -> EGraph:
    result = EGraph("expected")
    for egraph in replicas:
        result.join(egraph)
    return result


async def test_merge_joins_states_and_caches_by_their_events(served):
    service, client = served
    a, b, c = replica("a", "x*(y+z)"), replica("b", "x*y + x*z"), replica("c", "f(x, 2)")
    expected = joined(a, b, c)
    first = (await client.post("/merge", json={"states": [a.to_wire(), b.to_wire(), c.to_wire()]})).json()
    assert first["cached"] is False and first["digest"] == expected.digest() and first["nodes"] == len(expected)
    assert EGraph.from_wire(first["state"]).digest() == expected.digest()
    # Same events in another order, or already partly joined: the join is the same, so the cache answers.
    hits = metric("agentnet_crdt_merges_total", path="http", result="hit")
    merge = {"app": "crdt-service", "cache": "merge"}
    cache_hits, cache_misses = metric("agentnet_cache_hits_total", **merge), metric("agentnet_cache_misses_total", **merge)
    reordered = (await client.post("/merge", json={"states": [c.to_wire(), a.to_wire(), b.to_wire()]})).json()
    regrouped = (await client.post("/merge", json={"states": [joined(a, b).to_wire(), c.to_wire()]})).json()
    assert reordered["cached"] is regrouped["cached"] is True
    assert reordered["digest"] == regrouped["digest"] == expected.digest()
    assert metric("agentnet_crdt_merges_total", path="http", result="hit") == hits + 2
    assert service.cache_stats()["hits"] == 2 and service.cache.hit_rate == pytest.approx(2 / 3)
    # The counters the chart's cache alert and panel read.
    assert metric("agentnet_cache_hits_total", **merge) == cache_hits + 2
    assert metric("agentnet_cache_misses_total", **merge) == cache_misses
    # Different events: computed again.
    assert (await client.post("/merge", json={"states": [a.to_wire(), b.to_wire()]})).json()["cached"] is False
    assert metric("agentnet_cache_misses_total", **merge) == cache_misses + 1


async def test_the_cache_is_bounded_in_bytes_by_cache_size_mb(nats_server):
    """CACHE_SIZE_MB (a setting here; the environment as the guides set it wins): merges of distinct
    events fill it; it never holds more bytes than the bound, the oldest go first, the gauge follows."""
    bound_mb = 0.01  # 10 KiB: a few of these merges
    config = component_config("crdt-service", nats_server.url, settings={"CACHE_SIZE_MB": str(bound_mb)})
    async with serving("crdt-service", config) as (service, client):
        bodies = [{"states": [replica(f"r{i}", f"x{i}*(y+{i})").to_wire()]} for i in range(40)]
        for body in bodies:
            assert (await client.post("/merge", json=body)).json()["cached"] is False
            assert 0 < service.cache.bytes <= bound_mb * 2**20
            assert metric("agentnet_crdt_cache_bytes") == service.cache.bytes
        assert service.cache.evictions > 0 and 1 < len(service.cache) < len(bodies)
        answers = [(await client.post("/merge", json=body)).json()["cached"] for body in (bodies[-1], bodies[0])]
        assert answers == [True, False]  # the newest is held, the oldest was pushed out
        stats = (await client.get("/health")).json()["cache"]
        assert stats["maxBytes"] == int(bound_mb * 2**20) and stats["bytes"] <= stats["maxBytes"]


def test_a_bad_cache_size_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("CACHE_SIZE_MB", "lots")
    with pytest.raises(ConfigError, match="CACHE_SIZE_MB must be a number"):
        components.create("crdt-service", component_config("crdt-service"))
    monkeypatch.setenv("CACHE_SIZE_MB", "0")
    with pytest.raises(ConfigError, match="CACHE_SIZE_MB must be > 0, got 0"):
        components.create("crdt-service", component_config("crdt-service"))


@settings(max_examples=200)
@given(
    bound=st.integers(1, 500),
    operations=st.lists(st.tuples(st.sampled_from("gp"), st.integers(0, 15), st.integers(0, 200)), max_size=80),
)
def test_byte_lru_never_holds_more_than_its_bound_and_evicts_the_least_recently_used(bound, operations):
    cache, model = ByteLRU(bound), []  # model: [key, size] from least to most recently used
    for kind, key, size in operations:
        entry = next((e for e in model if e[0] == key), None)
        if kind == "g":
            assert (cache.get(key) is not None) == (entry is not None)
            if entry is not None:
                model.remove(entry)
                model.append(entry)
        else:
            cache.put(key, f"v{key}", size)
            if entry is not None:
                model.remove(entry)
            if size <= bound:
                model.append([key, size])
                while sum(s for _, s in model) > bound:
                    model.pop(0)
        assert cache.bytes == sum(s for _, s in model) <= bound
        assert [k for k, _ in model] == list(cache)


async def test_a_delta_brings_a_base_up_to_date(served):
    _, client = served
    a = replica("a", "x*(y+z)")
    base, clock = a.to_wire(), a.clock
    a.union(a.add_term(parse("x*y + x*z")), a.lookup(parse("x*(y+z)")))
    delta = a.delta_since(clock).to_wire()
    body = (await client.post("/merge", json={"base": base, "delta": delta})).json()
    assert body["digest"] == a.digest() and body["clock"] == a.clock
    assert EGraph.from_wire(body["state"]).equivalent(parse("x*(y+z)"), parse("x*y + x*z"))


async def test_state_is_the_join_of_everything_merged(served):
    _, client = served
    a, b, c = replica("a", "x + 1"), replica("b", "y * 2"), replica("c", "g(z)")
    await client.post("/merge", json={"states": [a.to_wire(), b.to_wire()]})
    await client.post("/merge", json={"base": b.to_wire(), "delta": c.to_wire()})
    state = (await client.get("/state")).json()
    expected = joined(a, b, c)
    assert state["digest"] == expected.digest() and state["nodes"] == len(expected) and state["clock"] == expected.clock
    assert EGraph.from_wire(state["state"]).digest() == expected.digest()


async def test_nats_batches_answer_each_merge_in_order(served, nats_server):
    service, _ = served
    a, b = replica("a", "x*(y+z)"), replica("b", "x*y + x*z")
    merges = [
        {"states": [a.to_wire(), b.to_wire()]},
        {"base": b.to_wire(), "delta": a.to_wire()},  # the same events: answered from the cache
        {"states": [{"kind": "agentnet.egraph.state"}]},
    ]
    # The registry is the process's: earlier tests' refusals are in it too, so count from here.
    refused_before = metric("agentnet_crdt_merges_total", path="nats", result="refused")
    nc = await natsclient.connect(nats_server.url)
    try:
        reply = await nc.request("crdt.merge", json.dumps({"merges": merges}).encode(), timeout=10)
        results = json.loads(reply.data)["results"]
        summaries = json.loads((await nc.request("crdt.merge", json.dumps({"merges": merges[:1], "withState": False}).encode(),
                                                 timeout=10)).data)["results"]  # fmt: skip
        garbage = json.loads((await nc.request("crdt.merge", b"[1, 2]", timeout=10)).data)
    finally:
        await nc.close()
    digest = joined(a, b).digest()
    assert [r.get("digest") for r in results[:2]] == [digest, digest]
    assert [r.get("cached") for r in results[:2]] == [False, True]
    assert results[2]["field"] == "merges[2].states[0]" and "wire form" in results[2]["rule"]
    assert summaries == [{"cached": True, "digest": digest, "nodes": len(joined(a, b)), "clock": joined(a, b).clock}]
    assert garbage["field"] == "merges"
    assert metric("agentnet_crdt_merges_total", path="nats", result="refused") == refused_before + 2  # merges[2], garbage


def forged_node_id() -> dict:
    wire = replica("a", "x + y").to_wire()
    wire["batches"][0][2][0][0] = "0123456789abcdef"  # an id that is not the hash of the node
    return wire


@pytest.mark.parametrize(
    "body, field, rule",
    [
        ({}, "base", "give"),
        ({"states": []}, "states", "list of 1.."),
        ({"states": "all of them"}, "states", "list of 1.."),
        ({"states": [{"kind": "nope"}]}, "states[0]", "wire form"),
        ({"states": [[1, 2]]}, "states[0]", "wire form"),
        ({"states": ["forged"]}, "states[0]", "wire form"),
        ({"base": {"kind": "nope"}}, "delta", "give"),
        ({"states": [], "base": {}}, "base", "give"),
        ({"base": {}, "delta": {}, "extra": 1}, "extra", "give"),
    ],
)
async def test_bad_input_names_the_field(served, body, field, rule):
    _, client = served
    if body.get("states") == ["forged"]:
        body = {"states": [forged_node_id()]}
    response = await client.post("/merge", json=body)
    assert 400 <= response.status_code < 500, response.text
    answer = response.json()
    assert answer["field"] == field and rule in answer["rule"], answer


async def test_a_body_that_is_not_json_is_refused(served):
    _, client = served
    response = await client.post("/merge", content=b"not json")
    assert response.status_code == 400 and response.json()["field"] == "body"


async def test_a_bad_delta_beside_a_good_base_is_named(served):
    _, client = served
    response = await client.post("/merge", json={"base": replica("a", "x + 1").to_wire(), "delta": {"kind": "nope"}})
    assert response.status_code == 422 and response.json()["field"] == "delta" and "wire form" in response.json()["rule"]


def far_event() -> dict:
    """A one-event state whose sequence number needs more than 64 bits: JSON allows it, orjson does not."""
    wire = json.loads(json.dumps(replica("a", "x + 1").to_wire()))  # a copy: wire batches are shared, not to change
    wire["batches"][0][1] = 2**64 + 1
    return wire


async def test_http_merges_write_what_orjson_cannot(served):
    _, client = served
    wire = far_event()
    body = (await client.post("/merge", json={"states": [wire]})).json()
    assert body["cached"] is False and body["state"]["batches"][0][1] == 2**64 + 1
    assert body["digest"] == EGraph("expected").join(wire).digest()


async def test_nats_batches_refuse_what_orjson_cannot_read_naming_the_merge(served, nats_server):
    nc = await natsclient.connect(nats_server.url)
    try:
        good = {"states": [replica("a", "x + 1").to_wire()]}
        payload = json.dumps({"merges": [good, {"states": [far_event()]}], "withState": False}).encode()
        results = json.loads((await nc.request("crdt.merge", payload, timeout=10)).data)["results"]
    finally:
        await nc.close()
    assert results[0]["digest"] == replica("a", "x + 1").digest()
    assert results[1]["field"] == "merges[1].states[0]" and "malformed batch header" in results[1]["error"]

