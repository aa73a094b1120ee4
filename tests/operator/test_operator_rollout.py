"""Revisions and rollback against a real API server: each distinct spec becomes a
ControllerRevision, a revision that does not become healthy in time is rolled back,
`rollbackTo` moves between revisions, history is pruned, and an operator restarted
in the middle of a rollout finishes it without duplicating anything.

A bad revision here is one whose component asks for more CPU than any node has, so
its pod is never scheduled: a real way for a rollout to hang, no fault injected."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_support import apply, condition, network, small_network, wait_ready

from agentnet_operator import names
from rig import wait_for
from rig.operator import RunningOperator

pytestmark = pytest.mark.cluster

DEADLINE = 10  # progressDeadlineSeconds: the smallest the schema allows
UNSCHEDULABLE = {"requests": {"cpu": "100000"}}  # more CPU than the node has


def spec(image: str, resources: dict | None = None, **extra) -> dict:
    component = {"name": "stream-red", "replicas": 1, **({"resources": resources} if resources else {})}
    return small_network("roll", image=image, components=[component],
                         rollout={"progressDeadlineSeconds": DEADLINE, "revisionHistoryLimit": 3}, **extra)["spec"]


def put(kubectl, namespace: str, **fields) -> None:
    kubectl("-n", namespace, "patch", "anet", "roll", "--type=merge", "-p", json.dumps({"spec": fields}))


def history(k8s, namespace: str) -> list[tuple[int, str]]:
    return [(h["revision"], h["result"]) for h in network(k8s, namespace, "roll").get("status", {}).get("history", [])]


def revisions(kubectl, namespace: str) -> dict[int, str]:
    """Stored ControllerRevisions: number -> name."""
    selector = names.selector_string("roll", names.ROLE_REVISION)
    items = json.loads(kubectl("-n", namespace, "get", "controllerrevisions", "-l", selector, "-o", "json"))["items"]
    return {item["revision"]: item["metadata"]["name"] for item in items}


def stream_red(kubectl, namespace: str) -> dict:
    deployment = json.loads(kubectl("-n", namespace, "get", "deployment", "roll-stream-red", "-o", "json"))
    return deployment["spec"]["template"]["spec"]["containers"][0]


def wait_history(k8s, namespace: str, expected: list[tuple[int, str]], timeout: float = 60) -> None:
    try:
        wait_for(lambda: history(k8s, namespace) == expected, timeout, f"history {expected}")
    except AssertionError as error:
        status = network(k8s, namespace, "roll").get("status", {})
        raise AssertionError(f"{error}; status: {json.dumps(status, indent=1)}") from None


def agentnet(*args: str, kubeconfig, status: int = 0) -> str:
    """The agentnet CLI as a user runs it; stdout and stderr together."""
    result = subprocess.run([str(Path(sys.executable).with_name("agentnet")), *args, "--kubeconfig", str(kubeconfig)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == status, result.stderr
    return result.stdout + result.stderr


def test_revisions_rollback_and_rollback_to(operator, kubeconfig, kubectl, k8s, namespace):
    apply(kubectl, namespace, {**small_network("roll"), "spec": spec("agentnet:1")})
    wait_ready(kubectl, namespace, "roll")
    wait_history(k8s, namespace, [(1, "Deployed")])

    put(kubectl, namespace, image="agentnet:2")
    wait_history(k8s, namespace, [(2, "Deployed"), (1, "Superseded")])
    assert stream_red(kubectl, namespace)["image"] == "agentnet:2"

    # A revision that never becomes healthy is marked failed and the last healthy one re-applied.
    put(kubectl, namespace, image="agentnet:3", components=[{"name": "stream-red", "resources": UNSCHEDULABLE}])
    wait_history(k8s, namespace, [(2, "Deployed"), (3, "RolledBack"), (1, "Superseded")], timeout=DEADLINE + 60)
    body = network(k8s, namespace, "roll")
    back = condition(body, "RolledBack")
    assert back["status"] == "True" and back["reason"] == "AutoRollback" and "rolled back to revision 2" in back["message"]
    assert condition(body, "Ready")["status"] == "True"
    assert body["spec"]["image"] == "agentnet:3"  # the user's spec is not rewritten
    container = stream_red(kubectl, namespace)
    assert container["image"] == "agentnet:2" and not container["resources"].get("requests")
    events = kubectl("-n", namespace, "get", "events", "--field-selector", "reason=RevisionFailed", "-o", "name")
    assert events.strip()

    # A fixed spec is a new revision; rollbackTo moves to an older one and back.
    put(kubectl, namespace, image="agentnet:4", components=[{"name": "stream-red"}])
    wait_history(k8s, namespace, [(4, "Deployed"), (2, "Superseded"), (3, "RolledBack")])  # 1 pruned: limit 3
    agentnet("rollback", "roll", "-n", namespace, "--to", "2", kubeconfig=kubeconfig)
    wait_history(k8s, namespace, [(2, "Deployed"), (4, "Superseded"), (3, "RolledBack")])
    table = agentnet("history", "roll", "-n", namespace, kubeconfig=kubeconfig).splitlines()
    assert table[0].split() == ["REVISION", "RESULT", "DEPLOYED", "DIGEST", "MESSAGE"]
    assert [row.split()[:2] for row in table[1:]] == [["2*", "Deployed"], ["4", "Superseded"], ["3", "RolledBack"]]
    assert stream_red(kubectl, namespace)["image"] == "agentnet:2"
    assert condition(network(k8s, namespace, "roll"), "RolledBack")["reason"] == "RollbackTo"
    agentnet("rollback", "roll", "-n", namespace, "--undo", kubeconfig=kubeconfig)
    wait_history(k8s, namespace, [(4, "Deployed"), (2, "Superseded"), (3, "RolledBack")])
    assert stream_red(kubectl, namespace)["image"] == "agentnet:4"
    assert condition(network(k8s, namespace, "roll"), "RolledBack")["status"] == "False"

    # A revision that does not exist is refused (by the CLI, and by the operator), and what runs keeps running.
    refused_cli = agentnet("rollback", "roll", "-n", namespace, "--to", "99", kubeconfig=kubeconfig, status=1)
    assert "revision 99 is not stored" in refused_cli and "stored: 2, 3, 4" in refused_cli
    put(kubectl, namespace, rollbackTo={"revision": 99})
    refused = wait_for(lambda: (c := condition(network(k8s, namespace, "roll"), "Degraded"))["reason"] == "RevisionNotFound"
                       and c, 30, "the RevisionNotFound condition")
    assert "rollbackTo.revision 99 is not stored" in refused["message"]
    assert stream_red(kubectl, namespace)["image"] == "agentnet:4" and history(k8s, namespace)[0] == (4, "Deployed")
    put(kubectl, namespace, rollbackTo=None)

    # Stored revisions are pruned with the history, at revisionHistoryLimit (3).
    assert wait_for(lambda: sorted(revisions(kubectl, namespace)) == [2, 3, 4], 30, "revision 1 pruned")


def test_an_operator_restarted_mid_rollout_finishes_it_without_duplicates(agentnet_crd, kubeconfig, kubectl, k8s,
                                                                         namespace, tmp_path):
    first = RunningOperator(kubeconfig, tmp_path / "first.log", namespace=namespace, resync_seconds=1.0)
    try:
        apply(kubectl, namespace, {**small_network("roll"), "spec": spec("agentnet:1")})
        wait_history(k8s, namespace, [(1, "Deployed")])
        put(kubectl, namespace, image="agentnet:2", components=[{"name": "stream-red", "resources": UNSCHEDULABLE}])
        wait_history(k8s, namespace, [(2, "Deploying"), (1, "Superseded")])
    finally:
        first.stop()  # stopped while revision 2 rolls out; its deadline passes with no operator

    second = RunningOperator(kubeconfig, tmp_path / "second.log", namespace=namespace, resync_seconds=1.0)
    try:
        wait_history(k8s, namespace, [(1, "Deployed"), (2, "RolledBack")], timeout=DEADLINE + 60)
        stored = revisions(kubectl, namespace)
        assert sorted(stored) == [1, 2] and len(set(stored.values())) == 2
        assert stream_red(kubectl, namespace)["image"] == "agentnet:1"
    finally:
        second.stop()
        print(f"second operator log (tail):\n{second.log.read_text()[-3000:]}")
