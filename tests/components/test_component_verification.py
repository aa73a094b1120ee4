"""skill-verification: K verifiers vote on term equality (with the network's derived deltas and
agents' state as evidence) and on embeddings stored in DuckDB; bad input is refused by name."""

from __future__ import annotations

from fractions import Fraction

import nats
import numpy as np
import pytest
from component_support import component_config, serving
from runtime_support import FAST, eventually, running, runtime_config

from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.rewrites import ALL_RULES, rules_for
from agentnet_runtime.core.saturate import saturate
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(60)

NAME = "skill-verification"
EXPANDED = ("(a+b)*(c+d)", "a*c + a*d + b*c + b*d")  # equal, but takes a saturation more than one iteration


def derived(colour: str, *terms: str, rules=None) -> dict:
    """What a stream component publishes: the delta of the terms saturated with its colour's rules."""
    egraph = EGraph(f"stream-{colour.lower()}.test")
    for term in terms:
        egraph.add_term(parse(term), Colour(colour))
    saturate(egraph, rules or rules_for(colour))
    return egraph.delta_since({}).to_wire()


async def publish(nats_url: str, subject: str, wire: dict) -> None:
    """As a stream component hands it on: in the agents' envelope, from a negative sender id."""
    nc = await nats.connect(nats_url)
    try:
        await nc.publish(subject, Transport.envelope(-2, wire))
        await nc.flush()
    finally:
        await nc.close()


async def verify(client, lhs: str, rhs: str) -> dict:
    response = await client.post("/terms", json={"lhs": lhs, "rhs": rhs})
    assert response.status_code == 200, response.text
    return response.json()


async def test_what_the_streams_derived_is_verified_equal_with_full_agreement(nats_server):
    config = component_config(NAME, nats_server.url, settings={"pull_interval": "0"})
    async with serving(NAME, config) as (service, client):
        await publish(nats_server.url, "stream.derived.blue", derived("BLUE", "x*(y+z)"))
        await publish(nats_server.url, "stream.derived.red", derived("RED", "x*y + x*z"))
        await eventually(lambda: {"stream.blue", "stream.red"} <= set(service.replica.joined), 10, "both streams' deltas")
        body = await verify(client, "x*(y+z)", "x*y + x*z")
        assert body["verdict"] == "equal" and body["agreement"] == 1.0 and body["variance"] == 0
        assert body["votes"] == {"equal": 17} and body["verifiers"] == 17
        assert body["decided_by"] == {"network": 17}  # BLUE's distribution put both in one class
        replica = (await client.get("/replica")).json()
        assert replica["joined"] == {"stream.blue": 1, "stream.red": 1} and replica["nodes"] > 0


async def test_a_verifier_out_of_budget_says_unknown_until_the_network_knows(nats_server):
    config = component_config(NAME, nats_server.url, settings={"pull_interval": "0", "iterations": "1"})
    async with serving(NAME, config) as (service, client):
        before = await verify(client, *EXPANDED)
        assert before["verdict"] == "unknown" and before["votes"] == {"unknown": 17} and before["decided_by"] == {"budget": 17}
        assert before["variance"] == 0  # all agree that they do not know
        # The network (here: one delta saturated with every rule) has proven it: that is evidence enough.
        await publish(nats_server.url, "stream.derived.green", derived("GREEN", *EXPANDED, rules=ALL_RULES))
        await eventually(lambda: service.replica.joined["stream.green"], 10, "the derived delta")
        after = await verify(client, *EXPANDED)
        assert after["verdict"] == "equal" and after["agreement"] == 1.0 and after["decided_by"] == {"network": 17}


async def test_unequal_terms_are_refuted_and_provable_ones_proven(nats_server):
    # Iterations and nodes, not the 50 ms clock, end each verifier's search: under load one verifier once
    # ran out of time on EXPANDED and voted "budget" (this test is about verdicts, not speed).
    config = component_config(NAME, nats_server.url, settings={"pull_interval": "0", "NUM_AGENTS": "5", "budget_ms": "60000"})
    async with serving(NAME, config) as (_, client):
        unequal = await verify(client, "x*(y+z)", "x*y + z")
        assert unequal["verdict"] == "unequal" and unequal["agreement"] == 1.0 and unequal["variance"] == 0
        assert unequal["decided_by"] == {"evaluation": 5} and unequal["verifiers"] == 5 and unequal["equal"] is False
        example = unequal["counterexample"]  # the values differ at a point, shown
        point = {name: Fraction(value) for name, value in example["point"].items()}
        assert point["x"] * (point["y"] + point["z"]) == Fraction(example["lhs"]) != Fraction(example["rhs"])
        for lhs, rhs in (("x+x", "2*x"), ("(x+1)*(x+1)", "x*x+2*x+1"), ("2*2", "4"), ("6/4", "3/2")):
            answer = await verify(client, lhs, rhs)  # numbers are numbers
            assert answer["verdict"] == "equal" and answer["equal"] is True and "counterexample" not in answer, answer
        proven = await verify(client, *EXPANDED)
        assert proven["verdict"] == "equal" and proven["decided_by"] == {"saturation": 5}
        assert [ballot["verifier"] for ballot in proven["ballots"]] == [0, 1, 2, 3, 4]


