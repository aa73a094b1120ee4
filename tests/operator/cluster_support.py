"""Helpers of the tests that run the operator against a real API server (their
fixtures, agentnet_crd, operator and audit_log, are in conftest.py)."""

import json
from pathlib import Path

from kubernetes import client

from agentnet_operator import names
from conftest import RESYNC_SECONDS, load_example as example  # noqa: F401  (re-exported)

READY_TIMEOUT = "90s"


OPERATOR_USER_AGENTS = (names.USER_AGENT, "kopf/")


def writes_in(audit_log: Path, namespace: str) -> int:
    """The operator's writes in the namespace, told apart by User-Agent: it shares the
    admin user with the test's own kubectl, and other clients (controllers, kwok,
    the kubelet) keep writing pod and claim status after the network is settled."""
    count = 0
    with audit_log.open() as log:
        for line in log:
            if f'"namespace":"{namespace}"' not in line:
                continue
            entry = json.loads(line)
            if entry.get("stage") == "ResponseComplete" and entry.get("userAgent", "").startswith(OPERATOR_USER_AGENTS):
                count += 1
    return count


def small_network(name: str = "small", **spec) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": name},
            "spec": {"agents": 4, "topology": {"kind": "ring"},
                     "components": [{"name": "stream-red", "replicas": 1}], **spec}}


def apply(kubectl, namespace: str, manifest: dict) -> None:
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(manifest))


def wait_ready(kubectl, namespace: str, name: str) -> None:
    """Until the network is Ready; else fail with what its conditions, pods and claims said then."""
    try:
        kubectl("-n", namespace, "wait", "--for=condition=Ready", f"anet/{name}", f"--timeout={READY_TIMEOUT}")
    except AssertionError as error:
        status = json.loads(kubectl("-n", namespace, "get", "anet", name, "-o", "json")).get("status", {})
        conditions = "\n".join(f"{c['type']}={c['status']} {c.get('reason')}: {c.get('message')}"
                               for c in status.get("conditions", []))
        pods = kubectl("-n", namespace, "get", "pods,pvc", "-o", "wide")
        raise AssertionError(f"{error}\nconditions:\n{conditions}\npods and claims:\n{pods}") from None


def network(k8s, namespace: str, name: str) -> dict:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.PLURAL, name)


def condition(body: dict, type_: str) -> dict:
    return next(c for c in body.get("status", {}).get("conditions", []) if c["type"] == type_)


def children(kubectl, namespace: str, name: str) -> list[dict]:
    """Objects labelled as the network's: its children, and its StatefulSets' claims."""
    kinds = "configmaps,secrets,services,statefulsets,deployments,persistentvolumeclaims,poddisruptionbudgets"
    items = json.loads(kubectl("-n", namespace, "get", kinds, "-l", names.children_selector(name), "-o", "json"))
    return items["items"]


def kinds_and_names(objects: list[dict]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}
