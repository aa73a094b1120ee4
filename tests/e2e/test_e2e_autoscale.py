"""Autoscaling on real pods, the operator in its own namespace (a cluster-wide
Helm install): a queue filled through stream-red's Service is drained by real
stream-red pods, while the operator scales the component up on the work-queue
lag it reads from the network's NATS (by its cross-namespace name) and back down
once the queue is empty."""

from __future__ import annotations

import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import E2E, get_network, is_ready, pod_get, queue_terms, ready_pod, stored_revisions
from rig import wait_for

pytestmark = E2E
NETWORK, MAX_REPLICAS, TARGET = "scaled", 3, 500
QUEUED = 30_000  # a stream-red pod rewrites ~1,000 terms/s: enough to outlast the new pods' start


def scaled_network(image: str) -> dict:
    return {
        "apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": NETWORK},
        "spec": {"agents": 3, "topology": {"kind": "ring"}, "image": image, "components": [{
            "name": "stream-red",
            "autoscaling": {"minReplicas": 1, "maxReplicas": MAX_REPLICAS, "metric": {"source": "nats", "target": TARGET},
                            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10,
                                                       "policies": [{"type": "Pods", "value": 3, "periodSeconds": 5}]}}},
        }]},
    }


def test_stream_red_drains_a_filled_queue_scaling_up_and_back_down(k8s, kubectl, installed_operator, real_namespace,
                                                                   runtime_image):
    ns, core, apps = real_namespace, client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    deployment = names.component_name(NETWORK, "stream-red")
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(scaled_network(runtime_image)))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 300, "the network to be Ready")
    assert apps.read_namespaced_deployment(deployment, ns).spec.replicas == 1
    revisions = stored_revisions(k8s, ns, NETWORK)
    assert [n for n, _ in revisions] == [1]

    assert queue_terms(kubectl, ns, deployment, QUEUED) == QUEUED

    def stream_red() -> dict:
        return (get_network(k8s, ns, NETWORK).get("status") or {}).get("components", {}).get("stream-red", {})

    processed: dict[str, int] = {}  # pod -> terms it rewrote, read while it runs

    def scaled_up_and_working() -> bool:
        for pod in core.list_namespaced_pod(ns, label_selector=f"{names.LABEL_COMPONENT}=stream-red").items:
            if ready_pod(pod):
                processed[pod.metadata.name] = pod_get(k8s, ns, pod.metadata.name, "/status")["processed"]
        return apps.read_namespaced_deployment(deployment, ns).spec.replicas > 1 and \
            sum(1 for count in processed.values() if count > 0) > 1

    wait_for(scaled_up_and_working, 120, "stream-red scaled up, with more than one pod rewriting terms", interval=1)
    status = stream_red()
    assert status["reason"] == "ScaleUp" or status["desired"] > 1, status
    assert kubectl("-n", ns, "get", "events", "--field-selector", "reason=ScaleUp", "-o", "name")

    # The queue drains, then the autoscaler brings the component back to its minimum.
    wait_for(lambda: stream_red().get("metric") == 0, 240, "the work queue to drain", interval=1)
    wait_for(lambda: apps.read_namespaced_deployment(deployment, ns).spec.replicas == 1, 120,
             "stream-red scaled back down to 1", interval=1)
    wait_for(lambda: kubectl("-n", ns, "get", "events", "--field-selector", "reason=ScaleDown", "-o", "name"), 30,
             "a ScaleDown Event")
    assert sum(processed.values()) > 0
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 120, "the network Ready at one replica")
    # Replicas are the autoscaler's, not the spec's: scaling up and down stored no new revision.
    assert stored_revisions(k8s, ns, NETWORK) == revisions
