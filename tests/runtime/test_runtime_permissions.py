"""Least privilege on NATS subjects, on a real nats-server running the operator's own config.

The server gets exactly what a managed network's NATS pod reads (rig.natscluster runs
nats_children.nats_server_config: TLS, and every identity of agentnet_runtime.permissions a user
with its grant); each process gets its credentials and the CA the way its pod does: the files the
operator's Secret volumes put in its credentials directory, picked by config.load_config. The
whole network does its work that way without one refusal; an identity that steps outside its
grant is refused by the server, which logs it, and the runtime logs it too.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_operator import children, names, nats_auth
from agentnet_operator.metric_sources import nats_endpoint
from agentnet_operator.model import AgentNetwork
from agentnet_runtime import components, natsclient, permissions
from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.config import (ENV_NATS_CA_FILE, ENV_NATS_CREDENTIALS_DIR, ENV_POD_INDEX, NatsAuth, NetworkConfig,
                                     load_config)
from rig.natscluster import PASSWORD as SECRET  # the managed NATS Secret's `password`: the network's secret
from rig.natscluster import LoopbackCluster, cluster_network
from runtime_support import FAST, eventually, one_digest, subscribed

pytestmark = pytest.mark.timeout(180)

AGENTS, PER_POD = 6, 3  # two agent pods, on a ring: pod 0 hosts 0-2 (remote neighbours 3 and 5), pod 1 3-5
REFUSED = "permissions violation"  # what the client is told when a subject is refused (nats-py lowercases it)
VIOLATION = "Violation"  # the server logs a refused subject as "Publish Violation" or "Subscription Violation"


SPEC = {"agents": AGENTS, "agentsPerPod": PER_POD, "topology": {"kind": "ring"}}


def model(agents: int = AGENTS, per_pod: int = PER_POD) -> AgentNetwork:
    return cluster_network(1, agents=agents, agentsPerPod=per_pod, topology={"kind": "ring"})


NETWORK = model()


@pytest.fixture
def secured():
    """One nats-server running the managed network's generated config (TLS, users), on loopback."""
    with LoopbackCluster(1, SPEC) as cluster:
        yield cluster


def objects_of(cluster: LoopbackCluster) -> list[dict]:
    """What the operator renders for the network served by `cluster` (its Secrets, the pods' volumes)."""
    return children.desired_children(cluster.network, nats_password=SECRET, nats_tls=cluster.tls)


