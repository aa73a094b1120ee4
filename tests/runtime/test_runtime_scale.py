"""Idle cost follows the edges (issue 21), on a real nats-server: agents of one process talk in
memory, a network at rest exchanges nothing but heartbeats, heartbeats go to neighbours in other
processes only, and observers get one agents.heartbeat per process."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import nats
import orjson
import pytest
from runtime_support import FAST, eventually, network, one_digest, running, runtime_config

from agentnet_runtime.agent import subjects
from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(90)

EXCHANGES = ("state", "sync", "ack")


class Wire:
    """Every message the nats-server carries (a plain client subscribed to `>`), with when it came."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, bytes]] = []

    async def start(self, url: str) -> None:
        self.client = await nats.connect(url)

        async def keep(message) -> None:
            self.seen.append((time.monotonic(), message.subject, message.data))

        await self.client.subscribe(">", cb=keep)
        await self.client.flush()

    def since(self, moment: float) -> list[tuple[str, bytes]]:
        return [(subject, data) for at, subject, data in self.seen if at >= moment]


def exchanges(messages) -> list[str]:
    return [s for s, _ in messages if (parsed := subjects.parse(s)) is not None and parsed[1] in EXCHANGES]


async def quiet_window(wire: Wire, seconds: float) -> list[tuple[str, bytes]] | None:
    """The messages of a window of `seconds` in which no agent exchanged anything, else None."""
    start = time.monotonic()
    await asyncio.sleep(seconds)
    window = wire.since(start)
    return None if exchanges(window) else window


async def test_agents_of_one_process_exchange_in_memory(nats_server):
    wire = Wire()
    await wire.start(nats_server.url)
    try:
        async with running(runtime_config(network(9), nats_server.url)) as host:
            for agent, term in ((0, "x*(y+z)"), (4, "(p+q)*r")):
                host.agents[agent].submit(parse(term))
                host.wake(host.agents[agent])
            await eventually(lambda: one_digest(host), 30, "one digest on the nine agents")
            assert all(a.egraph.equivalent(parse("x*(y+z)"), parse("x*y + x*z")) for a in host.agents.values())
            await host.sync_round()  # a digest exchange of every agent (a fresh start no longer makes one)
            assert all(a.syncs_completed > 0 and a.received_count > 0 for a in host.agents.values())
            # Nothing of it crossed the server: pushes, acks and syncs were handed over in memory ...
            assert exchanges(wire.since(0)) == []
            # ... nor did any agent's own heartbeat: every neighbour is in this process.
            assert not [s for s, _ in wire.since(0) if s.endswith(".heartbeat") and s.startswith("agent.")]
            beats = [orjson.loads(data)["body"] for subject, data in wire.since(0) if subject == subjects.HEARTBEATS]
            assert beats and all(set(body["agents"]) == {str(i) for i in range(9)} for body in beats)
            assert subjects.beats_of(beats[-1], "test")[0] == (0, beats[-1]["agents"]["0"])
            assert subjects.beats_of(beats[-1], "another network") == []
    finally:
        await wire.client.close()


async def test_of_one_colour_one_agent_per_process_searches_and_the_others_get_what_it_derives(nats_server):
    async with running(runtime_config(network(9), nats_server.url)) as host:
        searchers = {min(a.id for a in host.agents.values() if a.colour == colour) for colour in Colour}
        news = [(i, term) for i, term in zip((8, 7, 5), ("x*(y+z)", "(p+q)*r", "u*(v*w)"))]
        assert not {i for i, _ in news} & searchers  # the terms go to agents that leave the search to another
        for agent, term in news:
            host.agents[agent].submit(parse(term))
            host.wake(host.agents[agent])
        await eventually(lambda: one_digest(host) and not any(a.dirty for a in host.agents.values()), 30, "one digest, nothing to rewrite")
        derived = [("x*(y+z)", "x*y + x*z"), ("(p+q)*r", "r*q + r*p"), ("u*(v*w)", "(u*v)*w")]  # BLUE's, and RED's
        for agent in host.agents.values():
            assert all(agent.egraph.equivalent(parse(a), parse(b)) for a, b in derived), agent.id
        rewriters = {a.id for a in host.agents.values() if any(event.kind == "rewrite" for event in a.recent)}
        assert rewriters and rewriters <= searchers


