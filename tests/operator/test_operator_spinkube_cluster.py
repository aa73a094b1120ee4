"""workload: SpinApp against the real SpinKube control side: the SpinApp and SpinAppExecutor CRDs
from spin-operator's Go module and spin-operator itself (v0.6.1, tests/spinoperator/build.sh)
running against the rig's API server.

What runs: the API server checks agentnet's SpinApps against the real schema; spin-operator
reconciles them into its Deployments and Services; the components that are not Spin components
run as agentnet's own Deployments. What does not run: the SpinApps' pods. They need SpinKube's
containerd-shim-spin (a RuntimeClass whose handler the node's containerd serves), which is not
obtainable here, so the test shows that their pods are refused for that RuntimeClass rather
than pretending they started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from agentnet_operator import names, spin
from cluster_support import apply, network
from rig import EXISTING_KUBECONFIG, wait_for
from rig.spinoperator import RunningSpinOperator, build, install_crds

pytestmark = pytest.mark.cluster

EXECUTOR = "containerd-shim-spin"
RUNTIME_CLASS = "wasmtime-spin-v2"  # what SpinKube's install names the shim's RuntimeClass
SPIN_NAME_LABEL = "core.spinkube.dev/app-name"  # spin-operator's label on what it makes
TIMEOUT = 60


@pytest.fixture(scope="session")
def spin_operator(kubeconfig: Path, kubectl, tmp_path_factory) -> Iterator[RunningSpinOperator | None]:
    """The real CRDs installed and spin-operator running; on an existing cluster that already
    serves SpinApps, its own SpinKube is used as it is (None)."""
    if EXISTING_KUBECONFIG and "spinapps.core.spinkube.dev" in kubectl("get", "crd", "-o", "name"):
        yield None
        return
    install_crds(kubectl)
    running = RunningSpinOperator(build(), kubeconfig, tmp_path_factory.mktemp("spin-operator") / "log")
    yield running
    running.stop()
    print(f"spin-operator log (tail):\n{running.log.read_text()[-4000:]}")


def executor(namespace: str) -> dict:
    """A SpinAppExecutor as SpinKube's install makes it: spin-operator creates a Deployment per
    SpinApp whose pods run under the shim's RuntimeClass."""
    return {"apiVersion": names.SPINAPP_API_VERSION, "kind": "SpinAppExecutor",
            "metadata": {"name": EXECUTOR, "namespace": namespace},
            "spec": {"createDeployment": True, "deploymentConfig": {"runtimeClassName": RUNTIME_CLASS}}}


def spin_network(name: str) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": name},
            "spec": {"agents": 4, "topology": {"kind": "ring"}, "workload": "SpinApp",
                     "components": [
                         {"name": "stream-red"},
                         {"name": "crdt-service"},
                         {"name": "egraph-service", "replicas": 2, "settings": {"SATURATION_TIMEOUT_MS": "2000"}},
                     ]}}


