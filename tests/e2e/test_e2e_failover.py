"""Operator failover on real pods: the chart runs two operator pods, one leading by its Lease.
The leading pod is deleted while a rollout is in flight (revision 2 begun: a component added and
another scaled from 1 to 2 replicas): the other pod takes over and finishes it, with no duplicate
revision and replicas that only ever step up, one writer's way.

(An autoscaling decision in flight is not part of it yet: on the current operator an autoscaled
network stores a new revision at every reconcile, leader election or not; see the report.)"""

from __future__ import annotations

import threading

import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import (E2E, OPERATOR_NAMESPACE, OPERATOR_REPLICAS, RELEASE, deployed, get_network, is_ready,
                         pods_ready, stored_revisions)
from rig import wait_for

pytestmark = E2E
NETWORK = "failover"
LEASE = RELEASE  # the chart names the Lease after the release's full name


def failover_network(image: str, replicas: int, *components: str) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": NETWORK},
            "spec": {"agents": 3, "topology": {"kind": "ring"}, "image": image,
                     "components": [{"name": "stream-red", "replicas": replicas}, *({"name": c} for c in components)]}}


def holder(k8s: client.ApiClient) -> tuple[str, int]:
    """The leading pod's name (its identity is `<hostname>_<random>`) and the Lease's transitions."""
    spec = client.CoordinationV1Api(k8s).read_namespaced_lease(LEASE, OPERATOR_NAMESPACE).spec
    return (spec.holder_identity or "").rpartition("_")[0], spec.lease_transitions or 0


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
    ns, core, apps = real_namespace, client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    operator_pods = f"app.kubernetes.io/instance={RELEASE}"
    deployment = names.component_name(NETWORK, "stream-red")
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(failover_network(runtime_image, 1)))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 300, "the network to be Ready")
    leader, transitions = wait_for(lambda: holder(k8s)[0] and holder(k8s), 60, "a leading operator pod")
    pods = core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=operator_pods).items
    standby = {p.metadata.name for p in pods} - {leader}
    assert len(standby) == OPERATOR_REPLICAS - 1 == 1, standby
    replicas = ReplicaLog(apps, ns, deployment)

    # In flight: revision 2 begun (duck-colors added, stream-red 1 -> 2), then the leader's pod deleted.
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(failover_network(runtime_image, 2, "duck-colors")))
    wait_for(lambda: (get_network(k8s, ns, NETWORK).get("status") or {}).get("updateRevision") == 2, 60,
             "revision 2 to begin", interval=0.5)
    core.delete_namespaced_pod(leader, OPERATOR_NAMESPACE, grace_period_seconds=0)
    new_leader, new_transitions = wait_for(lambda: holder(k8s)[0] not in ("", leader) and holder(k8s), 120,
                                           "the standby to take the Lease")
    assert new_leader in standby and new_transitions == transitions + 1

    done = wait_for(lambda: deployed(k8s, ns, NETWORK, 2), 300, "revision 2 Ready under the new leader")
    assert [(h["revision"], h["result"]) for h in done["status"]["history"]] == [(2, "Deployed"), (1, "Superseded")]
    stored = stored_revisions(k8s, ns, NETWORK)  # one object per revision: none written twice
    assert [n for n, _ in stored] == [1, 2] and len({name for _, name in stored}) == 2
    assert done["status"]["components"]["stream-red"]["replicas"] == 2
    # Never back and forth: two writers fighting would show the value going down and up.
    assert replicas.stop() == [1, 2]

    wait_for(lambda: pods_ready(core, OPERATOR_NAMESPACE, operator_pods, OPERATOR_REPLICAS), 120,
             "a new standby pod beside the new leader")
    assert holder(k8s)[0] == new_leader  # the replacement pod stands by: no transition back
