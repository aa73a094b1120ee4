"""The scheduling knobs, env, logging and PodDisruptionBudgets on the real objects: the API server
admits the pods with the knobs in place, the scheduler places them, the disruption controller
counts the budgets' pods, and a budget goes when its component drops to one replica."""

import json

import pytest
from kubernetes import client

from agentnet_operator import names
from cluster_support import apply, children, small_network, wait_ready
from rig import wait_for

pytestmark = pytest.mark.cluster

TOLERATION = {"key": "agentnet.dev/test", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}


def pods(kubectl, namespace: str, network: str, role: str) -> list[dict]:
    selector = ",".join(f"{k}={v}" for k, v in names.selector_labels(network, role).items())
    return json.loads(kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json"))["items"]


def budget(kubectl, namespace: str, name: str) -> dict | None:
    found = json.loads(kubectl("-n", namespace, "get", "pdb", "-o", "json"))["items"]
    return next((b for b in found if b["metadata"]["name"] == name), None)


def test_knobs_reach_the_pods_and_budgets_follow_the_replicas(operator, kubectl, k8s, namespace):
    scheduling = client.SchedulingV1Api(k8s)
    priority = f"{namespace}-high"[:63]
    scheduling.create_priority_class({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                      "metadata": {"name": priority}, "value": 1000})
    try:
        apply(kubectl, namespace, small_network(
            "knobs",
            agentScheduling={
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [TOLERATION],
                "priorityClassName": priority,
                "topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}],
            },
            logging={"level": "DEBUG", "format": "text"},
            components=[{
                "name": "stream-red", "replicas": 2,
                "env": [{"name": "CACHE_SIZE_MB", "value": "64"}],
                "scheduling": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}}},
            }],
        ))  # fmt: skip
        wait_ready(kubectl, namespace, "knobs")

        agents = pods(kubectl, namespace, "knobs", names.ROLE_AGENT)
        assert len(agents) == 4
        for pod in agents:
            spec = pod["spec"]
            assert spec["nodeSelector"]["kubernetes.io/os"] == "linux"
            assert TOLERATION in spec["tolerations"]
            assert spec["priorityClassName"] == priority and spec["priority"] == 1000  # resolved by admission
            (spread,) = spec["topologySpreadConstraints"]
            assert spread["labelSelector"]["matchLabels"] == names.selector_labels("knobs", names.ROLE_AGENT)
            assert spec["nodeName"]  # scheduled with all of it
            env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
            assert (env[names.ENV_LOG_LEVEL], env[names.ENV_LOG_FORMAT]) == ("DEBUG", "text")
        red = pods(kubectl, namespace, "knobs", "stream-red")
        assert len(red) == 2
        for pod in red:
            spec = pod["spec"]
            assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert spec.get("priorityClassName") != priority  # the agents' knobs are theirs only
            env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
            assert env["CACHE_SIZE_MB"] == "64" and env[names.ENV_LOG_LEVEL] == "DEBUG"

        # The disruption controller finds each budget's pods: one may go at a time.
        def counted(name: str, pods_expected: int) -> bool:
            pdb = budget(kubectl, namespace, name) or {}
            status = pdb.get("status", {})
            return status.get("expectedPods") == pods_expected and status.get("disruptionsAllowed") == 1

        wait_for(lambda: counted("knobs-agents", 4), 60, "the agents' budget counting 4 pods")
        wait_for(lambda: counted("knobs-stream-red", 2), 60, "stream-red's budget counting 2 pods")
        uid = json.loads(kubectl("-n", namespace, "get", "anet", "knobs", "-o", "json"))["metadata"]["uid"]
        for name in ("knobs-agents", "knobs-stream-red"):
            (owner,) = budget(kubectl, namespace, name)["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["uid"], owner["controller"]) == (names.KIND, uid, True)

        # One replica: its budget is pruned; the agents' stays.
        kubectl("-n", namespace, "patch", "anet", "knobs", "--type=json", "-p",
                json.dumps([{"op": "replace", "path": "/spec/components/0/replicas", "value": 1}]))
        wait_for(lambda: budget(kubectl, namespace, "knobs-stream-red") is None, 60, "stream-red's budget pruned")
        assert budget(kubectl, namespace, "knobs-agents") is not None

        kubectl("-n", namespace, "delete", "anet", "knobs", "--wait=true")
        wait_for(lambda: not children(kubectl, namespace, "knobs"), 120, "garbage collection of the budget too")
    finally:
        scheduling.delete_priority_class(priority)

