"""An agent's replication bookkeeping, without a network (Agent is pure bookkeeping; the host
moves the messages): anti-entropy does not resend pushes that may still be in flight, but
resends those a whole sync interval old that the neighbour still lacks; and rewriting after
news costs the news."""

import pytest

from agentnet_runtime.agent.agent import Agent
from agentnet_runtime.config import AgentSettings, NodeConfig
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
