"""A packed network on real pods: 24 agents, 8 to a pod, run in 3 real containers on the rig's node
(test_operator_scale_cluster.py takes 1,000 packed agents through kwok's fake node). A term sent to one
agent reaches all 24 over the managed NATS, agents of one pod and of different pods alike, and the
orchestrator sees every agent alive and the network converged."""

from __future__ import annotations

import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import E2E, example_network, get_network, is_ready, pod_get, post_from_pod
from rig import EXISTING_KUBECONFIG, wait_for
from rig.node import NODE_NAME

pytestmark = E2E
NETWORK, AGENTS, PER_POD = "packed", 24, 8
TERM = "x*(y+z)"


def pod_of(agent: int) -> str:
    return f"{names.agents_name(NETWORK)}-{agent // PER_POD}"


def digests(k8s: client.ApiClient, namespace: str) -> dict[int, tuple[str, int]] | None:
    """(digest, e-nodes) of every agent, read from the pod that hosts it; None while a pod does not answer."""
    try:
        states = {i: pod_get(k8s, namespace, pod_of(i), f"/agent/{i}/state") for i in range(AGENTS)}
    except (client.ApiException, ValueError):
        return None
    return {i: (state["digest"], state["egraph_nodes"]) for i, state in states.items()}


def test_a_packed_network_runs_eight_agents_to_a_pod_and_converges(
        k8s, kubectl, installed_operator, real_namespace, runtime_image):
    ns, core = real_namespace, client.CoreV1Api(k8s)
    body = example_network(runtime_image, agents=AGENTS, agentsPerPod=PER_POD,
                           components=[{"name": "agent-orchestrator"}])  # fmt: skip
    body["metadata"]["name"] = NETWORK
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 600, "the packed network to be Ready")

    pods = core.list_namespaced_pod(ns, label_selector=names.selector_string(NETWORK, names.ROLE_AGENT)).items
    assert sorted(p.metadata.name for p in pods) == [f"{names.agents_name(NETWORK)}-{k}" for k in range(3)]
    for pod in pods:
        if not EXISTING_KUBECONFIG:
            assert pod.spec.node_name == NODE_NAME, f"{pod.metadata.name} is on {pod.spec.node_name}"
        (container,) = pod.status.container_statuses
        assert container.ready and container.state.running and container.container_id, pod.metadata.name
    assert get_network(k8s, ns, NETWORK)["status"]["agents"]["ready"] == AGENTS

    before = wait_for(lambda: digests(k8s, ns), 120, "every agent to answer from its pod")
    orchestrator = f"deploy/{names.component_name(NETWORK, 'agent-orchestrator')}"
    url = f"http://{pod_of(0)}.{names.agents_name(NETWORK)}.{ns}.svc:8080/agent/0/message"
    reply = post_from_pod(kubectl, ns, orchestrator, url, {"term": TERM})
    assert reply["status"] == 202, reply

    def one_digest_with_the_term():
        now = digests(k8s, ns)
        if now is None or len({digest for digest, _ in now.values()}) != 1:
            return None
        return now if all(nodes > before[i][1] for i, (_, nodes) in now.items()) else None

    after = wait_for(one_digest_with_the_term, 300, "all 24 agents to hold one digest with the term", interval=2)
    assert {digest for digest, _ in after.values()} != {digest for digest, _ in before.values()}

    def orchestrator_sees_it():
        """The orchestrator's view: 24 alive, converged on the digest the agents hold now. Not the one read
        above: all 24 can share a digest while their rewriting of the term still goes on (a CI run saw them
        move on, and the orchestrator rightly report the later one)."""
        selector = names.selector_string(NETWORK, "agent-orchestrator")
        (pod,) = core.list_namespaced_pod(ns, label_selector=selector).items
        status = pod_get(k8s, ns, pod.metadata.name, "/status")
        if status["alive"] != AGENTS or not status["converged"]:
            return None
        now = digests(k8s, ns)
        held = {digest for digest, _ in now.values()} if now is not None else None
        return status if held == {view["digest"] for view in status["agents"].values()} else None

    wait_for(orchestrator_sees_it, 120, "the orchestrator to see 24 alive agents, converged on their digest", interval=2)
