"""What every test on pods relies on the cluster to serve: its nodes Ready and without pressure, CoreDNS
and the local-path provisioner available, the `kubernetes` and `kube-dns` Services with a ready endpoint.

A test that makes pods (real ones, or on the fake node with claims) waits for these at its start. If they
do not come back, it fails at once with `report()`, instead of timing out minutes later on what they broke:
a CI run lost 27 tests and 80 minutes so (claims never bound, so NATS never came up and its names did
not resolve), and showed nothing of why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rig import EXISTING_KUBECONFIG, rig_logs, storage

SYSTEM_DEPLOYMENTS = (("kube-system", "coredns"), (storage.NAMESPACE, storage.NAME))
SYSTEM_SERVICES = (("default", "kubernetes"), ("kube-system", "kube-dns"))
PRESSURES = ("MemoryPressure", "DiskPressure", "PIDPressure")
# The node's logs in a report, each with what of it counts: their info lines are most of them.
RIG_LOGS: dict[str, Callable[[str], bool]] = {
    "kube-proxy": lambda line: True,
    "kubelet": lambda line: line.startswith(("E", "W")),  # klog: E1206 15:01:07.685 ...
    "containerd": lambda line: "level=error" in line or "level=warning" in line,
}
TAIL = 12  # lines of each log in a report


def problems(k8s: client.ApiClient, deployments=SYSTEM_DEPLOYMENTS, services=SYSTEM_SERVICES) -> list[str]:
    """What is wrong with the cluster's nodes and the system `deployments` and `services` (namespace,
    name) now; empty when nothing is."""
    core, apps, slices = client.CoreV1Api(k8s), client.AppsV1Api(k8s), client.DiscoveryV1Api(k8s)
    found = []
    for node in core.list_node().items:
        conditions = {c.type: c for c in node.status.conditions or []}
        ready = conditions.get("Ready")
        if ready is None or ready.status != "True":
            found.append(f"node {node.metadata.name} not Ready ({ready and ready.reason}: {ready and ready.message})")
        found += [f"node {node.metadata.name} has {kind}: {conditions[kind].message}"
                  for kind in PRESSURES if kind in conditions and conditions[kind].status == "True"]
    for namespace, name in deployments:
        try:
            if not apps.read_namespaced_deployment(name, namespace).status.available_replicas:
                found.append(f"Deployment {namespace}/{name} has no available pod")
        except ApiException as error:
            found.append(f"Deployment {namespace}/{name}: {error.status} {error.reason}")
    for namespace, name in services:
        items = slices.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={name}").items
        if not any(e.conditions and e.conditions.ready for s in items for e in s.endpoints or []):
            found.append(f"Service {namespace}/{name} has no ready endpoint")
    return found


class Gate:
    """Waits until problems() is empty; a healthy answer is trusted for `fresh_for` seconds, so a worker
    running many short tests asks the API server a few times a minute, not at every test."""

    def __init__(self, fresh_for: float = 10.0, deployments=SYSTEM_DEPLOYMENTS, services=SYSTEM_SERVICES):
        self.fresh_for, self.healthy_at = fresh_for, float("-inf")
        self.deployments, self.services = deployments, services

    def wait(self, k8s: client.ApiClient, logs: Path | None, timeout: float = 120) -> None:
        if time.monotonic() - self.healthy_at < self.fresh_for:
            return
        deadline = time.monotonic() + timeout
        while found := problems(k8s, self.deployments, self.services):
            if time.monotonic() > deadline:
                raise AssertionError(f"the cluster stayed unwell for {timeout:.0f}s, so this test would only time out:\n"
                                     + report(k8s, logs, found))
            time.sleep(1)
        self.healthy_at = time.monotonic()


_gate = Gate()  # one per process: each xdist worker asks for itself


def wait_until_healthy(k8s: client.ApiClient) -> None:
    """At the start of a test that makes pods, on the rig (an existing cluster is taken as it is)."""
    if not EXISTING_KUBECONFIG:
        _gate.wait(k8s, rig_logs())


def report(k8s: client.ApiClient, logs: Path | None, found: list[str] | None = None) -> str:
    """problems(), the system pods' states and logs, recent warnings, and (on the rig, `logs` its log
    directory) the tails of kube-proxy's, the kubelet's and containerd's logs."""
    core = client.CoreV1Api(k8s)
    namespaces = sorted({namespace for namespace, _ in SYSTEM_DEPLOYMENTS})
    out = ["problems: " + ("; ".join(found if found is not None else problems(k8s)) or "none seen"),
           pod_logs(k8s, namespaces, TAIL)]
    for namespace in namespaces:
        warnings = core.list_namespaced_event(namespace, field_selector="type=Warning").items
        warnings.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        out += [f"event {namespace}/{e.involved_object.name}: {e.reason}: {e.message}" for e in warnings[-TAIL:]]
    for name, counts in RIG_LOGS.items() if logs is not None else ():
        path = logs / f"{name}.log"
        lines = [line for line in path.read_text(errors="replace").splitlines() if counts(line)] if path.exists() else []
        out += [f"--- {path}", *lines[-TAIL:]]
    return "\n".join(out)


def pod_logs(k8s: client.ApiClient, namespaces: list[str], lines: int) -> str:
    """Each container of the namespaces' pods: its pod's state, then the last `lines` of its log (probes'
    access lines left out). A pod that has finished its work (the provisioner's helpers) is left out."""
    core, out = client.CoreV1Api(k8s), []
    for namespace in namespaces:
        try:
            pods = core.list_namespaced_pod(namespace).items
        except ApiException as error:
            out.append(f"{namespace}: pods not listed ({error.status})")
            continue
        for pod in (pod for pod in pods if pod.status.phase != "Succeeded"):
            for container in pod.spec.containers:
                try:
                    text = core.read_namespaced_pod_log(pod.metadata.name, namespace, container=container.name,
                                                        tail_lines=10 * lines, _request_timeout=10) or ""  # None: no log yet
                    tail = [line for line in text.splitlines() if "kube-probe" not in line][-lines:]
                except Exception as error:  # a pod gone or a node that does not answer: say so, keep the rest
                    tail = [f"(no log: {type(error).__name__})"]
                out.append(f"--- {namespace}/{pod.metadata.name} [{container.name}] {pod_state(pod, container.name)}")
                out.extend(tail)
    return "\n".join(out)


def pod_state(pod: client.V1Pod, container: str) -> str:
    """The pod's phase and, while it is not Running, why (e.g. the scheduler waiting for its claims to bind);
    the container's readiness, restarts, and what it waits for or last exited with."""
    parts = [pod.status.phase or "?"]
    if pod.status.phase != "Running":
        parts += [c.message or c.reason for c in pod.status.conditions or [] if c.status != "True" and (c.message or c.reason)]
    for status in (s for s in pod.status.container_statuses or [] if s.name == container):
        parts.append(f"ready={status.ready} restarts={status.restart_count}")
        if status.state and status.state.waiting:
            parts.append(f"waiting: {status.state.waiting.reason} {status.state.waiting.message or ''}".strip())
        last = status.last_state and status.last_state.terminated
        if last:
            parts.append(f"last exit {last.exit_code} ({last.reason}) at {last.finished_at}")
    return "; ".join(parts)
