"""transduction-2tdx: two networks, each on its own nats-server, joined over HTTP, reach
one digest and keep reaching it after one restarts; the routes and their refusals."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from component_support import component_config, serving
from runtime_support import eventually, one_digest
from transduction_support import NAME, bridged_network

from agentnet_runtime import components
from agentnet_runtime.config import ConfigError
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse
from agentnet_runtime.natsbin import EmbeddedNats, free_port

pytestmark = pytest.mark.timeout(120)

TERMS = ["x*(y+z)", "a*(b+c)", "(p+q)*r", "m*n + m*k", "u*(v*w)", "s*(t+1)"]


@pytest.fixture
def second_nats(tmp_path):
    """The other network's own nats-server: the two networks share nothing but HTTP."""
    with EmbeddedNats(tmp_path / "nats-west") as server:
        yield server


async def status(client: httpx.AsyncClient, network) -> dict:
    return (await client.get(f"{network.url}/status")).json()


async def test_two_networks_converge_and_keep_converging_after_one_restarts(nats_server, second_nats):
    east_port, west_port = free_port(), free_port()
    east_url, west_url = f"http://127.0.0.1:{east_port}", f"http://127.0.0.1:{west_port}"
    fast = {"INTERVAL_MS": "100", "MAX_LATENCY_MS": "2000"}
    async with (
        bridged_network("east", nats_server.url, east_port, VERS_ENDPOINT=west_url, **fast) as east,
        httpx.AsyncClient(timeout=5) as client,
    ):
        async with bridged_network("west", second_nats.url, west_port, agents=6, kind="ring", VERS_ENDPOINT=east_url, **fast) as west:
            east.submit(0, TERMS[0])
            west.submit(3, TERMS[1])
            digest = await eventually(lambda: one_digest(east.host, west.host), 40, "one digest over both networks")
            assert east.has(TERMS[1]) and west.has(TERMS[0])  # each term crossed the bridge
            # BLUE rewrites ran on both sides and their results crossed too (west's agent 0 may be RED).
            assert all(a.egraph.equivalent(parse("a*(b+c)"), parse("a*b + a*c")) for a in east.host.agents.values())
            for side in (east, west):
                report = await eventually(lambda: _settled(client, side), 10, f"{side.url} to report equal digests")
                assert report["replica"]["digest"] == digest and report["exchanges"]["ok"] > 0
                assert report["roundTripMs"]["count"] > 0 and report["lastExchange"]["result"] == "ok"
            # Quiet and converged, each bridge's replica holds the state, not both networks' history.
            for side in (east, west):
                replica = side.service.replica
                await eventually(lambda: replica.events_held() == 0, 15, f"{side.url}'s replica to compact")
                assert replica.digest() == digest

        # West is gone (agents, service, HTTP): east misses its exchanges and learns a term alone.
        east.submit(4, TERMS[2])
        failed = await eventually(lambda: _failing(client, east), 10, "east to count failed exchanges")
        assert "ConnectError" in failed["errors"][-1]["error"]

        # West comes back empty on the same NATS and port, and catches up over the bridge alone.
        async with bridged_network("west", second_nats.url, west_port, agents=6, kind="ring", VERS_ENDPOINT=east_url, **fast) as west:
            west.submit(1, TERMS[3])
            new_digest = await eventually(lambda: one_digest(east.host, west.host), 40, "one digest after west restarted")
            assert new_digest != digest
            assert all(west.has(term) for term in TERMS[:4]) and east.has(TERMS[3])
            report = await eventually(lambda: _settled(client, west), 10, "restarted west to report equal digests")
            assert report["replica"]["digest"] == new_digest


async def _settled(client, side) -> dict | None:
    report = await status(client, side)
    return report if report["digestsEqual"] and report["localEqual"] else None


async def _failing(client, side) -> dict | None:
    report = await status(client, side)
    return report if report["exchanges"]["failed"] > 0 and report["lastExchange"]["result"] == "failed" else None