def _object(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def mount_secrets(cluster: LoopbackCluster, directory: Path, component: str | None) -> dict[str, str]:
    """A pod's NATS credentials directory and CA file (a component's pod, or an agent pod's when None), as the
    kubelet fills them from the pod's Secret volumes; the environment that points the runtime at them."""
    objects = objects_of(cluster)
    workload = (_object(objects, "StatefulSet", names.agents_name(NETWORK.name)) if component is None
                else _object(objects, "Deployment", names.component_name(NETWORK.name, component)))  # fmt: skip
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    paths = {m["name"]: Path(str(directory) + m["mountPath"]) for m in pod["containers"][0]["volumeMounts"]}
    for volume in (names.VOLUME_NATS_CREDENTIALS, names.VOLUME_NATS_CA):
        paths.setdefault(volume, directory / volume).mkdir(parents=True, exist_ok=True)
        if volume not in volumes:
            continue
        source = volumes[volume]["secret"]
        data = _object(objects, "Secret", source["secretName"])["data"]
        for item in source.get("items") or [{"key": key, "path": key} for key in data]:
            (paths[volume] / item["path"]).write_bytes(base64.b64decode(data[item["key"]]))
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    return {ENV_NATS_CREDENTIALS_DIR: str(paths[names.VOLUME_NATS_CREDENTIALS]),
            ENV_NATS_CA_FILE: str(directory) + env[ENV_NATS_CA_FILE]}


def server_log(cluster: LoopbackCluster) -> str:
    return (cluster.servers[0].store_dir / "nats-server.log").read_text()


def pod_config(cluster: LoopbackCluster, tmp_path: Path, *, pod: int | None = None, component: str | None = None, **kw):
    """What `agentnet agent` in agent pod `pod` (or `agentnet component NAME`) reads at start."""
    network = NetworkConfig.from_json(children.network_config(NETWORK))
    env = {**mount_secrets(cluster, tmp_path / f"pod-{component or pod}", component), ENV_POD_INDEX: str(pod or 0)}
    if component is not None:
        return load_config(env=env, network=network, agent_ids=(), component=component, nats_url=cluster.url, **kw)
    return load_config(env=env, network=network, nats_url=cluster.url, agent=FAST, **kw)


async def connected(config, name: str = "test") -> tuple[object, list[Exception]]:
    """A client with the config's credentials, and the errors the server sent it."""
    errors: list[Exception] = []

    async def keep(error: Exception) -> None:
        errors.append(error)

    client = await asyncio.wait_for(natsclient.connect(config.nats_url, config.nats_auth, name, error_cb=keep), 10)
    return client, errors


def refusals(errors: list[Exception]) -> list[str]:
    return [str(e) for e in errors if REFUSED in str(e)]


def logged_refusals(caplog) -> list[str]:
    """What the runtime logged as refused subjects (its error lines; the server's words after the first ': ')."""
    return sorted(r.getMessage().split(": ", 1)[1] for r in caplog.records
                  if r.name == "agentnet.nats" and r.levelno == logging.ERROR)  # fmt: skip


def collector() -> tuple[list[str], Callable[[Any], Awaitable[None]]]:
    """A list of the subjects of messages received, and the subscription callback that fills it."""
    received: list[str] = []

    async def keep(message) -> None:
        received.append(message.subject)

    return received, keep


# --- the network at work ------------------------------------------------------------------------


async def test_every_identity_does_its_work_with_nothing_refused(secured, tmp_path):
    """Agents in their two pods, every component with its own user: terms through both work queues reach
    skill-verification by way of the agents, the orchestrator sees every agent converge, the timeline keeps
    the agents' events, the dashboard reads the queues' lag; the server refused nothing."""
    hosts = [AgentHost(pod_config(secured, tmp_path, pod=pod)) for pod in range(2)]
    assert [h.config.nats_auth.user for h in hosts] == ["agents-0", "agents-1"]
    services = [components.create(name, pod_config(secured, tmp_path, component=name, data_dir=str(tmp_path / name)))
                for name in (c.name for c in NETWORK.spec.effective_components) if permissions.component_grant(name)]  # fmt: skip
    by_name = {service.name: service for service in services}
    try:
        for host in hosts:
            await host.start()
            await asyncio.wait_for(host.ready.wait(), 20)
        await asyncio.gather(*(service.start() for service in services))

        def client(name: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=by_name[name].app()), base_url="http://c")

        async with client("stream-blue") as blue, client("stream-red") as red:
            assert (await blue.post("/terms", json={"term": "x*(y+z)"})).status_code == 202
            assert (await red.post("/terms", json={"term": "x*y + x*z"})).status_code == 202

        async def verified() -> dict | None:
            async with client("skill-verification") as verify:
                answer = (await verify.post("/terms", json={"lhs": "x*(y+z)", "rhs": "x*y + x*z"})).json()
            return answer if answer["decided_by"].get("network") == answer["verifiers"] else None

        answer = await eventually(verified, 90, "the streams' rewriting to reach skill-verification through the agents")
        assert answer["verdict"] == "equal"
        await eventually(lambda: one_digest(*hosts), 60, "every agent of both pods to hold one digest")

        async def orchestrated() -> bool:
            async with client("agent-orchestrator") as orchestrator:
                status = (await orchestrator.get("/status")).json()
                rounds = (await orchestrator.post("/sync-round", json={"timeout": 2})).json()
            return status["converged"] and status["alive"] == AGENTS and rounds["reached"] == AGENTS

        await eventually(orchestrated, 60, "the orchestrator to see every agent alive, converged and reachable")

        async def timeline_events() -> int:
            async with client("interaction-timeline") as timeline:
                return (await timeline.get("/query")).json()["count"]

        await eventually(timeline_events, 60, "the agents' events in the timeline (JetStream stream and consumer)")
        _, lag = await by_name["dashboard"]._lag("stream-red")
        assert isinstance(lag, int), lag  # None: the dashboard could not read the consumer
        assert isinstance(await operator_lag(secured), int)  # the autoscaler's read, as the operator
    finally:
        await asyncio.gather(*(service.stop() for service in services), return_exceptions=True)
        for host in hosts:
            await host.stop()
    log = server_log(secured)
    assert VIOLATION not in log and "authentication error" not in log, log[-3000:]


