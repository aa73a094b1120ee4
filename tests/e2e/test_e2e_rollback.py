"""Automatic rollback on real failures: a revision whose containers exit at start
(a setting the runtime refuses) crash-loops, is marked Failed at its progress
deadline and is rolled back to the last healthy revision; a revision whose pods
run but cannot work (NATS refuses their credentials) is unready, so it fails and
is rolled back the same way; a revision whose image cannot be pulled breaks the
StatefulSets too (agents and the managed NATS server), whose pods the operator
must replace itself after the rollback. The user's spec is never rewritten."""

from __future__ import annotations

import base64
import json

import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import E2E, condition, get_network, is_ready, pod_get, ready_pod
from rig import wait_for

pytestmark = E2E
DEADLINE = 20  # seconds: spec.rollout.progressDeadlineSeconds of these networks


def network(name: str, image: str, components: list[dict], **spec) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": name},
            "spec": {"agents": 3, "topology": {"kind": "ring"}, "image": image, "components": components,
                     "rollout": {"progressDeadlineSeconds": DEADLINE, "autoRollback": True}, **spec}}


def history(k8s, ns: str, name: str) -> list[dict]:
    return (get_network(k8s, ns, name).get("status") or {}).get("history", [])


def rolled_back(k8s, ns: str, name: str) -> dict | None:
    body = get_network(k8s, ns, name)
    return body if condition(body, "RolledBack").get("status") == "True" and is_ready(body) else None


def waiting_reasons(core: client.CoreV1Api, ns: str, selector: str) -> set[str]:
    return {status.state.waiting.reason for pod in core.list_namespaced_pod(ns, label_selector=selector).items
            for status in pod.status.container_statuses or [] if status.state.waiting}


def test_a_revision_that_crashes_at_start_is_rolled_back(k8s, kubectl, installed_operator, real_namespace,
                                                          runtime_image):
    ns, core, apps = real_namespace, client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    name, deployment = "crashing", names.component_name("crashing", "egraph-service")
    body = network(name, runtime_image, [{"name": "egraph-service"}])
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    wait_for(lambda: is_ready(get_network(k8s, ns, name)), 300, "revision 1 to be Ready")
    healthy_template = apps.read_namespaced_deployment(deployment, ns).spec.template.metadata.annotations

    # Revision 2: the runtime refuses the setting and the container exits at start.
    body["spec"]["components"][0]["settings"] = {"SATURATION_TIMEOUT_MS": "0"}
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    selector = f"{names.LABEL_INSTANCE}={name},{names.LABEL_COMPONENT}=egraph-service"
    wait_for(lambda: "CrashLoopBackOff" in waiting_reasons(core, ns, selector), 120,
             "revision 2's container to crash-loop")
    (crashed,) = [p for p in core.list_namespaced_pod(ns, label_selector=selector).items if not ready_pod(p)]
    logs = core.read_namespaced_pod_log(crashed.metadata.name, ns, previous=True)
    assert "SATURATION_TIMEOUT_MS must be > 0, got 0" in logs, logs

    after = wait_for(lambda: rolled_back(k8s, ns, name), DEADLINE + 120, "the automatic rollback")
    entries = {h["revision"]: h["result"] for h in after["status"]["history"]}
    assert entries == {1: "Deployed", 2: "RolledBack"}, after["status"]["history"]
    assert after["status"]["currentRevision"] == 1
    assert "revision 2 was not healthy" in condition(after, "RolledBack")["message"]
    assert after["spec"]["components"][0]["settings"] == {"SATURATION_TIMEOUT_MS": "0"}  # the spec stays the user's
    wait_for(lambda: apps.read_namespaced_deployment(deployment, ns).spec.template.metadata.annotations
             == healthy_template, 60, "the component's template back at revision 1")
    wait_for(lambda: all(ready_pod(p) for p in core.list_namespaced_pod(ns, label_selector=selector).items), 120,
             "only healthy egraph-service pods left")


NATS_CONFIG = """port: 4222
jetstream { store_dir: "/tmp/jetstream" }
authorization { user: "agentnet", password: "right-password-0123" }
"""


