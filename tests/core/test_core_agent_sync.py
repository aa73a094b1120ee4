"""An agent's replication bookkeeping, without a network (Agent is pure bookkeeping; the host
moves the messages): anti-entropy does not resend pushes that may still be in flight, but
resends those a whole sync interval old that the neighbour still lacks; others' events
travel down one tree per origin; and rewriting after news costs the news."""

from collections import Counter

import networkx as nx
import pytest

from agentnet_runtime.agent.agent import Agent, Relay, agent_of, replica_name
from agentnet_runtime.config import AgentSettings, NodeConfig
from agentnet_runtime.core.topology import build_topology
from agentnet_runtime.core.egraph import Delta
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(60)


def pair() -> tuple[Agent, Agent]:
    red = Agent(NodeConfig(0, 0, (1,), "RED", "#ff0000"), "0.test", AgentSettings())
    blue = Agent(NodeConfig(1, 0, (0,), "BLUE", "#0000ff"), "1.test", AgentSettings())
    return red, blue


def sync(asker: Agent, answerer: Agent) -> int:
    """One anti-entropy exchange; returns the e-nodes the answer carried."""
    reply = answerer.answer_sync(asker.id, asker.sync_request())
    carried = Delta.from_wire(reply["delta"]).node_count if "delta" in reply else 0
    asker.absorb_sync_reply(answerer.id, reply)
    return carried


def test_a_push_in_flight_is_not_resent_but_a_lost_one_is():
    red, blue = pair()
    red.submit(parse("x * (y + z)"))
    [(to, pushed)] = red.deltas_to_push()
    assert to == blue.id and pushed.node_count == 5
    assert sync(blue, red) == 0  # the push may still be on its way: not sent twice
    assert red.deltas_to_push() == []
    assert sync(blue, red) == 5  # a sync interval later blue still lacks it: lost, so resent
    assert blue.egraph.digest() == red.egraph.digest()
    [(_, again)] = red.deltas_to_push()  # and pushed again, in case the answer is lost too
    assert again.node_count == 5


def test_a_push_that_arrived_is_not_resent():
    red, blue = pair()
    red.submit(parse("a + b"))
    [(_, pushed)] = red.deltas_to_push()
    blue.receive(red.id, pushed)
    blue.submit(parse("c"))
    assert sync(red, blue) == 1 and sync(red, blue) == 0  # red asks: it gets blue's news only
    assert sync(blue, red) == 0 and sync(blue, red) == 0
    assert red.deltas_to_push() == []
    assert blue.egraph.digest() == red.egraph.digest()


def test_rewriting_after_news_searches_only_the_news():
    red, blue = pair()
    for name in "abcdefgh":
        red.submit(parse(f"{name} + (x + y)"))
    first = red.rewrite()
    assert first is not None and first.saturated and first.matches > 0
    blue.submit(parse("q + (x + y)"))
    [(_, news)] = blue.deltas_to_push()
    red.receive(blue.id, news)
    second = red.rewrite()
    assert second.saturated and 0 < second.matches < first.matches / 4
    assert red.egraph.equivalent(parse("q + (x + y)"), parse("(y + q) + x"))


def test_a_neighbour_that_restarted_empty_gets_everything_again():
    red, blue = pair()
    red.submit(parse("x * (y + z)"))
    [(_, pushed)] = red.deltas_to_push()
    blue.receive(red.id, pushed)
    assert sync(blue, red) == 0 and sync(blue, red) == 0  # red knows blue has it all
    reborn = Agent(NodeConfig(1, 0, (0,), "BLUE", "#0000ff"), "1.reborn", AgentSettings())  # same id, empty
    assert sync(reborn, red) == 5
    assert reborn.egraph.digest() == red.egraph.digest()


def test_agents_compact_by_themselves_and_a_reborn_neighbour_gets_a_checkpoint():
    red, blue = pair()
    for i in range(4):
        red.submit(parse(f"a{i} * (b{i} + c{i})"))
        [(_, pushed)] = red.deltas_to_push()
        blue.receive(red.id, pushed)
    assert red.egraph.events_held() == 4
    sync(blue, red)  # red hears blue's clock: it has all four; blue knows red's from the pushes
    assert red.egraph.events_held() == 0 and blue.egraph.events_held() == 0
    reborn = Agent(NodeConfig(1, 0, (0,), "BLUE", "#0000ff"), "1.reborn", AgentSettings(), max_nodes=None)
    request = reborn.sync_request()
    reply = red.answer_sync(reborn.id, request)
    assert Delta.from_wire(reply["delta"]).checkpoint is not None  # below red's base: the whole state
    reborn.absorb_sync_reply(red.id, reply)
    assert reborn.egraph.digest() == red.egraph.digest() and reborn.egraph.clock == red.egraph.clock