async def test_an_agent_that_pushes_to_a_neighbour_does_not_ack_it_too(nats_server):
    # Two agents (node cap 0: no rewriting) take a term each at once. Agent 0 pushes first; agent 1 then
    # owes it an ack but pushes its own term instead, whose delta carries its clock; agent 0 has nothing
    # to push back (agent 1's term is agent 1's to spread), so it acks.
    settings = replace(FAST, node_cap=0)
    async with running(runtime_config(network(2, "ring"), nats_server.url, settings=settings)) as host:
        for agent, term in ((0, "x*(y+z)"), (1, "(p+q)*r")):
            host.agents[agent].submit(parse(term))
            host.wake(host.agents[agent])
        await eventually(lambda: host.settle(0), 10, "the two agents to settle")
        assert one_digest(host)
        sent = {a.id: [e.subject for e in a.recent if e.kind == "send" and e.subject.endswith((".state", ".ack"))]
                for a in host.agents.values()}  # (a repair round may have exchanged digests meanwhile)
        assert sent == {0: ["agent.1.state", "agent.1.ack"], 1: ["agent.0.state"]}


async def test_a_network_at_rest_sends_heartbeats_only_to_neighbours_in_other_processes(nats_server):
    net = network(9, "ring")  # 0..4 and 5..8 meet at two edges: 4-5 and 8-0
    left, right = set(range(5)), set(range(5, 9))
    outward = {i for i in range(9) for n in net.nodes[i].neighbours if (i in left) != (n in left)}
    assert outward and outward != set(range(9))  # some agents have a neighbour across, some do not
    wire = Wire()
    await wire.start(nats_server.url)
    try:
        async with running(runtime_config(net, nats_server.url, agent_ids=left)) as a, \
                running(runtime_config(net, nats_server.url, agent_ids=right)) as b:  # fmt: skip
            a.agents[0].submit(parse("x*(y+z)"))
            a.wake(a.agents[0])
            await eventually(lambda: one_digest(a, b), 30, "one digest across the two processes")
            # At rest: a window of several heartbeat intervals in which no agent pushes, acks or syncs.
            rest = time.monotonic()
            window = await eventually(lambda: quiet_window(wire, 5 * FAST.heartbeat_interval), 30, "a network at rest")

            def heartbeat_senders() -> set[int]:
                return {subjects.parse(s)[0] for s, _ in wire.since(rest) if s.startswith("agent.") and s.endswith(".heartbeat")}

            # Every agent with a neighbour across is heard (a loaded machine once left two of them out of the
            # 1 s window), and over all that time no other agent sent a heartbeat over NATS.
            await eventually(lambda: heartbeat_senders() >= outward, 10, "a heartbeat from every agent with a neighbour across")
            assert heartbeat_senders() == outward
            pods = [orjson.loads(data)["body"] for subject, data in window if subject == subjects.HEARTBEATS]
            assert {frozenset(map(int, body["agents"])) for body in pods} == {frozenset(left), frozenset(right)}
            # Each agent still knows its neighbours agree, from heartbeats alone.
            for host in (a, b):
                assert all(agent.agreeing_neighbours() == list(agent.neighbours) for agent in host.agents.values())
            # And a change brings the exchanges back: the network converges again.
            b.agents[7].submit(parse("m*n + m*k"))
            b.wake(b.agents[7])
            await eventually(lambda: one_digest(a, b) and a.agents[0].egraph.lookup(parse("m*n + m*k")), 30, "the news everywhere")
    finally:
        await wire.client.close()


async def test_pushes_lost_at_rest_are_repaired(nats_server):
    """Deltas dropped on their way (the transport's partition switch around agent 0) leave its neighbours
    behind although nothing else happens: repair rounds, which skip neighbours known to agree, still
    visit them (agent 0 changed since their last exchange, and their heartbeats' digests differ)."""
    net = network(9)
    async with running(runtime_config(net, nats_server.url)) as host:
        await eventually(lambda: one_digest(host), 30, "the empty network at rest")
        agent = host.agents[0]
        lonely = net.nodes[0].neighbours[0]
        host.transport.partition([{0}, set(range(1, 9))])  # 0 hears nothing and reaches no one
        agent.submit(parse("u*(v*w)"))
        host.wake(agent)
        await host.settle()
        assert host.agents[lonely].egraph.lookup(parse("u*(v*w)")) is None
        host.transport.heal()  # the pushes were lost: only the heartbeats' digests tell
        await eventually(lambda: one_digest(host), 30, "the lost push repaired")
        assert all(a.egraph.lookup(parse("u*(v*w)")) is not None for a in host.agents.values())