def external_nats(ns: str, image: str) -> list[dict]:
    """A NATS server with a password, in the network's namespace: the network's external NATS."""
    labels = {"app": "nats"}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nats", "namespace": ns},
         "data": {"nats.conf": NATS_CONFIG}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nats", "namespace": ns},
         "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "containers": [{"name": "nats", "image": image, "command": ["nats-server", "--config", "/etc/nats/nats.conf"],
                             "ports": [{"containerPort": 4222}],
                             "readinessProbe": {"tcpSocket": {"port": 4222}, "periodSeconds": 1},
                             "volumeMounts": [{"name": "config", "mountPath": "/etc/nats"}]}],
             "volumes": [{"name": "config", "configMap": {"name": "nats"}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nats", "namespace": ns},
         "spec": {"selector": labels, "ports": [{"port": 4222}]}},
        *({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": ns},
           "data": {"user": base64.b64encode(b"agentnet").decode(), "password": base64.b64encode(password).decode()}}
          for secret, password in (("nats-right", b"right-password-0123"), ("nats-wrong", b"wrong-password-0123"))),
    ]


def test_a_revision_whose_pods_cannot_reach_nats_is_rolled_back(k8s, kubectl, installed_operator, real_namespace,
                                                                 runtime_image):
    ns, core = real_namespace, client.CoreV1Api(k8s)
    kubectl("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                       "items": external_nats(ns, runtime_image)}))
    name = "locked-out"
    nats = {"url": f"nats://nats.{ns}.svc:4222", "credentialsSecret": "nats-right"}
    body = network(name, runtime_image, [{"name": "crdt-service"}], nats=nats)
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    wait_for(lambda: is_ready(get_network(k8s, ns, name)), 300, "revision 1 to be Ready")

    body["spec"]["nats"]["credentialsSecret"] = "nats-wrong"  # revision 2: the pods run, NATS turns them away
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    selector = f"{names.LABEL_INSTANCE}={name},{names.LABEL_COMPONENT}=crdt-service"

    def locked_out() -> list[str] | None:
        """/ready's reasons of a running, unready revision 2 pod, once it has tried NATS."""
        for pod in core.list_namespaced_pod(ns, label_selector=selector).items:
            if pod.status.phase == "Running" and not ready_pod(pod):
                try:
                    pod_get(k8s, ns, pod.metadata.name, "/ready")
                except client.ApiException as error:  # the proxy passes the 503 on as an error
                    reasons = json.loads(error.body).get("reasons")  # none: the process is not serving yet
                    if reasons and reasons != ["NATS disconnected"]:  # what it says before its first attempt
                        return reasons
        return None

    assert wait_for(locked_out, 120, "a revision 2 pod running but unready") == ["NATS authorization violation"]
    after = wait_for(lambda: rolled_back(k8s, ns, name), DEADLINE + 180, "the automatic rollback")
    assert {h["revision"]: h["result"] for h in after["status"]["history"]} == {1: "Deployed", 2: "RolledBack"}
    assert after["spec"]["nats"]["credentialsSecret"] == "nats-wrong"
    wait_for(lambda: all(ready_pod(p) for p in core.list_namespaced_pod(
        ns, label_selector=f"{names.LABEL_INSTANCE}={name}").items), 180, "every pod of the network Ready again")


def test_a_revision_whose_image_cannot_be_pulled_is_rolled_back_statefulsets_included(
        k8s, kubectl, installed_operator, real_namespace, runtime_image):
    ns, core = real_namespace, client.CoreV1Api(k8s)
    name = "unpullable"
    body = network(name, runtime_image, [{"name": "crdt-service"}])
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    wait_for(lambda: is_ready(get_network(k8s, ns, name)), 300, "revision 1 to be Ready")

    body["spec"]["image"] = "agentnet.invalid/agentnet-runtime:0"  # revision 2: no such registry (RFC 2606)
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    everything = f"{names.LABEL_INSTANCE}={name}"
    nats_selector = f"{everything},{names.LABEL_COMPONENT}={names.ROLE_NATS}"
    wait_for(lambda: {"ErrImagePull", "ImagePullBackOff"} & waiting_reasons(core, ns, nats_selector), 120,
             "revision 2's NATS pod failing to pull its image")

    after = wait_for(lambda: rolled_back(k8s, ns, name), DEADLINE + 180, "the rollback, NATS and agents included")
    assert {h["revision"]: h["result"] for h in after["status"]["history"]} == {1: "Deployed", 2: "RolledBack"}
    assert after["spec"]["image"] == "agentnet.invalid/agentnet-runtime:0"

    def only_revision_1_pods() -> bool:
        pods = core.list_namespaced_pod(ns, label_selector=everything).items
        return all(ready_pod(p) for p in pods) and {c.image for p in pods for c in p.spec.containers} == {runtime_image}

    wait_for(only_revision_1_pods, 120, "only Ready pods of revision 1's image")
    # (The clustered NATS StatefulSet manages its pods in Parallel, so Kubernetes replaces the broken
    # server itself; the operator's StuckPodDeleted is for a StatefulSet that waits on it.)