async def test_what_is_not_derivable_is_unknown_never_unequal(nats_server):
    config = component_config(NAME, nats_server.url, settings={"pull_interval": "0", "NUM_AGENTS": "3"})
    async with serving(NAME, config) as (_, client):
        answer = await verify(client, "x/x", "1")  # true except at x = 0, where x/x has no value
        assert answer["verdict"] == "unknown" and answer["equal"] is None and answer["decided_by"] == {"saturated": 3}
        assert "counterexample" not in answer


async def test_the_replica_learns_what_agents_derived(nats_server):
    config = component_config(NAME, nats_server.url, settings={"pull_interval": "0.05", "iterations": "1"})
    async with running(runtime_config(config.network, nats_server.url, settings=FAST)) as host:
        lhs, rhs = map(parse, EXPANDED)
        host.agents[0].prove(lhs, rhs)
        host.wake(host.agents[0])
        await eventually(lambda: host.agents[0].egraph.equivalent(lhs, rhs), 20, "the agents to prove the claim")
        async with serving(NAME, config) as (service, client):

            async def proven_by_the_network():
                return (await verify(client, *EXPANDED))["decided_by"] == {"network": 17}

            await eventually(proven_by_the_network, 20, "the verifiers to learn the agents' proof")
            assert any(source.startswith("agent.") for source in service.replica.joined)


async def test_embeddings_vote_on_random_subsets_and_skills_persist_in_duckdb(nats_server, tmp_path):
    rng = np.random.default_rng(1)
    skill = rng.normal(size=64)
    config = component_config(NAME, nats_server.url, settings={"pull_interval": "0"}, data_dir=str(tmp_path / "data"))
    async with serving(NAME, config) as (_, client):
        stored = await client.post("/skills", json={"name": "summarise", "vector": skill.tolist()})
        assert stored.status_code == 201 and stored.json()["dimensions"] == 64
        near = (
            await client.post("/embedding", json={"skill": "summarise", "vector": (skill + 0.05 * rng.normal(size=64)).tolist()})
        ).json()
        assert near["verdict"] == "match" and near["agreement"] == 1.0 and near["mean"] > 0.95
        assert 0 < near["variance"] < 0.01 and len(near["similarities"]) == 17
        assert len(set(near["similarities"])) > 1  # each verifier looked at its own dimensions
        far = (await client.post("/embedding", json={"skill": "summarise", "vector": rng.normal(size=64).tolist()})).json()
        assert far["verdict"] == "no-match" and far["mean"] < 0.8
        strict = (await client.post("/embedding", json={"skill": "summarise", "vector": skill.tolist(), "threshold": 1})).json()
        assert strict["claim"]["threshold"] == 1 and strict["similarity"] == pytest.approx(1)
    assert (tmp_path / "data" / "skills.duckdb").is_file()
    async with serving(NAME, config) as (_, client):  # a restarted component reads its DuckDB file
        assert (await client.get("/skills")).json()["skills"] == {"summarise": 64}


@pytest.mark.parametrize(
    "path, payload, status, field, rule",
    [
        ("/terms", {"lhs": "x*(y+z)"}, 422, "rhs", "term"),
        ("/terms", {"lhs": "x*(", "rhs": "x"}, 422, "lhs", "term"),
        ("/terms", {"lhs": "x", "rhs": "y", "because": "so"}, 422, "because", "allowed"),
        ("/terms", {"lhs": "+".join(["x"] * 150), "rhs": "x"}, 422, "lhs", "at most"),
        ("/skills", {"name": "", "vector": [1]}, 422, "name", "non-empty"),
        ("/skills", {"name": "zero", "vector": [0, 0]}, 422, "vector", "not all zero"),
        ("/skills", {"name": "words", "vector": ["a", "b"]}, 422, "vector", "numbers"),
        ("/embedding", {"skill": "nope", "vector": [1, 0]}, 404, "skill", "stored skill"),
        ("/embedding", {"skill": "plane", "vector": [1, 0, 0]}, 422, "vector", "2 dimensions"),
        ("/embedding", {"skill": "plane", "vector": [1, 0], "threshold": 2}, 422, "threshold", "-1..1"),
        ("/terms", b"{", 400, "body", "JSON object"),
    ],
)
async def test_bad_input_names_the_field(nats_server, path, payload, status, field, rule):
    async with serving(NAME, component_config(NAME, nats_server.url, settings={"pull_interval": "0"})) as (_, client):
        assert (await client.post("/skills", json={"name": "plane", "vector": [1, 0]})).status_code == 201
        kwargs = {"content": payload} if isinstance(payload, bytes) else {"json": payload}
        response = await client.post(path, **kwargs)
        assert response.status_code == status, response.text
        assert response.json()["field"] == field and rule in response.json()["rule"], response.json()
