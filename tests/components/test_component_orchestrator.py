"""agent-orchestrator: membership from real agents' heartbeats (gone when killed, back when
restarted), sync rounds over NATS, its summary on network.status, refused input."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import nats
import pytest
from component_support import component_config, serving
from runtime_support import FAST, eventually, network_document, one_digest, running, runtime_config

from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.config import NetworkConfig
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(60)

NAME = "agent-orchestrator"
BEAT = 0.5  # heartbeat interval of these agents, and the orchestrator's setting
BEATING = replace(FAST, heartbeat_interval=BEAT)
PACKED = 8  # agents per process in the 1,000-agent test (agentsPerPod)


async def agent_view(client, agent: int) -> dict:
    return (await client.get(f"/{agent}")).json()


async def summaries_on(url: str) -> tuple[nats.NATS, list[dict]]:
    """A connection collecting the orchestrator's summaries on network.status, and the list they go to."""
    watcher = await nats.connect(url)
    summaries: list[dict] = []

    async def keep(message) -> None:
        body = json.loads(message.data)["body"]
        if body.get("source") == "orchestrator":
            summaries.append(body)

    await watcher.subscribe(subjects.NETWORK_STATUS, cb=keep, pending_bytes_limit=-1)
    return watcher, summaries


async def test_a_killed_agent_is_gone_and_back_after_restart(nats_server):
    config = component_config(NAME, nats_server.url, settings={"heartbeat_interval": str(BEAT)})
    net = config.network
    watcher, summaries = await summaries_on(nats_server.url)
    try:
        async with serving(NAME, config) as (_, client):
            async with running(runtime_config(net, nats_server.url, agent_ids=range(8), settings=BEATING)):
                async with running(runtime_config(net, nats_server.url, agent_ids=[8], settings=BEATING)):

                    async def all_alive():
                        return (await client.get("/status")).json()["alive"] == 9

                    await eventually(all_alive, 10, "every agent to be seen alive")
                # The host of agent 8 has stopped: its heartbeats stop.

                async def eight_is_gone():
                    return (await agent_view(client, 8))["state"] == "gone"

                await eventually(eight_is_gone, 10 * BEAT + 5, "agent 8 to be marked gone")
                status = (await client.get("/status")).json()
                assert status["gone"] == 1 and status["alive"] == 8 and status["gone_after"] == pytest.approx(2.5 * BEAT)
                assert status["agents"]["8"]["last_heartbeat_age"] > status["gone_after"]
                assert all(view["state"] == "alive" for agent, view in status["agents"].items() if agent != "8")
                async with running(runtime_config(net, nats_server.url, agent_ids=[8], settings=BEATING)):

                    async def eight_is_back():
                        view = await agent_view(client, 8)
                        return view if view["state"] == "alive" else None

                    back = await eventually(eight_is_back, 10, "agent 8 to be back")
                    assert back["returns"] == 1 and back["last_heartbeat_age"] < 2.5 * BEAT
        assert any(summary["gone"] == 1 and summary["agents"]["8"]["state"] == "gone" for summary in summaries)
        assert summaries[-1]["alive"] >= 8 and summaries[-1]["network"] == net.name
    finally:
        await watcher.close()


async def test_a_thousand_agents_joining_cost_a_few_summaries_not_one_each(nats_server):
    """Each summary lists every agent: one per agent joining would be 1,000 summaries of 1,000 agents.
    The heartbeats come from the test, in the agents' format through the agents' Transport (1,000 agent
    processes' worth of replicas would not fit this machine next to the others)."""
    document = network_document(1000, kind="ring")
    document["components"][NAME]["settings"] = {"heartbeat_interval": "1"}
    config = runtime_config(NetworkConfig.from_json(document), nats_server.url, agent_ids=())
    watcher, summaries = await summaries_on(nats_server.url)
    agents = Transport(nats_server.url)
    await agents.connect()
    try:
        async with serving(NAME, config) as (service, client):
            sweep = min(service.interval / 10, 0.25)
            await eventually(lambda: summaries, 10, "the first summary")
            started, before = asyncio.get_running_loop().time(), len(summaries)
            beat = {"digest": "d" * 64, "nodes": 1, "events": 1}
            for first in range(0, 1000, PACKED):  # one message per process, as agent processes send them
                beats = {agent: beat for agent in range(first, first + PACKED)}
                await agents.send(subjects.HEARTBEATS, first, None, subjects.heartbeats(document["network"], f"pod-{first}", beats))

            async def all_told():
                return summaries and summaries[-1]["alive"] == 1000

            await eventually(all_told, 30, "a summary with 1,000 agents alive")
            elapsed = asyncio.get_running_loop().time() - started
            joined = len(summaries) - before
            # At most one summary per sweep and one per interval while they joined (the old rule made 1,000).
            assert joined <= elapsed / sweep + elapsed / service.interval + 2, (joined, elapsed)
            assert summaries[-1]["converged"] and len(summaries[-1]["agents"]) == 1000
    finally:
        await agents.close()
        await watcher.close()


async def test_a_sync_round_through_the_orchestrator_converges_agents_that_do_not_sync(nats_server):
    # No pushes, no anti-entropy timer, no rewriting: only the orchestrator's round can spread the terms.
    quiet = replace(BEATING, eager=False, sync_interval=0, node_cap=0)
    config = component_config(NAME, nats_server.url, settings={"heartbeat_interval": str(BEAT)})
    async with serving(NAME, config) as (service, client), running(runtime_config(config.network, nats_server.url, settings=quiet)) as host:
        for agent, term in ((0, "x*(y+z)"), (4, "a + b"), (8, "f(q, 2)")):
            host.agents[agent].submit(parse(term))
        await host.settle()
        assert one_digest(host) is None
        report = (await client.post("/sync-round", json={"timeout": 2})).json()
        assert report["reached"] == 9 and report["unreachable"] == []
        assert {report["agents"][str(a)]["result"] for a in (0, 4, 8)} == {"pulled"}
        await eventually(lambda: one_digest(host), 10, "one digest on every agent after the round")
        assert all(host.agents[1].egraph.lookup(parse(term)) for term in ("x*(y+z)", "a + b", "f(q, 2)"))

        async def converged():
            return (await client.get("/status")).json()["converged"]

        await eventually(converged, 10, "the orchestrator to see one digest")
        # Every agent now has every event: a round leaves none in the orchestrator's log (its state keeps them).
        await client.post("/sync-round", json={"timeout": 2})
        replica = service.replica.egraph
        assert replica.events_held() == 0 and replica.digest() == host.agents[1].egraph.digest()


@pytest.mark.parametrize(
    "method, path, kwargs, status, field, rule",
    [
        ("get", "/zero", {}, 422, "id", "integer"),
        ("get", "/9", {}, 404, "id", "0..8"),
        ("post", "/sync-round", {"json": {"timeout": -1}}, 422, "timeout", "0.01..60"),
        ("post", "/sync-round", {"json": {"timeout": "soon"}}, 422, "timeout", "number"),
        ("post", "/sync-round", {"json": {"rounds": 2}}, 422, "rounds", "allowed"),
        ("post", "/sync-round", {"content": b"[1"}, 400, "body", "JSON object"),
    ],
)
async def test_bad_input_names_the_field(nats_server, method, path, kwargs, status, field, rule):
    async with serving(NAME, component_config(NAME, nats_server.url)) as (_, client):
        response = await getattr(client, method)(path, **kwargs)
        assert response.status_code == status, response.text
        assert response.json()["field"] == field and rule in response.json()["rule"], response.json()
