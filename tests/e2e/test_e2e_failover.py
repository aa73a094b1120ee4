"""Operator failover on real pods: the chart runs two operator pods, one leading by its Lease.
The leading pod is deleted while work is in flight, and the other pod takes over and finishes it,
with no duplicate revision and replicas that only ever step toward the decision, one writer's way:
- a rollout (revision 2 begun: a component added and another scaled from 1 to 2 replicas);
- a rollout and an autoscaling decision at once: stream-red, autoscaled on its work-queue lag, took
  the first step of a scale-up its policy paces (one pod per STEP_SECONDS), and revision 2 (a
  component added) has begun; the new leader takes the second step and deploys revision 2."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import (E2E, OPERATOR_NAMESPACE, OPERATOR_REPLICAS, RELEASE, deployed, get_network, is_ready,
                         pods_ready, queue_terms, stored_revisions)
from rig import wait_for

pytestmark = E2E
NETWORK = "failover"
LEASE = RELEASE  # the chart names the Lease after the release's full name
OPERATOR_PODS = f"app.kubernetes.io/instance={RELEASE}"
# The autoscaled case: a takeover (the Lease's 15 s and a retry) fits between the first step and the second.
STEP_SECONDS, MAX_REPLICAS, TARGET = 45, 3, 10
QUEUED = 40_000  # one term a batch: lag far above MAX_REPLICAS * TARGET until well after the second step
AUTOSCALED_RED = {"name": "stream-red", "settings": {"BATCH_SIZE": "1"}, "autoscaling": {
    "minReplicas": 1, "maxReplicas": MAX_REPLICAS, "metric": {"source": "nats", "target": TARGET},
    "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": STEP_SECONDS}]}}}}


def failover_network(image: str, *components: dict) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": NETWORK},
            "spec": {"agents": 3, "topology": {"kind": "ring"}, "image": image, "components": list(components)}}


def holder(k8s: client.ApiClient) -> tuple[str, int]:
    """The leading pod's name (its identity is `<hostname>_<random>`) and the Lease's transitions."""
    spec = client.CoordinationV1Api(k8s).read_namespaced_lease(LEASE, OPERATOR_NAMESPACE).spec
    return (spec.holder_identity or "").rpartition("_")[0], spec.lease_transitions or 0


def leading(k8s: client.ApiClient) -> tuple[str, set[str], int]:
    """The leading operator pod, the standby pods beside it (both Ready) and the Lease's transitions."""
    core = client.CoreV1Api(k8s)
    wait_for(lambda: pods_ready(core, OPERATOR_NAMESPACE, OPERATOR_PODS, OPERATOR_REPLICAS), 120,
             "the operator pods Ready")
    leader, transitions = wait_for(lambda: holder(k8s)[0] and holder(k8s), 60, "a leading operator pod")
    standby = {p.metadata.name for p in core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=OPERATOR_PODS).items}
    standby.discard(leader)
    assert len(standby) == OPERATOR_REPLICAS - 1 == 1, standby
    return leader, standby, transitions


def delete_leader(k8s: client.ApiClient, leader: str, standby: set[str], transitions: int) -> str:
    """Delete the leading pod at once (no grace); the pod that takes the Lease over. That is the standby, unless
    the deleted leader still released the Lease as it stopped and its replacement, already up, read it first."""
    client.CoreV1Api(k8s).delete_namespaced_pod(leader, OPERATOR_NAMESPACE, grace_period_seconds=0)
    new_leader, new_transitions = wait_for(lambda: holder(k8s)[0] not in ("", leader) and holder(k8s), 120,
                                           "another operator pod to take the Lease")
    pods = {p.metadata.name for p in client.CoreV1Api(k8s).list_namespaced_pod(OPERATOR_NAMESPACE,
                                                                                 label_selector=OPERATOR_PODS).items}
    assert new_leader in pods and new_transitions == transitions + 1, (new_leader, standby, pods)
    return new_leader


def new_standby(k8s: client.ApiClient, new_leader: str) -> None:
    """A replacement pod comes up and stands by: no transition back."""
    wait_for(lambda: pods_ready(client.CoreV1Api(k8s), OPERATOR_NAMESPACE, OPERATOR_PODS, OPERATOR_REPLICAS), 120,
             "a new standby pod beside the new leader")
    assert holder(k8s)[0] == new_leader


def begin_revision_2(kubectl, k8s: client.ApiClient, ns: str, body: dict) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    wait_for(lambda: (get_network(k8s, ns, NETWORK).get("status") or {}).get("updateRevision") == 2, 60,
             "revision 2 to begin", interval=0.5)


def assert_revision_2_deployed_once(done: dict, k8s: client.ApiClient, ns: str) -> None:
    assert [(h["revision"], h["result"]) for h in done["status"]["history"]] == [(2, "Deployed"), (1, "Superseded")]
    stored = stored_revisions(k8s, ns, NETWORK)  # one object per revision: none written twice
    assert [n for n, _ in stored] == [1, 2] and len({name for _, name in stored}) == 2, stored