def rook_network(relay: bool = True, size: int = 9) -> dict[int, Agent]:
    """A ramanujan network as bare agents; 9 agents make the 3x3 rook's graph (full of triangles)."""
    graph = build_topology("ramanujan", size, degree=4)
    neighbours = {agent: tuple(sorted(graph.neighbors(agent))) for agent in graph}
    shared = Relay(neighbours) if relay else None
    return {
        agent: Agent(NodeConfig(agent, 0, adjacent, "RED", "#ff0000"), replica_name(agent, "test"), AgentSettings(), relay=shared)
        for agent, adjacent in neighbours.items()
    }  # fmt: skip


def deliver_pushes(agents: dict[int, Agent], lost: set[tuple[int, int]] = frozenset()) -> Counter:
    """Push until quiet, dropping pushes on the `lost` (sender, receiver) edges; e-node rows carried per edge."""
    carried: Counter = Counter()
    while pushes := [(agent, n, delta) for agent in agents.values() for n, delta in agent.deltas_to_push()]:
        for agent, n, delta in pushes:
            if (agent.id, n) not in lost:
                carried[agent.id, n] += delta.node_count
                agents[n].receive(agent.id, delta)
    return carried


def test_relay_trees_span_the_network_through_neighbours():
    graph = build_topology("ramanujan", 64, degree=4, seed=3)
    relay = Relay({agent: tuple(graph.neighbors(agent)) for agent in graph})
    for origin in (0, 17, 63):
        forwarders = {n: [a for a in graph.neighbors(n) if relay.forwards(a, origin, n)] for n in graph if n != origin}
        assert all(len(parents) == 1 for parents in forwarders.values())  # exactly one parent, a neighbour
        tree = nx.Graph([(n, parents[0]) for n, parents in forwarders.items()])
        assert nx.is_tree(tree) and set(tree) == set(graph)
    assert relay.forwards(5, None, 6)  # an origin that is no agent (a component): flooded
    assert agent_of(replica_name(12, "18c9f")) == 12 and agent_of("stream-red.pod-0") is None


def test_an_event_crosses_each_tree_edge_once_where_flooding_repeats_it():
    edges_used = {}
    for relay in (True, False):
        agents = rook_network(relay)
        agents[4].submit(parse("x * (y + z)"))
        carried = deliver_pushes(agents)
        assert len({agent.egraph.digest() for agent in agents.values()}) == 1
        assert set(carried.values()) == {5}  # the event's 5 e-nodes, once on each edge used
        edges_used[relay] = len(carried)
    assert edges_used[True] == 8  # a spanning tree of 9 agents
    assert edges_used[False] > 8


def test_an_agent_whose_tree_parent_drops_the_push_gets_it_from_anti_entropy():
    agents = rook_network()
    origin = agents[0]
    child = next(n for n in range(1, 9) if n not in origin.neighbours)  # two steps from the origin
    parent = next(a for a in agents[child].neighbours if agents[a].relay.forwards(a, 0, child))
    origin.submit(parse("a * b + c"))
    deliver_pushes(agents, lost={(parent, child)})
    assert len(agents[child].egraph) == 0  # only its parent was to push it, and that push was lost
    for _ in range(2):  # the push was made before the previous exchange and is still missing: resent
        sync(agents[child], agents[parent])
    assert agents[child].egraph.digest() == origin.egraph.digest()


def test_an_agent_cut_off_from_its_tree_parent_gets_the_events_from_another_neighbour_whichever_side_asks_first():
    agents = rook_network()
    origin, child = agents[5], agents[7]
    parent = next(a for a in child.neighbours if agents[a].relay.forwards(a, 5, 7))
    other = next(a for a in child.neighbours if a != parent and 5 in agents[a].neighbours)  # holds them, relays them not
    cut = {(parent, child.id), (child.id, parent)}
    origin.submit(parse("a * b + c"))
    deliver_pushes(agents, lost=cut)
    assert len(child.egraph) == 0 and len(agents[other].egraph) == 5
    for _ in range(3):  # a round as a host runs it, agents in id order, then pushes
        sync(child, agents[other])  # the child asks first: the other finds the loss only when it asks, as an asker
        sync(agents[other], child)
        deliver_pushes(agents, lost=cut)
    assert child.egraph.digest() == origin.egraph.digest()


def test_events_a_component_hands_in_spread_to_everyone_though_no_tree_of_this_network_carries_them():
    agents = rook_network(size=64)  # a diameter of 4 or more: the spreading must go on past the entry's neighbours
    elsewhere = Agent(NodeConfig(3, 0, (), "RED", "#ff0000"), replica_name(3, "other-network"), AgentSettings())
    elsewhere.submit(parse("u * v"))  # agent 3 of another network: an id agent 3's tree would claim
    entry = agents[0]
    entry.receive(-7, elsewhere.egraph.delta_since({}))  # as transduction-2tdx hands it in
    carried = deliver_pushes(agents)
    assert {n for (sender, n) in carried if sender == entry.id} == set(entry.neighbours)
    assert len({agent.egraph.digest() for agent in agents.values()}) == 1