def get(kubectl, namespace: str, kind: str, name: str) -> dict | None:
    out = kubectl("-n", namespace, "get", kind, name, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


def env_of(deployment: dict) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_spin_operator_reconciles_the_spinapps_agentnet_writes(spin_operator, operator, kubectl, k8s, namespace):
    kubectl("apply", "-f", "-", input=json.dumps(executor(namespace)))
    apply(kubectl, namespace, spin_network("wasm"))
    owner = network(k8s, namespace, "wasm")["metadata"]["uid"]

    # agentnet writes one SpinApp per Spin component; the real schema keeps every field it set.
    def spinapps() -> list[dict] | None:
        items = json.loads(kubectl("-n", namespace, "get", "spinapps", "-o", "json"))["items"]
        return items if len(items) == 2 else None

    by_name = {app["metadata"]["name"]: app for app in wait_for(spinapps, TIMEOUT, "two SpinApps")}
    assert set(by_name) == {"wasm-crdt-service", "wasm-egraph-service"}
    egraph = by_name["wasm-egraph-service"]["spec"]
    assert egraph["image"] == names.SPIN_IMAGE != network(k8s, namespace, "wasm")["spec"]["image"]
    assert egraph["components"] == ["egraph-service"]
    assert egraph["executor"] == EXECUTOR and egraph["replicas"] == 2
    assert egraph["checks"]["readiness"]["httpGet"]["path"] == "/egraph/health"
    variables = {v["name"]: v["value"] for v in egraph["variables"]}
    assert variables == {"network": "wasm", "log_level": "INFO", "log_format": "json",
                         "egraph_service_saturation_timeout_ms": "2000"}
    assert by_name["wasm-egraph-service"]["metadata"]["ownerReferences"][0]["uid"] == owner

    # spin-operator makes a Deployment and a Service of each, carrying the image and the variables.
    def spin_deployment(name: str) -> dict | None:
        found = get(kubectl, namespace, "deployment", name)
        return found if found and found["metadata"].get("labels", {}).get(SPIN_NAME_LABEL) == name else None

    deployment = wait_for(lambda: spin_deployment("wasm-egraph-service"), TIMEOUT, "spin-operator's Deployment")
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == names.SPINAPP_KIND
    pod = deployment["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == RUNTIME_CLASS
    (container,) = pod["containers"]
    assert container["image"] == names.SPIN_IMAGE
    assert container["readinessProbe"]["httpGet"]["path"] == spin.health_path("egraph-service")
    env = env_of(deployment)
    assert env["SPIN_VARIABLE_EGRAPH_SERVICE_SATURATION_TIMEOUT_MS"] == "2000"
    assert env["SPIN_VARIABLE_NETWORK"] == "wasm"
    assert env["SPIN_COMPONENTS_TO_RETAIN"] == "egraph-service"
    assert deployment["spec"]["replicas"] == 2
    assert wait_for(lambda: spin_deployment("wasm-crdt-service"), TIMEOUT, "crdt-service's Deployment")
    service = wait_for(lambda: get(kubectl, namespace, "service", "wasm-egraph-service"), TIMEOUT, "its Service")
    assert service["metadata"]["ownerReferences"][0]["kind"] == names.SPINAPP_KIND
    assert [p["port"] for p in service["spec"]["ports"]] == [names.SPINAPP_SERVICE_PORT]

    # stream-red is no Spin component: agentnet's own Deployment and Service, on the runtime image.
    red = wait_for(lambda: get(kubectl, namespace, "deployment", "wasm-stream-red"), TIMEOUT, "stream-red's Deployment")
    assert red["metadata"]["ownerReferences"][0]["uid"] == owner
    assert red["spec"]["template"]["spec"]["containers"][0]["image"] == network(k8s, namespace, "wasm")["spec"]["image"]
    assert get(kubectl, namespace, "service", "wasm-stream-red")["spec"]["ports"][0]["port"] != names.SPINAPP_SERVICE_PORT

    # Status and `kubectl get anet` say which ran how.
    def status_components() -> dict | None:
        found = network(k8s, namespace, "wasm").get("status", {}).get("components")
        return found if found and all("workload" in c for c in found.values()) else None

    components = wait_for(status_components, TIMEOUT, "status.components with their workloads")
    assert {n: c["workload"] for n, c in components.items()} == {
        "stream-red": "Deployment", "crdt-service": "SpinApp", "egraph-service": "SpinApp"}
    assert "2 SpinApp, 1 Deployment" in kubectl("-n", namespace, "get", "anet", "wasm", "-o", "wide")

    # spin-operator reports on its SpinApps.
    status = wait_for(lambda: get(kubectl, namespace, "spinapp", "wasm-egraph-service").get("status", {})
                      .get("activeScheduler"), TIMEOUT, "spin-operator's status on the SpinApp")
    assert status == EXECUTOR

    # What did not run: no node serves the shim's RuntimeClass, so no pod of a SpinApp exists.
    def refused() -> bool:
        events = json.loads(kubectl("-n", namespace, "get", "events", "--field-selector", "reason=FailedCreate",
                                    "-o", "json"))["items"]
        return any("wasm-egraph-service" in e["involvedObject"]["name"] and RUNTIME_CLASS in e["message"]
                   for e in events)

    wait_for(refused, TIMEOUT, f"pods refused for RuntimeClass {RUNTIME_CLASS}")
    pods = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector=f"{SPIN_NAME_LABEL}=wasm-egraph-service")
    assert pods.items == []
    # and the network says so instead of claiming to be ready.
    def ready_naming_the_spinapp() -> dict | None:
        found = [c for c in network(k8s, namespace, "wasm").get("status", {}).get("conditions", [])
                 if c["type"] == "Ready" and "SpinApp wasm-egraph-service" in c["message"]]
        return found[0] if found else None

    assert wait_for(ready_naming_the_spinapp, TIMEOUT, "Ready naming the SpinApp")["status"] == "False"

    # The operator, not a /scale subresource, scales a SpinApp; spin-operator follows.
    kubectl("-n", namespace, "patch", "anet", "wasm", "--type=json", "-p",
            json.dumps([{"op": "replace", "path": "/spec/components/2/replicas", "value": 3}]))
    wait_for(lambda: (spin_deployment("wasm-egraph-service") or {}).get("spec", {}).get("replicas") == 3,
             TIMEOUT, "spin-operator's Deployment at 3 replicas")
    assert get(kubectl, namespace, "spinapp", "wasm-egraph-service")["spec"]["replicas"] == 3
