"""The agents of one process hold one e-graph (AgentSettings.share_replica, the default): they send each
other nothing, every colour's rewrite family runs on it, and processes replicate with each other over a
real nats-server as single agents do: converging, across a partition, and from snapshots."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest
from runtime_support import FAST, SHARED, eventually, network, one_digest, running, runtime_config, submit

from agentnet_runtime.agent import snapshots
from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(60)

# Each needs another colour's family: BLUE distributes, RED reorders and reassociates.
DERIVED = [("x*(y+z)", "x*y + x*z"), ("(p+q)*r", "r*q + r*p"), ("u*(v*w)", "(u*v)*w")]
THIRDS = [range(0, 3), range(3, 6), range(6, 9)]


def derived_everywhere(*hosts: AgentHost) -> bool:
    return all(agent.egraph.equivalent(parse(a), parse(b)) for host in hosts for agent in host.agents.values() for a, b in DERIVED)


async def test_the_agents_of_a_process_hold_one_replica_and_send_each_other_nothing(nats_server):
    async with running(runtime_config(network(9), nats_server.url, settings=SHARED)) as host:
        for agent, (term, _) in zip((8, 7, 5), DERIVED):  # agents that leave their colour's search to another
            submit(host, agent, term)
        await eventually(lambda: one_digest(host) and derived_everywhere(host), 30, "every colour's rewrites on the one e-graph")
        egraphs = {id(agent.egraph) for agent in host.agents.values()}
        assert len(egraphs) == 1
        clock = host.agents[0].egraph.clock
        assert list(clock) == [host.agents[0].replica]  # one entry for the process, not one per agent that took a term
        assert all(a.sent_count == 0 and a.received_count == 0 for a in host.agents.values())
        assert await host.sync_round() == {}  # no neighbour elsewhere: nothing to exchange
        status = host.status()
        assert status["converged"] and all(a["neighbours_agreeing"] == a["neighbours"] for a in status["agents"].values())


async def test_processes_that_each_share_a_replica_converge_over_nats(nats_server):
    net = network(9)
    configs = [runtime_config(net, nats_server.url, agent_ids=third, settings=SHARED).with_(pod_name=f"pod-{n}") for n, third in enumerate(THIRDS)]
    async with contextlib.AsyncExitStack() as stack:
        hosts = [await stack.enter_async_context(running(config)) for config in configs]
        for host, (term, _) in zip(hosts, DERIVED):
            submit(host, min(host.agents), term)
        await eventually(lambda: one_digest(*hosts) and derived_everywhere(*hosts), 30, "one digest across three processes")
        replicas = {agent.replica for host in hosts for agent in host.agents.values()}
        assert len(replicas) == 3 and set(hosts[0].agents[0].egraph.clock) <= replicas
        # Only neighbours in other processes were sent anything.
        for host in hosts:
            for agent in host.agents.values():
                assert set(agent.known) == {n for n in agent.neighbours if n not in host.agents}


async def test_a_partition_between_processes_that_share_replicas_heals_into_one_digest(nats_server):
    net = network(9)
    configs = [runtime_config(net, nats_server.url, agent_ids=third, settings=SHARED).with_(pod_name=f"pod-{n}") for n, third in enumerate(THIRDS)]
    async with contextlib.AsyncExitStack() as stack:
        hosts = [await stack.enter_async_context(running(config)) for config in configs]
        cut = [set(THIRDS[0]), set(THIRDS[1]) | set(THIRDS[2])]
        for host in hosts:
            host.transport.partition(cut)
        submit(hosts[0], 0, DERIVED[0][0])
        submit(hosts[2], 8, DERIVED[1][0])

        def sides_apart() -> bool:
            alone, together = one_digest(hosts[0]), one_digest(hosts[1], hosts[2])
            return bool(alone and together and alone != together)

        await eventually(sides_apart, 20, "each side to converge on its own")
        assert hosts[1].agents[3].egraph.lookup(parse(DERIVED[0][0])) is None  # nothing crossed the cut
        for host in hosts:
            host.transport.heal()
        await eventually(lambda: one_digest(*hosts), 20, "one digest after the partition healed")
        assert all(host.agents[i].egraph.lookup(parse(term)) for host in hosts for i in host.agents for term in (DERIVED[0][0], DERIVED[1][0]))


async def test_a_shared_replica_is_snapshotted_once_and_a_clean_restart_carries_on_its_id(tmp_path):
    config = runtime_config(network(9), "nats://127.0.0.1:1", settings=replace(SHARED, snapshot_interval=60), data_dir=str(tmp_path))
    first = AgentHost(config)
    await first.start()
    submit(first, 4, "x*(y+z)")
    await first.stop()  # nothing answers at that NATS address: the snapshot is all it keeps
    replica, digest = first.agents[0].replica, first.agents[0].egraph.digest()
    written = sorted(agent for agent in range(9) if snapshots.paths(tmp_path, agent)[0].exists())
    assert written == [0] and snapshots.seal_path(tmp_path, 0).exists()

    second = AgentHost(config)
    await second.start()
    try:
        assert all(agent.replica == replica and agent.egraph.digest() == digest for agent in second.agents.values())
        submit(second, 7, "a+b")
        assert list(second.agents[7].egraph.clock) == [replica]  # numbered on under the same id
    finally:
        await asyncio.wait_for(second.stop(), 10)


def knowledge(egraph) -> dict[frozenset[str], frozenset[str]]:
    """Each class (its e-node ids, which are content-derived) with the colours its e-nodes are tagged with."""
    classes: dict[str, set[str]] = {}
    for node in egraph._nodes:  # (no public listing of every id: the engine has no other use for one)
        classes.setdefault(egraph.find(node), set()).add(node)
    return {frozenset(ids): frozenset(colour.value for node in ids for colour in egraph.tags(node)) for ids in classes.values()}


async def test_sharing_computes_what_agents_with_replicas_of_their_own_compute(nats_server):
    """The same terms to the same agents, shared or not: at rest, the same e-nodes in the same classes, tagged
    with the same colours. Not always the same digest: of two congruent e-nodes a rule's result tags the one
    the hash-cons holds, which depends on the order of the merges; replicas of their own tag both between
    them, and their joins keep both tags (the class's colours are the same either way)."""
    terms = [(8, "x*(y+z)"), (7, "(p+q)*r"), (5, "u*(v*w)"), (0, "a*(b+c) + a*b"), (4, "(m+n)*(m+n)")]
    held = {}
    for settings in (FAST, SHARED):
        async with running(runtime_config(network(9), nats_server.url, settings=settings)) as host:
            for agent, term in terms:
                submit(host, agent, term)
            await eventually(lambda: host.settled() and one_digest(host), 30, "the network at rest")
            held[settings.share_replica] = knowledge(host.agents[0].egraph)
    assert len(held[True]) > len(terms) and held[True] == held[False]


async def test_snapshots_of_an_earlier_packing_are_joined_rewritten_and_then_removed(tmp_path, nats_server):
    """Nine agents with replicas of their own (rewriting nothing) leave nine snapshots; started again sharing one
    e-graph, the process holds what all of them held, every colour's family rewrites it, it is written under
    agent 0, and the other eight files are removed."""
    net, data = network(9), str(tmp_path)
    terms = {0: DERIVED[0][0], 4: DERIVED[1][0], 8: DERIVED[2][0]}
    alone = runtime_config(net, "nats://127.0.0.1:1", settings=replace(FAST, snapshot_interval=60, node_cap=0), data_dir=data)
    first = AgentHost(alone)  # no NATS: each agent keeps only its own term
    await first.start()
    for agent, term in terms.items():
        first.agents[agent].submit(parse(term))
    await first.stop()
    assert sorted(agent for agent in range(9) if snapshots.paths(tmp_path, agent)[0].exists()) == list(range(9))

    shared = runtime_config(net, nats_server.url, settings=replace(SHARED, snapshot_interval=60), data_dir=data)
    for life in range(2):
        async with running(shared) as host:
            assert all(host.agents[7].egraph.lookup(parse(term)) is not None for term in terms.values()), life
            await eventually(lambda: host.settled() and derived_everywhere(host), 30, "every colour's rewrites of the restored state")
        assert [agent for agent in range(9) if snapshots.paths(tmp_path, agent)[0].exists()] == [0]
