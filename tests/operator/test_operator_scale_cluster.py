"""A network of 1,000 agents in a real API server, packed with agentsPerPod, on kwok's fake node (the scale of
pods; test_e2e_packed.py runs a smaller packed network for real): `kubectl scale anet` takes it from 9
agents to 1,000 and back through the scale subresource, and the pods, the ConfigMap and the status follow."""

import json

import pytest
from kubernetes import client

from agentnet_operator import names
from cluster_support import apply, network, wait_ready
from rig import wait_for

pytestmark = pytest.mark.cluster

PER_POD = 50
NAME = "packed"


def scale_of(kubectl, namespace: str) -> dict:
    """The network's scale subresource, as an autoscaler or `kubectl scale` reads it."""
    path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/{names.PLURAL}/{NAME}/scale"
    return json.loads(kubectl("get", "--raw", path))


def running_pods(k8s, namespace: str) -> list[str]:
    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector=network(k8s, namespace, NAME)["status"]["selector"]).items
    return sorted(p.metadata.name for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp)


def config_nodes(k8s, namespace: str) -> list[dict]:
    config_map = client.CoreV1Api(k8s).read_namespaced_config_map(names.config_name(NAME), namespace)
    return json.loads(config_map.data[names.CONFIG_KEY])["nodes"]


def settles_at(kubectl, k8s, namespace: str, agents: int) -> None:
    """Ready with `agents` agents in ceil(agents / PER_POD) Running pods, each told its block of agents."""
    pods = -(-agents // PER_POD)
    wait_for(lambda: network(k8s, namespace, NAME).get("status", {}).get("agents", {}).get("ready") == agents,
             180, f"{agents} ready agents in status")  # fmt: skip
    wait_ready(kubectl, namespace, NAME)
    assert running_pods(k8s, namespace) == sorted(f"{names.agents_name(NAME)}-{k}" for k in range(pods))
    nodes = config_nodes(k8s, namespace)
    assert [node["id"] for node in nodes] == list(range(agents))
    assert [node["pod"] for node in nodes] == [i // PER_POD for i in range(agents)]
    assert all(len(node["neighbours"]) == 4 for node in nodes)  # ramanujan, degree 4, at both sizes
    scale = scale_of(kubectl, namespace)
    assert scale["spec"]["replicas"] == agents and scale["status"]["replicas"] == agents
    printed = kubectl("-n", namespace, "get", "anet", NAME, "--no-headers").split()
    assert printed[:3] == [NAME, "True", str(agents)]


def test_kubectl_scale_takes_a_packed_network_from_9_agents_to_1000_and_back(operator, kubectl, k8s, namespace):
    apply(kubectl, namespace, {
        "apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": NAME},
        "spec": {"agents": 9, "agentsPerPod": PER_POD, "topology": {"kind": "ramanujan", "degree": 4},
                 "components": [{"name": "agent-orchestrator"}]},
    })  # fmt: skip
    settles_at(kubectl, k8s, namespace, 9)
    first = client.AppsV1Api(k8s).read_namespaced_stateful_set(names.agents_name(NAME), namespace)
    assert first.spec.replicas == 1

    kubectl("-n", namespace, "scale", "anet", NAME, "--replicas=1000")
    settles_at(kubectl, k8s, namespace, 1000)
    body = network(k8s, namespace, NAME)
    assert sum(body["status"]["agents"]["colors"].values()) == 1000
    assert client.AppsV1Api(k8s).read_namespaced_stateful_set(names.agents_name(NAME), namespace).spec.replicas == 20

    kubectl("-n", namespace, "scale", "anet", NAME, "--replicas=9")
    wait_for(lambda: len(running_pods(k8s, namespace)) == 1, 180, "the packed network back in one pod")
    settles_at(kubectl, k8s, namespace, 9)