class SecretsOnly:
    """The operator's object cache, holding the Secrets of the rendered network (no API server needed to read
    back what desired_children wrote)."""

    def __init__(self, objects: list[dict]):
        self.objects = objects

    def cached(self, obj: dict) -> dict | None:
        return next((o for o in self.objects if (o["kind"], o["metadata"]["name"]) == (obj["kind"], obj["metadata"]["name"])),
                    None)  # fmt: skip


async def operator_lag(cluster: LoopbackCluster) -> int:
    """stream-red's lag as the operator's autoscaler reads it, with the credentials and CA it takes from the Secrets."""
    _, auth = nats_endpoint(SecretsOnly(objects_of(cluster)), NETWORK)
    assert auth.user == permissions.OPERATOR and auth.tls_ca == cluster.tls.ca_cert
    client = await asyncio.wait_for(natsclient.connect(cluster.url, auth, "agentnet-operator"), 10)
    try:
        return await natsclient.work_lag(client.jetstream(timeout=5), "stream-red")
    finally:
        await client.close()


# --- refusals ---------------------------------------------------------------------------------


async def test_a_component_is_refused_on_another_components_subjects(secured, tmp_path, caplog):
    """stream-red may publish its own derivations, not stream-blue's, nor queue blue's work, nor
    read crdt-service's merges: the server refuses and logs each, the message reaches no one, and the
    runtime logs the refusal as an error naming the subject."""
    caplog.set_level(logging.ERROR, logger="agentnet.nats")
    listener, _ = await connected(pod_config(secured, tmp_path, component="skill-verification"))
    red, errors = await connected(pod_config(secured, tmp_path, component="stream-red"))
    seen, got = collector()
    try:
        await listener.subscribe("stream.derived.*", cb=got)
        await subscribed(secured.monitor_url(), listener, "stream.derived.red")
        await red.subscribe("crdt.merge", cb=got)
        for subject in ("stream.derived.blue", "work.blue", "stream.derived.red"):
            await red.publish(subject, b"{}")
        await red.flush()
        await eventually(lambda: seen == ["stream.derived.red"] and len(refusals(errors)) == 3, 10,
                         "the allowed message delivered and three refusals")  # fmt: skip
    finally:
        await red.close()
        await listener.close()
    assert sorted(refusals(errors)) == [
        'nats: permissions violation for publish to "stream.derived.blue"',
        'nats: permissions violation for publish to "work.blue"',
        'nats: permissions violation for subscription to "crdt.merge"',
    ]  # fmt: skip
    log = server_log(secured)
    for kind, subject in (("Publish", "stream.derived.blue"), ("Publish", "work.blue"), ("Subscription", "crdt.merge")):
        assert f'user:stream-red" - {kind} Violation - Subject "{subject}"' in log, log[-2000:]
    assert logged_refusals(caplog) == sorted(refusals(errors))
    assert all("permissions.py" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_an_agent_is_refused_when_it_speaks_as_another_agent(secured, tmp_path, caplog):
    """Agent pod 0 hosts agents 0-2: its heartbeat as agent 2 reaches pod 1 (agent 3, its neighbour, lives
    there), the one it sends as agent 3 (pod 1's) is refused; it still may send state to agent 3 (addressed
    to it), and may not read agent 3's inbox. It may read the heartbeats of agent 3 (a neighbour of agent 2)
    but not of agent 4 (no neighbour of its agents). The agents' transport logs each refusal as an error."""
    caplog.set_level(logging.ERROR, logger="agentnet.nats")
    neighbour, _ = await connected(pod_config(secured, tmp_path, pod=1))
    config = pod_config(secured, tmp_path, pod=0)
    assert config.agent_ids == (0, 1, 2) and config.nats_auth.user == "agents-0"
    transport = Transport(config.nats_url, config.nats_auth)
    await asyncio.wait_for(transport.connect(), 10)
    heard, beat = collector()
    inbox, read = collector()
    try:
        await neighbour.subscribe("agent.2.heartbeat", cb=beat)
        await neighbour.subscribe("agent.3.heartbeat", cb=beat)  # its own agent's: what pod 0 must not say
        await subscribed(secured.monitor_url(), neighbour, "agent.2.heartbeat", "agent.3.heartbeat")
        await transport.nc.subscribe("agent.3.state", cb=read)
        await transport.nc.subscribe("agent.3.heartbeat")
        await transport.nc.subscribe("agent.4.heartbeat")
        for agent in (2, 3):
            await transport.send(f"agent.{agent}.heartbeat", agent, None, {"digest": "d", "nodes": 0, "events": 0})
        await transport.send("agent.3.state", 0, 3, {"nodes": []})
        await transport.nc.flush()
        await eventually(lambda: heard == ["agent.2.heartbeat"] and len(logged_refusals(caplog)) == 3, 10,
                         "agent 2's heartbeat heard and three refusals logged")  # fmt: skip
    finally:
        await transport.close()
        await neighbour.close()
    assert logged_refusals(caplog) == ['nats: permissions violation for publish to "agent.3.heartbeat"',
                                       'nats: permissions violation for subscription to "agent.3.state"',
                                       'nats: permissions violation for subscription to "agent.4.heartbeat"']
    assert inbox == [] and heard == ["agent.2.heartbeat"]
    assert 'user:agents-0" - Publish Violation - Subject "agent.3.heartbeat"' in server_log(secured)


async def test_a_second_reply_is_refused_and_said_as_such(secured, tmp_path, caplog):
    """An identity may answer each request delivered to its connection once (allow_responses): a second answer
    is refused, as is one after a reconnection (the server that delivered the request is gone). The runtime says
    so as a warning, once per connection, not as a grant that lacks a subject."""
    caplog.set_level(logging.WARNING, logger="agentnet.nats")
    asker, _ = await connected(pod_config(secured, tmp_path, pod=0))
    answerer, errors = await connected(pod_config(secured, tmp_path, pod=1))

    async def twice(message) -> None:
        await message.respond(b"first")
        await message.respond(b"second")

    try:
        await answerer.subscribe("agent.3.sync", cb=twice)
        await subscribed(secured.monitor_url(), answerer, "agent.3.sync")
        for _ in range(2):
            assert (await asker.request("agent.3.sync", b"{}", timeout=5)).data == b"first"
        await eventually(lambda: len(refusals(errors)) == 2, 10, "both second replies refused")
    finally:
        await asker.close()
        await answerer.close()
    said = [r for r in caplog.records if r.name == "agentnet.nats" and "refused a reply" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING] and '"_inbox.agents-0.' in said[0].getMessage()
    assert logged_refusals(caplog) == []


async def test_inboxes_are_private(secured, tmp_path):
    """Replies to the dashboard's requests come to _INBOX.dashboard.…: no other identity may read them."""
    agents, errors = await connected(pod_config(secured, tmp_path, pod=1))
    try:
        for subject in ("_INBOX.dashboard.>", "_INBOX.>", ">"):
            await agents.subscribe(subject)
        await agents.subscribe("_INBOX.agents-1.x")  # its own
        await agents.flush()
        await eventually(lambda: len(refusals(errors)) == 3, 10, "three refused subscriptions")
    finally:
        await agents.close()
    assert {e.split(" to ")[1] for e in refusals(errors)} == {'"_inbox.dashboard.>"', '"_inbox.>"', '">"'}


@pytest.mark.parametrize("user, password", [
    (None, None),  # none: the server has no anonymous user
    ("agents-0", "not-the-password-of-agents-0"),
    ("agents-0", nats_auth.password(SECRET, "agents-1")),  # another pod's password
    ("agentnet", SECRET),  # the old shared user, and the network's secret itself
], ids=["none", "wrong", "another-identitys", "old-shared-user"])
async def test_wrong_credentials_are_refused(secured, user, password):
    """Over TLS, verified: the server refuses the login itself, says so, and logs it."""
    state = natsclient.NatsState()
    auth = NatsAuth(user=user, password=password, tls_ca=secured.tls.ca_cert)
    connecting = asyncio.create_task(natsclient.connect(secured.url, auth, "intruder", state=state))
    try:
        await eventually(lambda: state.refused, 10, "the server to refuse the credentials")
        assert state.not_ready() == [natsclient.NATS_AUTHORIZATION] and not connecting.done()
    finally:
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
    assert "authentication error" in server_log(secured)  # the server logs the refused connection


# --- the table ----------------------------------------------------------------------------------


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` the rest (one token at least)."""
    want, have = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(want) == len(have)


@settings(max_examples=30)
@given(st.integers(1, 40), st.integers(1, 8), st.sampled_from(["ring", "complete"]))
def test_each_agent_pod_speaks_as_its_own_agents_and_hears_only_their_neighbours(agents, per_pod, kind):
    network = cluster_network(1, agents=agents, agentsPerPod=per_pod, topology={"kind": kind})
    grants = nats_auth.network_grants(network)
    pods = {i: g for i, g in grants.items() if i.startswith(permissions.AGENT_POD_PREFIX)}
    assert len(pods) == network.spec.pods
    config = NetworkConfig.from_json(children.network_config(network))
    for ordinal in range(network.spec.pods):
        grant = pods[permissions.agent_pod(ordinal)]
        block = set(config.block(ordinal))
        heard = {n for i in block for n in config.nodes[i].neighbours} - block  # what AgentHost subscribes to
        for agent in range(agents):
            ours = agent in block
            assert any(matches(p, f"agent.{agent}.heartbeat") for p in grant.publish) == ours
            assert any(matches(p, f"agent.{agent}.sync") for p in grant.subscribe) == ours
            assert any(matches(p, f"agent.{agent}.heartbeat") for p in grant.subscribe) == (ours or agent in heard)
            assert any(matches(p, f"agent.{agent}.state") for p in grant.publish)  # addressed to it: anyone may
        assert any(matches(p, "agents.heartbeat") for p in grant.publish)
        assert not any(matches(p, "agents.heartbeat") for p in grant.subscribe)  # the observers' alone
        assert not any(matches(p, "_INBOX.dashboard.x") for p in grant.subscribe)
    for observer in ("agent-orchestrator", "dashboard"):
        assert grants[observer].subscribe.count("agents.heartbeat") == 1
        assert not any(matches(p, "agent.0.heartbeat") for p in grants[observer].subscribe)


def test_identities_are_single_tokens():
    with pytest.raises(ValueError, match="one NATS subject token"):
        permissions.inbox_prefix("a.b")
    assert permissions.inbox_prefix("stream-red") == "_INBOX.stream-red"