class ReplicaLog:
    """Every spec.replicas value the Deployment takes, in order (a watch, so none is missed)."""

    def __init__(self, apps: client.AppsV1Api, namespace: str, name: str):
        self.values: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(apps, namespace, name), daemon=True)
        self._thread.start()

    def _watch(self, apps: client.AppsV1Api, namespace: str, name: str) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(apps.list_namespaced_deployment, namespace,
                                       field_selector=f"metadata.name={name}", timeout_seconds=5):
                replicas = event["object"].spec.replicas
                if not self.values or self.values[-1] != replicas:
                    self.values.append(replicas)
                if self._stop.is_set():
                    stream.stop()

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(10)
        return self.values


def test_the_standby_finishes_a_rollout_when_the_leader_pod_is_deleted(k8s, kubectl, installed_operator,
                                                                       real_namespace, runtime_image):
    ns, apps = real_namespace, client.AppsV1Api(k8s)
    deployment = names.component_name(NETWORK, "stream-red")
    kubectl("apply", "-n", ns, "-f", "-",
            input=yaml.safe_dump(failover_network(runtime_image, {"name": "stream-red", "replicas": 1})))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 300, "the network to be Ready")
    leader, standby, transitions = leading(k8s)
    replicas = ReplicaLog(apps, ns, deployment)

    # In flight: revision 2 begun (duck-colors added, stream-red 1 -> 2), then the leader's pod deleted.
    begin_revision_2(kubectl, k8s, ns, failover_network(runtime_image, {"name": "stream-red", "replicas": 2},
                                                        {"name": "duck-colors"}))
    new_leader = delete_leader(k8s, leader, standby, transitions)

    done = wait_for(lambda: deployed(k8s, ns, NETWORK, 2), 300, "revision 2 Ready under the new leader")
    assert_revision_2_deployed_once(done, k8s, ns)
    assert done["status"]["components"]["stream-red"]["replicas"] == 2
    # Never back and forth: two writers fighting would show the value going down and up.
    assert replicas.stop() == [1, 2]
    new_standby(k8s, new_leader)


def test_the_standby_finishes_a_rollout_and_a_scale_up_when_the_leader_pod_is_deleted(
        k8s, kubectl, installed_operator, real_namespace, runtime_image):
    ns, apps = real_namespace, client.AppsV1Api(k8s)
    deployment = names.component_name(NETWORK, "stream-red")
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(failover_network(runtime_image, AUTOSCALED_RED)))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 300, "the network to be Ready")
    leader, standby, transitions = leading(k8s)
    replicas = ReplicaLog(apps, ns, deployment)
    wait_for(lambda: replicas.values, 30, "the replica watch to start")

    def stream_red() -> dict:
        return (get_network(k8s, ns, NETWORK).get("status") or {}).get("components", {}).get("stream-red", {})

    def deployment_replicas() -> int:
        return apps.read_namespaced_deployment(deployment, ns).spec.replicas

    # The queue fills in the background, so that the first step (1 -> 2) starts the clock of the second.
    with ThreadPoolExecutor(1) as pool:
        filled = pool.submit(queue_terms, kubectl, ns, deployment, QUEUED)

        def first_step() -> bool:
            if filled.done():
                filled.result()  # a filler that failed is the reason there is no lag to scale on: its error fails the test
            return deployment_replicas() == 2

        wait_for(first_step, 120, lambda: f"the autoscaler's first step (the queue filler "
                 f"{'returned' if filled.done() else 'still running'}); stream-red's status: {stream_red()}",
                 interval=0.5)
        begin_revision_2(kubectl, k8s, ns, failover_network(runtime_image, AUTOSCALED_RED, {"name": "duck-colors"}))
        in_flight = stream_red()
        new_leader = delete_leader(k8s, leader, standby, transitions)
        # The second step is the new leader's to take (revision 2 began a moment before the deletion).
        assert deployment_replicas() == 2, replicas.values
        assert filled.result() == QUEUED
    assert in_flight["desired"] == 2 and in_flight["reason"] == "RateLimited", in_flight

    wait_for(lambda: deployment_replicas() == MAX_REPLICAS, 180, "the new leader's step to 3 replicas", interval=1)
    assert stream_red()["desired"] == MAX_REPLICAS
    done = wait_for(lambda: deployed(k8s, ns, NETWORK, 2), 300, "revision 2 Ready under the new leader")
    assert_revision_2_deployed_once(done, k8s, ns)  # replicas are the autoscaler's: no revision for them
    # Toward the decision only, one step at a time: no write undid another, none skipped the policy.
    assert replicas.stop() == [1, 2, MAX_REPLICAS]
    new_standby(k8s, new_leader)
