"""Agents syncing over a real nats-server: convergence, restarts, NATS outages, partitions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from runtime_support import eventually, network, network_document, one_digest, running, runtime_config, submit

from agentnet_runtime.core.terms import parse
from agentnet_runtime.natsbin import free_port
from agentnet_runtime.web import HttpServer

pytestmark = pytest.mark.timeout(60)

AGENTNET = str(Path(sys.executable).with_name("agentnet"))
TERMS = ["x*(y+z)", "a*(b+c)", "(p+q)*r", "m*n + m*k", "u*(v*w)"]


async def test_nine_agents_converge_and_share_derived_equalities(nats_server):
    config = runtime_config(network(9), nats_server.url)
    async with running(config) as host:
        http = await HttpServer(_app(host)).start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", timeout=5) as client:
                for agent, term in zip((0, 2, 4, 6, 8), TERMS):  # five different agents, all three colours
                    response = await client.post(f"/agent/{agent}/message", json={"term": term})
                    assert response.status_code == 202, response.text

                async def same_digest_over_http():
                    states = [(await client.get(f"/agent/{i}/state")).json() for i in range(9)]
                    return len({s["digest"] for s in states}) == 1 and one_digest(host)

                await eventually(same_digest_over_http, 20, "one digest on all nine agents")
                state = (await client.get("/agent/3/state")).json()
                assert state["egraph_nodes"] > 0 and state["neighbors"] == list(config.network.nodes[3].neighbours)
                # Syncs (request/reply pulls) only run where pushes and heartbeat digests left a gap, which
                # timing decides: the count is reported, not required.
                assert state["messages_received"] > 0 and isinstance(state["syncs_completed"], int) and state["clock"]
                messages = (await client.get("/agent/3/messages")).json()
                assert messages["messages"] and {m["type"] for m in messages["messages"]} <= {"send", "receive"}
                assert all(m["agent_id"] == 3 and m["subject"] for m in messages["messages"])
                performance = (await client.get("/api/metrics")).json()["performance"]
                assert performance["agents"] == 9 and performance["messages_received"] >= state["messages_received"]
                # x*(y+z) = x*y + x*z needs the BLUE family (distribute); agent 0 is RED.
                assert config.network.nodes[0].colour == "RED"
                for agent in host.agents.values():
                    assert agent.egraph.equivalent(parse("x*(y+z)"), parse("x*y + x*z")), agent.id
                    assert agent.egraph.equivalent(parse("(p+q)*r"), parse("r*(q+p)")), agent.id
                status = (await client.get("/status")).json()
                assert len({a["digest"] for a in status["agents"].values()}) == 1
                proof = await client.post("/agent/0/message", json={"prove": ["a*(b+c)", "c*a + a*b"]})
                assert proof.json()["equal"] is True  # proven by the network, answered by a RED agent
        finally:
            await http.stop()


async def test_a_killed_agent_restarts_and_catches_up(nats_server, tmp_path):
    net_doc = network_document(9)
    config_file = tmp_path / "network.json"
    config_file.write_text(json.dumps(net_doc))
    config = runtime_config(network(9), nats_server.url, agent_ids=range(8))
    port = free_port()

    def start_agent_8() -> subprocess.Popen:
        return subprocess.Popen(
            [AGENTNET, "agent", "--config", str(config_file), "--agents", "8", "--nats-url", nats_server.url,
             "--host", "127.0.0.1", "--port", str(port), "--sync-interval", "0.2", "--heartbeat-interval", "0.2",
             "--log-level", "warning"],
            env={**os.environ, "AGENTNET_DATA_DIR": ""}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    async def remote_digest(client):
        try:
            return (await client.get(f"http://127.0.0.1:{port}/agent/8/state")).json()["digest"]
        except httpx.HTTPError:
            return None

    agent8 = start_agent_8()
    try:
        async with running(config) as host, httpx.AsyncClient(timeout=2) as client:
            submit(host, 0, TERMS[0])
            await eventually(lambda: _agree(host, client, remote_digest), 20, "agent 8 to converge")
            agent8.kill()  # SIGKILL: no goodbye, no snapshot
            agent8.wait(5)
            submit(host, 1, TERMS[1])
            submit(host, 5, TERMS[2])
            await eventually(lambda: one_digest(host), 20, "the eight live agents to converge")
            agent8 = start_agent_8()
            digest = await eventually(lambda: _agree(host, client, remote_digest), 20, "restarted agent 8 to catch up")
            assert digest == one_digest(host)
    finally:
        agent8.kill()
        agent8.wait(5)


async def _agree(host, client, remote_digest):
    local, remote = one_digest(host), await remote_digest(client)
    return local if local is not None and local == remote else None


async def test_nats_restart_mid_run_loses_nothing(nats_server):
    config = runtime_config(network(9), nats_server.url)
    async with running(config) as host:
        submit(host, 0, TERMS[0])
        await eventually(lambda: one_digest(host), 20, "convergence before the outage")
        nats_server.stop()
        await eventually(lambda: not host.transport.connected, 10, "the agents to notice NATS is gone")
        submit(host, 3, TERMS[1])  # learned only locally while NATS is down
        submit(host, 7, TERMS[3])
        nats_server.start()
        await eventually(lambda: one_digest(host), 30, "convergence after NATS came back")
        for agent in host.agents.values():
            for term in (TERMS[0], TERMS[1], TERMS[3]):
                assert agent.egraph.lookup(parse(term)) is not None, (agent.id, term)


async def test_partition_heals_into_one_digest(nats_server):
    # All agents share one nats-server, so the cut is the transport's test-only switch:
    # it drops every message between the two halves.
    config = runtime_config(network(9), nats_server.url)
    left, right = set(range(5)), set(range(5, 9))
    async with running(config) as host:
        host.transport.partition([left, right])
        submit(host, 0, TERMS[0])
        submit(host, 8, TERMS[2])

        def halves_converged_apart():
            digests = host.digests()
            a, b = {digests[i] for i in left}, {digests[i] for i in right}
            return len(a) == 1 and len(b) == 1 and a != b and not any(x.dirty for x in host.agents.values())

        await eventually(halves_converged_apart, 20, "each half to converge on its own")
        assert host.agents[8].egraph.lookup(parse(TERMS[0])) is None  # nothing crossed the cut
        host.transport.heal()
        await eventually(lambda: one_digest(host), 20, "one digest after the partition healed")
        assert all(a.egraph.lookup(parse(TERMS[0])) and a.egraph.lookup(parse(TERMS[2])) for a in host.agents.values())


def _app(host):
    from agentnet_runtime.agent.main import agent_app

    return agent_app(host)


def ids(events) -> list[tuple[str, int]]:
    """Events by identity (replica, seq), in a fixed order: for comparing what two queries returned."""
    return sorted((e.replica, e.seq) for e in events)


async def test_timeline_of_a_run_is_causal_and_replay_adds_nothing(nats_server, tmp_path):
    from agentnet_runtime.timeline import Timeline

    timeline = Timeline(tmp_path / "timeline.duckdb")
    config = runtime_config(network(9), nats_server.url)
    async with running(config, timeline=timeline) as host:
        submit(host, 0, TERMS[0])
        submit(host, 4, TERMS[1])
        await eventually(lambda: one_digest(host), 20, "convergence")
        await host.sync_round()  # exchanges in the timeline too (a fresh start skips them: equal digests)
    events = timeline.query()  # the host flushed everything when it stopped
    assert {e.kind for e in events} >= {"start", "submit", "send", "receive", "rewrite", "sync", "stop"}
    position = {(e.replica, e.seq): index for index, e in enumerate(events)}
    assert len(position) == len(events)
    for index, event in enumerate(events):
        for replica, count in event.clock.items():
            # Everything in an event's causal past (its vector clock) comes before it.
            assert position[(replica, count)] <= index, (event, replica, count)
    stored = timeline.count()
    assert timeline.append(events) == 0 and timeline.count() == stored
    timeline.close()
    with Timeline(tmp_path / "timeline.duckdb") as reopened:  # a second writer replays too
        assert reopened.append(events[: len(events) // 2]) == 0 and reopened.count() == stored
        sends = reopened.query(agent=0, kind="send")
        assert sends and all(e.origin == 0 and e.kind == "send" and e.colour == "RED" for e in sends)
        assert [e.lamport for e in sends] == sorted(e.lamport for e in sends)
        # since/until split the run exactly: a time with events on both sides of it, and each
        # query returns precisely the events on its side (an empty answer would not pass).
        times = sorted({e.time for e in events})
        assert len(times) > 1
        middle = times[len(times) // 2]
        assert ids(reopened.query(since=middle)) == ids(e for e in events if e.time >= middle)
        assert ids(reopened.query(until=middle)) == ids(e for e in events if e.time < middle)
        assert reopened.query(colour="BLUE", limit=3) and len(reopened.query(limit=3)) == 3


async def test_agent_process_serves_health_before_nats_exists(tmp_path):
    """No NATS at all: the process still answers /health (and says it is connecting)."""
    config_file = tmp_path / "network.json"
    config_file.write_text(json.dumps(network_document(9)))
    port = free_port()
    process = subprocess.Popen(
        [AGENTNET, "agent", "--config", str(config_file), "--agents", "0-2", "--nats-url", f"nats://127.0.0.1:{free_port()}",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=1) as client:

            async def health():
                try:
                    return (await client.get(f"http://127.0.0.1:{port}/health")).json()
                except httpx.HTTPError:
                    return None

            body = await eventually(health, 10, "/health")
            assert body["agents"] == [0, 1, 2] and body["nats"] == "connecting"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.wait(5)
