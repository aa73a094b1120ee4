"""The example network on real pods: the operator installed by Helm runs as a pod,
`kubectl apply -f examples/network.yaml` starts 21 real containers on the real
node, the agents converge over the managed NATS in the cluster, a term sent to
one agent through its Service is provable on another, and the dashboard, reached
through `kubectl port-forward`, shows all nine agents in headless Chromium and asks the
network from its panel with the API token from the network's Secret."""

from __future__ import annotations

import base64

import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import (E2E, OPERATOR_NAMESPACE, OPERATOR_REPLICAS, RELEASE, agent_pod, converged, example_network,
                         get_network, is_ready, pod_get, port_forward, post_from_pod)
from rig import EXISTING_KUBECONFIG, wait_for
from rig.node import NODE_NAME

pytestmark = E2E
NETWORK, AGENTS, COMPONENTS = "ramanujan", 9, 11
NATS_SERVERS = 3  # the managed NATS cluster by default (spec.nats.replicas)
PROVE = ["x*(y+z)", "x*y + x*z"]


def agents_url(namespace: str, agent: int) -> str:
    """An agent through its Service: the headless Service's per-pod DNS name."""
    return f"http://{agent_pod(NETWORK, agent)}.{names.agents_name(NETWORK)}.{namespace}.svc:8080"


def test_the_operator_runs_as_a_pod_under_its_service_account(k8s, installed_operator):
    core = client.CoreV1Api(k8s)
    pods = core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=f"app.kubernetes.io/instance={RELEASE}").items
    assert len(pods) == OPERATOR_REPLICAS  # (one leads, the others stand by: tests/e2e/test_e2e_failover.py)
    for pod in pods:
        assert pod.spec.service_account_name == RELEASE
        assert pod.status.container_statuses[0].ready
        assert pod.status.container_statuses[0].container_id.startswith("containerd://" if not EXISTING_KUBECONFIG else "")
        if not EXISTING_KUBECONFIG:
            assert pod.spec.node_name == NODE_NAME


def test_the_example_network_runs_converges_and_shows_in_the_dashboard(
        k8s, kubectl, rig_bin, kubeconfig, installed_operator, real_namespace, runtime_image, tmp_path):
    ns, core = real_namespace, client.CoreV1Api(k8s)
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(example_network(runtime_image)))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 600, "the example network to be Ready")

    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == AGENTS + COMPONENTS + NATS_SERVERS
    for pod in pods:
        if not EXISTING_KUBECONFIG:
            assert pod.spec.node_name == NODE_NAME, f"{pod.metadata.name} is on {pod.spec.node_name}"
        (container,) = pod.status.container_statuses
        assert container.ready and container.state.running, f"{pod.metadata.name}: {container.state}"
        assert container.container_id, f"{pod.metadata.name} has no container"

    # A term enters agent 0 through its Service, from inside the network (cluster DNS, pod network).
    orchestrator = f"deploy/{names.component_name(NETWORK, 'agent-orchestrator')}"
    # The mutating route wants the network's API token (its Secret, which every pod reads): none, or another, is a 401.
    assert core.read_namespaced_secret(names.api_token_name(NETWORK), ns).data[names.API_TOKEN_KEY]
    for token in ("", "not-the-networks-token-0123456789"):
        refused = post_from_pod(kubectl, ns, orchestrator, f"{agents_url(ns, 0)}/agent/0/message", {"term": PROVE[0]}, token)
        assert refused["status"] == 401 and refused["body"]["field"] == "Authorization", refused
        assert refused["challenge"].startswith("Bearer"), refused
    reply = post_from_pod(kubectl, ns, orchestrator, f"{agents_url(ns, 0)}/agent/0/message", {"term": PROVE[0]})
    assert reply["status"] == 202, reply
    states = wait_for(lambda: converged(k8s, ns, NETWORK, AGENTS), 180, "the nine agents to hold one digest")
    assert all(state["egraph_nodes"] > 0 for state in states.values()), states

    def proved_on_agent_5() -> bool:
        answer = post_from_pod(kubectl, ns, orchestrator, f"{agents_url(ns, 5)}/agent/5/message", {"prove": PROVE})
        assert answer["status"] == 200, answer
        return answer["body"]["equal"]

    wait_for(proved_on_agent_5, 120, f"agent 5 to prove {PROVE[0]} = {PROVE[1]}", interval=2)

    # The agents' pods hand the timeline pod their events with partial clocks (over JetStream); it answers whole
    # ones: every agent there, each event's own entry its seq, nothing in a clock after the event, stamps merged.
    timeline = names.component_name(NETWORK, "interaction-timeline") + "-"
    (timeline_pod,) = [pod.metadata.name for pod in pods if pod.metadata.name.startswith(timeline)]

    def every_agent_in_the_timeline() -> list[dict] | None:
        answered = pod_get(k8s, ns, timeline_pod, "/query")["events"]  # the first 1,000 in causal order
        return answered if {e["origin"] for e in answered} >= set(range(AGENTS)) else None

    events = wait_for(every_agent_in_the_timeline, 60, "every agent's events in the timeline")
    position = {(e["replica"], e["seq"]): index for index, e in enumerate(events)}
    assert all("partial" not in e and e["clock"][e["replica"]] == e["seq"] for e in events)
    assert all(position.get(entry, -1) <= index for index, e in enumerate(events) for entry in e["clock"].items())
    assert max(len(e["clock"]) for e in events) > AGENTS // 2, "no stamps merged into the answered clocks"
    by_replica: dict[str, list[dict]] = {}
    for e in sorted(events, key=lambda e: e["seq"]):
        by_replica.setdefault(e["replica"], []).append(e["clock"])
    assert all(later.get(replica, 0) >= count for clocks in by_replica.values() for earlier, later in zip(clocks, clocks[1:])
               for replica, count in earlier.items()), "a clock answered partial: it lacks what its replica saw before"  # fmt: skip

    from components.dashboard_support import browser, drawn_agents, page_wait, save_screenshot

    dashboard = f"svc/{names.component_name(NETWORK, 'dashboard')}"
    with port_forward(rig_bin / "kubectl", kubeconfig, ns, dashboard, 8080) as port, browser() as page:
        page.page.goto(f"http://127.0.0.1:{port}/")
        page_wait(page, f"document.querySelectorAll('#nodes g.agent').length === {AGENTS}", "nine agents", 60)
        page_wait(page, "[...document.querySelectorAll('#nodes g.agent')].every(g => g.dataset.state !== 'gone')",
                  "every agent alive", 60)
        # Asking from the page: the mutating route wants the network's token, which a user reads from its Secret.
        page_wait(page, "!document.querySelector('#ask-token-field').hidden", "the ask panel's token field")
        secret = core.read_namespaced_secret(names.api_token_name(NETWORK), ns)
        page.page.fill("#ask-token", base64.b64decode(secret.data[names.API_TOKEN_KEY]).decode())
        page.page.fill("#ask-lhs", "p*(q+r)")
        page.page.press("#ask-lhs", "Enter")
        page_wait(page, f"document.querySelector('#asks li .arrival')?.dataset.held === '{AGENTS}'",
                  "every agent holding the term asked on the page", 120)
        save_screenshot(page, tmp_path, "e2e-dashboard.png")
        assert sorted(drawn_agents(page)) == list(range(AGENTS))
        assert page.not_local() == []