async def test_exchange_feeds_the_network_and_answers_with_what_the_asker_lacks(nats_server):
    """One network, no peer: a client plays the other network through POST /exchange."""
    async with bridged_network("solo", nats_server.url, free_port(), INTERVAL_MS="100") as solo, httpx.AsyncClient(
        base_url=solo.url, timeout=5
    ) as client:
        elsewhere = EGraph("elsewhere.1")
        elsewhere.add_term(parse("f(g(h))"))
        reply = await client.post("/exchange", json={
            "network": "elsewhere", "clock": elsewhere.clock, "digest": elsewhere.digest(),
            "delta": elsewhere.delta_since({}).to_wire(),
        })  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert reply.json()["network"] == "solo"
        await eventually(lambda: solo.has("f(g(h))"), 20, "the pushed term to reach every agent over NATS")

        solo.submit(2, TERMS[0])
        solo.submit(7, TERMS[4])

        cut_short = []

        async def pulled_everything():
            answer = (await client.post("/exchange", json={
                "network": "elsewhere", "clock": elsewhere.clock, "digest": elsewhere.digest(), "limit": 3,
            })).json()  # fmt: skip
            if "delta" in answer:
                events = answer["delta"]["batches"]
                assert len(events) == 1 or sum(len(e[2]) + len(e[3]) + len(e[4]) for e in events) <= 3, events
                # A checkpoint (the agents compacted what the bridge had not seen) comes whole.
                cut_short.append(not answer["complete"] or "checkpoint" in answer["delta"])
                elsewhere.join(answer["delta"])
                return None  # ask again from the new clock for the rest
            return answer["digest"] == elsewhere.digest() and one_digest(solo.host) == elsewhere.digest()

        await eventually(pulled_everything, 30, "the asker to hold the network's whole state, 3 rows at a time")
        assert any(cut_short)  # the state took several answers
        assert elsewhere.lookup(parse(TERMS[0])) and elsewhere.lookup(parse(TERMS[4]))

        async def local_equal():  # the agents' digests as last pulled, one round-robin pass behind
            report = (await client.get("/status")).json()
            return report if report["localEqual"] else None

        report = await eventually(local_equal, 10, "the service to see its agents on its own digest")
        assert report["exchanges"]["served"] >= 3 and report["peer"]["network"] == "elsewhere"
        assert report["peer"]["url"] is None and report["exchanges"]["ok"] == 0  # nothing configured, nothing sent


async def test_a_late_exchange_is_a_miss_and_shrinks_the_next(nats_server):
    # A peer that takes the connection and never answers: each exchange runs out of budget.
    async def hang(reader, writer):
        await reader.read()

    silent = await asyncio.start_server(hang, "127.0.0.1", 0)
    settings = {"INTERVAL_MS": "50", "MAX_LATENCY_MS": "100", "MAX_ROWS_PER_EXCHANGE": "1000"}
    config = component_config(NAME, nats_server.url, settings=settings)
    try:
        async with serving(NAME, config) as (service, client):
            url = f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}/sync"
            assert (await client.post("/peer", json={"url": url})).json() == {"peer": url}

            async def missed_twice():
                report = (await client.get("/status")).json()
                return report if report["exchanges"]["late"] >= 2 else None

            report = await eventually(missed_twice, 10, "two late exchanges")
            assert report["rowsPerExchange"] < 1000 and "100 ms budget" in report["errors"][-1]["error"]
            assert report["lastExchange"]["result"] == "late" and report["exchanges"]["ok"] == 0
            assert (await client.post("/peer", json={"url": None})).json() == {"peer": None}
            assert (await client.get("/status")).json()["rowsPerExchange"] == 1000
            assert (await client.get("/health")).json()["peer"] is None
    finally:
        silent.close()


@pytest.mark.parametrize(
    "settings, named",
    [({"INTERVAL_MS": "0"}, "INTERVAL_MS"), ({"MAX_LATENCY_MS": "soon"}, "MAX_LATENCY_MS"), ({"VERS_ENDPOINT": "ftp://x"}, "VERS_ENDPOINT")],
)
def test_a_bad_setting_names_itself(settings, named):
    with pytest.raises(ConfigError, match=f"settings.{named} must be"):
        components.create(NAME, component_config(NAME, settings=settings))


GOOD = {"network": "east", "clock": {}, "digest": ""}


@pytest.mark.parametrize(
    "path, body, field, rule",
    [
        ("/exchange", {"network": "east", "digest": ""}, "clock", "required"),
        ("/exchange", {**GOOD, "clock": {"r": -1}}, "clock", "vector clock"),
        ("/exchange", {**GOOD, "network": ""}, "network", "name"),
        ("/exchange", {**GOOD, "digest": 5}, "digest", "digest"),
        ("/exchange", {**GOOD, "delta": {"kind": "nope"}}, "delta", "wire form"),
        ("/exchange", {**GOOD, "limit": 0}, "limit", "integer 1.."),
        ("/exchange", {**GOOD, "colour": "RED"}, "colour", "allowed"),
        ("/exchange", b"[1", "body", "JSON object"),
        ("/peer", {"url": "ftp://east/sync"}, "url", "http(s) URL"),
        ("/peer", {"url": "http://east:99999/sync"}, "url", "http(s) URL"),
        ("/peer", {"url": 5}, "url", "http(s) URL"),
        ("/peer", {}, "url", "required"),
    ],
)
async def test_bad_input_names_the_field(path, body, field, rule):
    async with serving(NAME, component_config(NAME)) as (_, client):
        response = await client.post(path, **({"content": body} if isinstance(body, bytes) else {"json": body}))
        assert 400 <= response.status_code < 500, response.text
        answer = response.json()
        assert answer["field"] == field and rule in answer["rule"], answer
