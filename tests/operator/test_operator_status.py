"""compute_status and check_network: conditions from observed children, no cluster."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import PASSWORD, SECRETS, load_example, network_from

from agentnet_operator.children import desired_children
from agentnet_operator.model import AgentNetwork, AgentNetworkStatus
from agentnet_operator.status import (
    Problem, check_network, compute_status, current_scale, stuck_pods, workload_state)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def observe(objects: list[dict[str, Any]], *, ready: bool = True, generation: int = 1) -> list[dict[str, Any]]:
    """The objects as the API server would return them once their controllers have acted."""
    out = []
    for obj in copy.deepcopy(objects):
        obj["metadata"]["generation"] = generation
        kind = obj["kind"]
        replicas = obj.get("spec", {}).get("replicas", 1)
        up = replicas if ready else 0
        if kind == "StatefulSet":
            obj["status"] = {
                "observedGeneration": generation, "replicas": replicas, "readyReplicas": up,
                "updatedReplicas": replicas, "currentRevision": "r1", "updateRevision": "r1",
            }  # fmt: skip
        elif kind == "Deployment":
            obj["status"] = {
                "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": up, "availableReplicas": up,
            }  # fmt: skip
        elif kind == "SpinApp":
            obj["status"] = {"readyReplicas": up}
        out.append(obj)
    return out


def network(example: str = "network.yaml", status: dict[str, Any] | None = None) -> AgentNetwork:
    body = load_example(example)
    if status is not None:
        body["status"] = status
    return network_from(body)


def children_of(net: AgentNetwork, **kw: Any) -> list[dict[str, Any]]:
    return desired_children(net, **(SECRETS if net.spec.nats.managed else {}), **kw)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_all_children_ready() -> None:
    net = network()
    status = compute_status(net, observe(children_of(net)), now=NOW)
    c = conditions(status)
    assert [x["type"] for x in status["conditions"]] == ["Ready", "Progressing", "Degraded", "RolledBack"]
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("True", "Ready")
    assert (c["Progressing"]["status"], c["Progressing"]["reason"]) == ("False", "RolloutComplete")
    assert (c["Degraded"]["status"], c["RolledBack"]["status"]) == ("False", "False")
    assert all(x["observedGeneration"] == 1 and x["lastTransitionTime"] == "2026-01-02T03:04:05Z" for x in c.values())
    assert status["observedGeneration"] == 1
    assert status["agents"] == {"desired": 9, "ready": 9, "colors": {"BLUE": 3, "GREEN": 3, "RED": 3}}
    assert status["components"]["stream-red"] == {"workload": "Deployment", "replicas": 1, "readyReplicas": 1}
    assert len(status["components"]) == 11
    servers = [f"tls://ramanujan-nats-{k}.ramanujan-nats-headless.demo.svc:4222" for k in range(3)]
    assert status["nats"] == {"url": ",".join(servers), "ready": True, "certificates": "operator"}
    assert (
        status["selector"]
        == "app.kubernetes.io/name=agentnet,app.kubernetes.io/instance=ramanujan,app.kubernetes.io/component=agent"
    )
    AgentNetworkStatus.model_validate(json.loads(json.dumps(status)))  # plain JSON, valid for the schema


def test_nothing_created_yet_is_progressing() -> None:
    status = compute_status(network(), [], now=NOW)
    c = conditions(status)
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "Progressing")
    assert c["Progressing"]["status"] == "True"
    assert "StatefulSet ramanujan-agents: not created yet" in c["Ready"]["message"]
    assert "and " in c["Ready"]["message"]  # long lists are cut short
    assert status["agents"]["ready"] == 0 and status["nats"]["ready"] is False


def test_one_component_not_ready_is_named() -> None:
    net = network()
    observed = observe(children_of(net))
    for obj in observed:
        if obj["metadata"]["name"] == "ramanujan-egraph-service" and obj["kind"] == "Deployment":
            obj["status"]["availableReplicas"] = obj["status"]["readyReplicas"] = 0
    status = compute_status(net, observed, now=NOW)
    c = conditions(status)
    assert c["Ready"]["status"] == "False"
    assert c["Ready"]["message"] == "Deployment ramanujan-egraph-service: 0 of 1 pods available"
    assert status["components"]["egraph-service"] == {"workload": "Deployment", "replicas": 1, "readyReplicas": 0}


def test_partially_ready_agents_count_whole_pods() -> None:
    net = network("torus-3d.yaml")
    observed = observe(children_of(net))
    for obj in observed:
        if obj["kind"] == "StatefulSet" and obj["metadata"]["name"] == "torus-3d-agents":
            obj["status"]["readyReplicas"] = 2
    status = compute_status(net, observed, now=NOW)
    assert status["agents"]["ready"] == 18 and status["agents"]["desired"] == 27


def test_stale_generation_is_not_ready() -> None:
    net = network()
    observed = observe(children_of(net))
    for obj in observed:
        if obj["kind"] == "StatefulSet" and obj["metadata"]["name"] == "ramanujan-agents":
            obj["metadata"]["generation"] = 2
    c = conditions(compute_status(net, observed, now=NOW))
    assert "waiting for its controller" in c["Ready"]["message"]


def test_problems_make_it_degraded() -> None:
    net = network()
    problem = Problem("TopologyImpossible", "no such graph")
    status = compute_status(net, observe(children_of(net)), now=NOW, problems=[problem])
    c = conditions(status)
    assert (c["Degraded"]["status"], c["Degraded"]["reason"], c["Degraded"]["message"]) == (
        "True",
        "TopologyImpossible",
        "no such graph",
    )
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "TopologyImpossible")
    assert c["Progressing"]["status"] == "False"


LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def history_entry(revision: int, deployed_at: datetime, result: str) -> dict[str, Any]:
    return {"revision": revision, "digest": f"digest-{revision}", "deployedAt": deployed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "result": result}


def test_progress_deadline_from_history() -> None:
    started = NOW - timedelta(seconds=121)
    history = [history_entry(2, started, "Deploying"), history_entry(1, LONG_AGO, "Deployed")]
    net = network(status={"currentRevision": 1, "updateRevision": 2, "history": history})
    observed = observe(children_of(net), ready=False)
    status = compute_status(net, observed, now=NOW)
    c = conditions(status)
    assert (c["Degraded"]["status"], c["Degraded"]["reason"]) == ("True", "ProgressDeadlineExceeded")
    assert (c["Progressing"]["status"], c["Progressing"]["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert status["currentRevision"] == 1 and status["updateRevision"] == 2 and len(status["history"]) == 2
    # within the deadline it is still progressing
    early = compute_status(net, observed, now=started + timedelta(seconds=60))
    assert conditions(early)["Progressing"]["status"] == "True"


def test_deployment_deadline_exceeded_is_degraded() -> None:
    net = network()
    observed = observe(children_of(net))
    for obj in observed:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "ramanujan-dashboard":
            obj["status"]["conditions"] = [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "stuck"}
            ]
    c = conditions(compute_status(net, observed, now=NOW))
    assert (c["Degraded"]["status"], c["Degraded"]["reason"]) == ("True", "ProgressDeadlineExceeded")
    assert "ramanujan-dashboard" in c["Degraded"]["message"]


def test_a_deployment_deadline_left_over_from_the_revision_rolled_back_from_does_not_fail_the_next() -> None:
    rolled_back_at = NOW - timedelta(seconds=5)
    history = [history_entry(1, rolled_back_at, "Deploying"), history_entry(2, LONG_AGO, "RolledBack")]
    net = network(status={"currentRevision": 1, "updateRevision": 1, "history": history})
    observed = observe(children_of(net), ready=False)
    for obj in observed:
        if obj["kind"] == "Deployment":
            obj["status"]["conditions"] = [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "stuck"}]
    c = conditions(compute_status(net, observed, now=NOW))
    assert (c["Progressing"]["status"], c["Progressing"]["reason"]) == ("True", "Progressing")
    assert c["Degraded"]["status"] == "False"
    # a whole deadline after the rollback, the Deployments' verdict is this revision's own
    late = conditions(compute_status(net, observed, now=rolled_back_at + timedelta(seconds=120)))
    assert (late["Degraded"]["status"], late["Degraded"]["reason"]) == ("True", "ProgressDeadlineExceeded")


def stateful_set(update_revision: str = "r2", generation: int = 3, observed: int = 3) -> dict[str, Any]:
    return {"kind": "StatefulSet", "metadata": {"name": "n-nats", "generation": generation},
            "status": {"observedGeneration": observed, "updateRevision": update_revision}}


def pod(name: str, revision: str, ready: bool, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"controller-revision-hash": revision}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-02T03:04:05Z"
    return {"kind": "Pod", "metadata": metadata,
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_stuck_pods_are_the_unready_ones_on_another_revision() -> None:
    pods = [pod("on-update-unready", "r2", False), pod("old-ready", "r1", True), pod("old-unready", "r1", False),
            pod("old-unready-going", "r1", False, deleting=True)]
    assert [p["metadata"]["name"] for p in stuck_pods(stateful_set(), pods)] == ["old-unready"]
    # until its controller has seen the latest template, the StatefulSet's revisions say nothing
    assert stuck_pods(stateful_set(observed=2), pods) == []
    assert stuck_pods({"kind": "StatefulSet", "metadata": {"name": "n", "generation": 1}, "status": {}}, pods) == []


def test_last_transition_time_moves_only_on_change() -> None:
    net = network()
    ready = observe(children_of(net))
    first = compute_status(net, ready, now=NOW)
    later = NOW + timedelta(minutes=5)
    net.status = AgentNetworkStatus.model_validate(first)
    same = compute_status(net, ready, now=later)
    assert conditions(same)["Ready"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    flipped = compute_status(net, [], now=later)
    assert conditions(flipped)["Ready"]["lastTransitionTime"] == "2026-01-02T03:09:05Z"
    assert conditions(flipped)["Degraded"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"  # still False


def test_rolled_back_condition() -> None:
    net = network()
    status = compute_status(
        net,
        observe(children_of(net)),
        now=NOW,
        rolled_back=Problem("ProgressDeadlineExceeded", "revision 3 failed, back to 2"),
    )
    c = conditions(status)["RolledBack"]
    assert (c["status"], c["message"]) == ("True", "revision 3 failed, back to 2")


def test_autoscaler_state_is_carried_and_fed_back() -> None:
    previous = {"components": {"stream-red": {"desired": 4, "metric": 420.0, "lastScaleTime": "2026-01-02T03:00:00Z"}}}
    net = network("autoscaling.yaml", status=previous)
    assert current_scale(net) == {"stream-red": 4}
    observed = observe(children_of(net, scale=current_scale(net)))
    status = compute_status(net, observed, now=NOW)
    assert status["components"]["stream-red"] == {
        "workload": "Deployment",
        "replicas": 4,
        "readyReplicas": 4,
        "desired": 4,
        "metric": 420.0,
        "lastScaleTime": "2026-01-02T03:00:00Z",
    }
    assert conditions(status)["Ready"]["status"] == "True"


def test_spinapp_and_external_nats() -> None:
    net = network("spinapp.yaml")
    status = compute_status(net, observe(children_of(net)), now=NOW)
    assert conditions(status)["Ready"]["status"] == "True"
    # Which ran how: the Spin components as SpinApps, the others as Deployments.
    assert status["components"]["stream-red"] == {"workload": "Deployment", "replicas": 2, "readyReplicas": 2}
    assert status["components"]["egraph-service"] == {"workload": "SpinApp", "replicas": 2, "readyReplicas": 2}
    assert {n: c["workload"] for n, c in status["components"].items()} == {
        "stream-red": "Deployment", "crdt-service": "SpinApp", "egraph-service": "SpinApp",
        "agent-orchestrator": "Deployment"}  # fmt: skip
    assert status["workloads"] == "2 SpinApp, 2 Deployment"
    # A SpinApp whose pods do not run (no shim on the node) keeps the network from Ready, by name.
    stuck = observe(children_of(net))
    for obj in stuck:
        if obj["kind"] == "SpinApp" and obj["metadata"]["name"] == "spin-egraph-service":
            obj["status"] = {"readyReplicas": 0}
    ready = conditions(compute_status(net, stuck, now=NOW))["Ready"]
    assert ready["status"] == "False" and "SpinApp spin-egraph-service" in ready["message"]
    assert compute_status(network(), observe(children_of(network())), now=NOW)["workloads"] == "11 Deployment"

    ext = network("external-nats.yaml")
    observed = observe(children_of(ext))
    unknown = compute_status(ext, observed, now=NOW)
    assert unknown["nats"] == {"url": "nats://nats.infra.svc:4222"} and conditions(unknown)["Ready"]["status"] == "True"
    down = compute_status(ext, observed, now=NOW, nats_ready=False)
    assert down["nats"]["ready"] is False and conditions(down)["Ready"]["status"] == "False"


def test_workload_state_messages() -> None:
    assert workload_state(None, 1, what="Deployment x").message == "Deployment x: not created yet"
    scaling = {"kind": "Deployment", "metadata": {"name": "x", "generation": 1}, "spec": {"replicas": 1},
               "status": {"observedGeneration": 1}}  # fmt: skip
    assert "1 replicas requested, 3 desired" in workload_state(scaling, 3, what="Deployment x").message


def test_check_network() -> None:
    assert check_network(network()) == []
    spin = network("spinapp.yaml")
    (missing,) = check_network(spin, spinkube_installed=False)
    assert missing.reason == "SpinKubeMissing"
    assert "runs crdt-service, egraph-service as SpinApps" in missing.message
    # Under workload SpinApp a network of no Spin component needs no SpinKube.
    body = load_example("spinapp.yaml")
    body["spec"]["components"] = [{"name": "stream-red"}, {"name": "agent-orchestrator"}]
    assert check_network(network_from(body), spinkube_installed=False) == []


def test_impossible_topology_is_a_problem_not_a_crash() -> None:
    from agentnet_runtime.core.topology import TopologyError, check_topology

    # 7 agents make no 2-D torus (7 is prime, a torus needs two sides of at least 3): the schema lets
    # it through, only building the topology can tell, so the operator must say so, not crash.
    agents, case = 7, {"kind": "torus", "dimensions": 2}
    reason = check_topology("torus", agents, dimensions=2)
    assert reason is not None
    net = network_from({"apiVersion": "agentnet.dev/v1alpha1", "kind": "AgentNetwork", "metadata": {"name": "bad"},
                        "spec": {"agents": agents, "topology": case}})  # fmt: skip
    (problem,) = check_network(net)
    assert problem.reason == "TopologyImpossible" and reason in problem.message
    with pytest.raises(TopologyError):
        desired_children(net, **SECRETS)
    status = compute_status(net, [], now=NOW, problems=[problem])
    assert conditions(status)["Degraded"]["reason"] == "TopologyImpossible"
    assert "colors" not in status["agents"]
