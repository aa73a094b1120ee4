"""Real pods on the rig's real node: the example network end to end, the operator pod's memory,
and a pod's cold start against the same process started on the host.

It starts its own rig in a temp dir (etcd, API server, controller-manager, scheduler, kwok and a
real node: containerd + runc, CNI bridge, kubelet, kube-proxy, CoreDNS), installs the operator
with its Helm chart (a pod, cluster-wide) and measures, in one run:

1. examples/network.yaml (9 agents, 11 components, a managed NATS cluster of 3: 23 pods), from `kubectl apply`
   to the network's Ready condition, broken down: all pods scheduled (spec.nodeName), all pod
   sandboxes and all containers started (containerd task start events), all agents connected
   to NATS (/status) and ready (/ready 200), the nine agents converged (one digest) after a term
   is POSTed to agent 0's pod as soon as all nine are ready, every pod Ready, and the network's
   Ready condition. Repeated (--runs) while it fits the time budget (--budget); median and spread.
2. the leading operator pod's memory (the chart runs two, one leading by its Lease): workingSetBytes
   from the kubelet's stats summary (also read from the pod's cgroup every 0.25 s: the kubelet
   refreshes its figure only every ~10 s), idle and while the networks are applied (peak), against
   the chart's memory request and limit.
3. a pod's cold start on the real node, an agent pod and a component pod (the old pod deleted,
   its controller makes a new one): from containerd's container create, task create and task
   start events to the process answering /health and /ready at the pod IP (polled every 10 ms),
   against the same `agentnet agent` / `agentnet component` started directly on the host (spawn
   -> /health, same polling), the two measured alternately in the same run.

Records only: the project sets no targets here.
Writes bench/results/real_pods.json and real_pods.png (the milestones, the cold starts, the memory curve).
Run: .venv/bin/python -m bench.bench_real_pods [--runs 5] [--cold-starts 5] [--budget 600]
"""

from __future__ import annotations

import argparse
import base64
import calendar
import contextlib
import copy
import glob
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import matplotlib
import yaml
from kubernetes import client, config
from kubernetes.utils import parse_quantity

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from bench.common import RESULTS_DIR, entry, report, significant

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from rig import condition_true, controlplane, images, wait_for  # noqa: E402  (the test rig lives under tests/)
from rig.node import NODE_NAME, Slot, cni_config, containerd_socket  # noqa: E402

from agentnet_operator import names  # noqa: E402
from agentnet_operator.model import DEFAULT_NATS_REPLICAS  # noqa: E402
from agentnet_operator.nats_children import NATS_HEALTH_PATH  # noqa: E402
from agentnet_runtime.catalogue import COMPONENT_NAMES, HTTP_PORT  # noqa: E402
from agentnet_runtime.local.up import network_document_from  # noqa: E402
from agentnet_runtime.natsbin import EmbeddedNats, free_port  # noqa: E402

CHART = REPO / "charts" / "agentnet"
EXAMPLE = yaml.safe_load((REPO / "examples" / "network.yaml").read_text())
NETWORK, AGENTS = EXAMPLE["metadata"]["name"], EXAMPLE["spec"]["agents"]
PODS = AGENTS + len(COMPONENT_NAMES) + DEFAULT_NATS_REPLICAS  # agents, components, the managed NATS servers
OPERATOR_NAMESPACE, RELEASE = "agentnet-system", "agentnet"
AGENTNET = str(Path(sys.executable).with_name("agentnet"))
TERM = "x*(y+z)"
COLD_AGENT = 4  # the agent pod (StatefulSet ordinal) whose cold start is measured
COLD_COMPONENT = "crdt-service"  # the component whose pod's cold start is measured
HTTP_POLL = 0.01  # cold starts: /health and /ready polled this often
LOOP = 0.1  # the network runs: the API and the agents polled this often
RUN_TIMEOUT = 600  # one network, apply to Ready and converged
COLD_RESERVE = 150  # seconds kept in the budget for the cold starts
MiB = 2**20


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- plain HTTP to pod IPs (a connection per request: thread-safe, no TLS, no proxy) ----------


def http_request(host: str, port: int, path: str, method: str = "GET", body: Any = None,
                 timeout: float = 0.5, token: str | None = None) -> tuple[int, bytes] | None:
    """(status, body), or None when nothing answers. `token`: the network's API token, which its
    mutating routes require in the cluster."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {} if body is None else {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def http_json(host: str, path: str, port: int = HTTP_PORT) -> dict | None:
    answer = http_request(host, port, path)
    if answer is None or answer[0] != 200:
        return None
    try:
        return json.loads(answer[1])
    except ValueError:
        return None


def first_200(host: str, port: int, path: str, deadline: float) -> tuple[float, int]:
    """Poll `path` every HTTP_POLL seconds until it answers 200: (wall time of that answer, polls)."""
    polls = 0
    while time.time() < deadline:
        polls += 1
        answer = http_request(host, port, path, timeout=0.5)
        if answer is not None and answer[0] == 200:
            return time.time(), polls
        time.sleep(HTTP_POLL)
    raise TimeoutError(f"http://{host}:{port}{path} did not answer 200 in time")


# --- the cluster ------------------------------------------------------------------------------


class Cluster:
    """The rig's API server, its tools and its real node's containerd."""

    def __init__(self, state: Path, kubeconfig: Path, bin_dir: Path):
        self.state, self.kubeconfig, self.bin = state, kubeconfig, bin_dir
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core, self.custom = client.CoreV1Api(self.api), client.CustomObjectsApi(self.api)
        self.socket = containerd_socket(state)
        self.slot = Slot(int((state / "node" / "slot").read_text()))
        self.ipam_dir = state / "node" / "var-lib" / "cni" / "networks" / cni_config(self.slot.pod_cidr)["name"]
        self._info: dict[str, dict | None] = {}

    def tool(self, name: str, *args: str, input: str | None = None, timeout: float = 600) -> str:
        result = subprocess.run([str(self.bin / name), f"--kubeconfig={self.kubeconfig}", *args], input=input,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def pods(self, namespace: str, selector: str = "") -> list[dict]:
        response = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False,
                                                 _request_timeout=10)
        return json.loads(response.data)["items"]

    def network(self, namespace: str) -> dict:
        try:
            response = self.custom.get_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL,
                                                                NETWORK, _preload_content=False, _request_timeout=10)
        except client.ApiException:
            return {}
        return json.loads(response.data)

    def ctr(self, *args: str) -> str:
        result = subprocess.run(["ctr", f"--address={self.socket}", "--namespace=k8s.io", *args],
                                capture_output=True, text=True, timeout=30)
        return result.stdout if result.returncode == 0 else ""

    def containers(self, namespace: str, kind: str) -> list[str]:
        """IDs of the pod sandboxes (kind "sandbox") or containers ("container") of a namespace."""
        return self.ctr("containers", "list", "--quiet", f'labels."io.kubernetes.pod.namespace"=={namespace},'
                                                         f'labels."io.cri-containerd.kind"=={kind}').split()

    def container_info(self, container_id: str) -> dict | None:
        """Kind, pod namespace and name, container name and sandbox of a container (cached)."""
        if container_id not in self._info:
            try:
                info = json.loads(self.ctr("containers", "info", container_id) or "null")
            except ValueError:
                info = None
            if info is None:
                return None
            labels, annotations = info.get("Labels") or {}, (info.get("Spec") or {}).get("annotations") or {}
            self._info[container_id] = {
                "kind": labels.get("io.cri-containerd.kind"), "namespace": labels.get("io.kubernetes.pod.namespace"),
                "pod": labels.get("io.kubernetes.pod.name"), "container": labels.get("io.kubernetes.container.name"),
                "sandbox": annotations.get("io.kubernetes.cri.sandbox-id", container_id)}
        return self._info[container_id]

    def sandbox_ip(self, sandbox_id: str) -> str | None:
        """The pod IP the CNI host-local IPAM gave a sandbox: a file named by the IP holds its ID."""
        for path in self.ipam_dir.iterdir():
            if path.name[:1].isdigit() and not path.name.startswith("last_reserved_ip"):
                try:
                    if path.read_text().split()[0] == sandbox_id:
                        return path.name
                except (OSError, IndexError):
                    continue
        return None


def api_token(cluster: Cluster, namespace: str, network: str) -> str:
    """The network's API token, from the Secret the operator made (waits for it)."""
    secret = wait_for(lambda: next(iter(cluster.core.list_namespaced_secret(
        namespace, field_selector=f"metadata.name={names.api_token_name(network)}").items), None),
        120, f"the API token Secret of {network}")
    return base64.b64decode(secret.data[names.API_TOKEN_KEY]).decode()


def create_namespace(cluster: Cluster, namespace: str) -> None:
    """A namespace whose pods go to the real node (the rig's default), with its ServiceAccount."""
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    wait_for(lambda: any(sa.metadata.name == "default"
                           for sa in cluster.core.list_namespaced_service_account(namespace).items),
               60, f"the default ServiceAccount of {namespace}")


def delete_namespace(cluster: Cluster, namespace: str) -> float:
    """Delete it and wait for its pods to go (then, briefly, for the namespace); seconds until no pod."""
    started = time.time()
    cluster.core.delete_namespace(namespace)
    wait_for(lambda: not cluster.pods(namespace), 300, f"the pods of {namespace} to go", interval=0.5)
    pods_gone = time.time() - started
    with contextlib.suppress(AssertionError):  # wait_for's timeout
        wait_for(lambda: namespace not in {n.metadata.name for n in cluster.core.list_namespace().items},
                   60, f"namespace {namespace} to go", interval=0.5)
    return pods_gone


def install_operator(cluster: Cluster, image: str) -> float:
    repository, tag = image.rsplit(":", 1)
    started = time.time()
    cluster.tool("helm", "install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
                 "--set-string", f"image.repository={repository}", "--set-string", f"image.tag={tag}",
                 "--wait", "--timeout", "300s")
    wait_for(lambda: any(condition_true(p, "Ready") for p in cluster.pods(
        OPERATOR_NAMESPACE, f"app.kubernetes.io/instance={RELEASE}")), 120, "the operator pod to be Ready")
    return time.time() - started


# --- containerd's events ---------------------------------------------------------------------------


def parse_event(line: str) -> tuple[float, str, str, dict] | None:
    """`ctr events` line -> (wall time, namespace, topic, payload), e.g.
    2026-12-04 23:43:29.8171596 +0000 UTC k8s.io /containers/create {"id": ...}"""
    parts = line.rstrip("\n").split(" ", 6)
    if len(parts) < 7 or not parts[5].startswith("/"):
        return None
    day, clock, offset, _zone, namespace, topic, payload = parts
    try:
        hms, _, fraction = clock.partition(".")
        seconds = calendar.timegm(time.strptime(f"{day} {hms}", "%Y-%m-%d %H:%M:%S")) + float(f"0.{fraction or 0}")
        sign = -1 if offset.startswith("-") else 1
        seconds -= sign * (int(offset[1:3]) * 3600 + int(offset[3:5]) * 60)
        return seconds, namespace, topic, json.loads(payload)
    except ValueError:
        return None


class ContainerdEvents:
    """`ctr events` on the node's containerd, read in a thread: when each container was created,
    its task created (runc create) and started (the entry point exec'd), by container ID."""

    TOPICS = ("/containers/create", "/tasks/create", "/tasks/start", "/tasks/exit")

    def __init__(self, socket: Path):
        self.process = subprocess.Popen(["ctr", f"--address={socket}", "--namespace=k8s.io", "events"],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lock = threading.Lock()
        self.times: dict[str, dict[str, float]] = {}
        self.created: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.5)  # subscribed before anything is measured

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = parse_event(line)
            if event is None or event[1] != "k8s.io" or event[2] not in self.TOPICS:
                continue
            seconds, _, topic, payload = event
            container = payload.get("container_id") or payload.get("id")
            if not container:
                continue
            with self.lock:
                self.times.setdefault(container, {}).setdefault(topic, seconds)
                if topic == "/containers/create":
                    self.created.append((seconds, container))

    def time(self, container: str, topic: str) -> float | None:
        with self.lock:
            return self.times.get(container, {}).get(topic)

    def created_since(self, since: float) -> list[str]:
        with self.lock:
            return [container for seconds, container in self.created if seconds >= since]

    def stop(self) -> None:
        controlplane.stop_process(self.process, grace=5)


# --- the operator pod's memory -----------------------------------------------------------------------


def leading_pod(cluster: Cluster) -> str:
    """The operator pod holding the chart's Lease (named after the release; identity `<pod>_<random>`), or ""."""
    try:
        lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease(RELEASE, OPERATOR_NAMESPACE)
    except client.ApiException:
        return ""
    return (lease.spec.holder_identity or "").rpartition("_")[0]


class OperatorMemory:
    """Samples the leading operator pod's memory (the chart runs a standby beside it, which does no work):
    the kubelet's stats summary (workingSetBytes, refreshed by the kubelet every ~10 s), the pod's cgroup
    (working set = usage - inactive file, as cAdvisor computes it) every 0.25 s, and the process's RSS
    from its /metrics. `phase()` marks spans."""

    def __init__(self, cluster: Cluster):
        leader = wait_for(lambda: leading_pod(cluster), 60, "a leading operator pod", interval=0.5)
        (pod,) = [p for p in cluster.pods(OPERATOR_NAMESPACE, f"app.kubernetes.io/instance={RELEASE}")
                  if p["metadata"]["name"] == leader]
        self.pod, self.ip = pod["metadata"]["name"], pod["status"]["podIP"]
        self.resources = pod["spec"]["containers"][0].get("resources") or {}
        uid = pod["metadata"]["uid"]
        found = (glob.glob(f"/sys/fs/cgroup/memory/{cluster.slot.cgroup}/kubepods/**/pod{uid}", recursive=True)
                 or glob.glob(f"/sys/fs/cgroup/{cluster.slot.cgroup}/kubepods/**/pod{uid}", recursive=True))
        self.cgroup = Path(found[0]) if found else None
        self.api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # this thread's own
        self.kubelet: dict[float, int] = {}  # stats time -> workingSetBytes
        self.cgroup_samples: list[tuple[float, int]] = []
        self.rss: list[tuple[float, int]] = []
        self.host_cpu: list[tuple[float, float]] = []  # (time, share of all cores busy over the last second)
        self._cpu_last: tuple[int, int] | None = None
        self.phases: list[tuple[float, float, str]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self.thread.start()

    @contextlib.contextmanager
    def phase(self, label: str) -> Iterator[None]:
        started = time.time()
        try:
            yield
        finally:
            self.phases.append((started, time.time(), label))

    def cgroup_working_set(self) -> int | None:
        if self.cgroup is None:
            return None
        try:
            if (self.cgroup / "memory.usage_in_bytes").exists():  # cgroup v1
                usage, inactive_key = int((self.cgroup / "memory.usage_in_bytes").read_text()), "total_inactive_file"
            else:  # cgroup v2
                usage, inactive_key = int((self.cgroup / "memory.current").read_text()), "inactive_file"
            stat = dict(line.split() for line in (self.cgroup / "memory.stat").read_text().splitlines())
            return max(0, usage - int(stat.get(inactive_key, 0)))
        except (OSError, ValueError):
            return None

    def cgroup_max_usage(self) -> int | None:
        """cgroup v1's high-water mark of the pod's usage (page cache included) since it started."""
        path = self.cgroup / "memory.max_usage_in_bytes" if self.cgroup else None
        return int(path.read_text()) if path and path.exists() else None

    def _kubelet_sample(self) -> None:
        response = client.CoreV1Api(self.api).connect_get_node_proxy_with_path(
            NODE_NAME, "stats/summary", _preload_content=False, _request_timeout=10)
        for pod in json.loads(response.data).get("pods", []):
            if pod["podRef"]["name"] == self.pod and (pod.get("memory") or {}).get("workingSetBytes") is not None:
                stamp = calendar.timegm(time.strptime(pod["memory"]["time"], "%Y-%m-%dT%H:%M:%SZ"))
                self.kubelet[stamp] = pod["memory"]["workingSetBytes"]

    def _rss_sample(self) -> None:
        answer = http_request(self.ip, 8081, "/metrics", timeout=2)
        for line in (answer[1].decode().splitlines() if answer and answer[0] == 200 else []):
            if line.startswith("process_resident_memory_bytes "):
                self.rss.append((time.time(), int(float(line.split()[1]))))

    def _cpu_sample(self) -> None:
        """How busy the whole machine was (every process, this rig's and anyone else's): /proc/stat."""
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle, total = fields[3] + fields[4], sum(fields[:8])
        if self._cpu_last is not None and total > self._cpu_last[1]:
            self.host_cpu.append((time.time(), 1 - (idle - self._cpu_last[0]) / (total - self._cpu_last[1])))
        self._cpu_last = (idle, total)

    def cpu_busy(self, since: float, until: float) -> float | None:
        values = [v for t, v in self.host_cpu if since <= t <= until]
        return round(statistics.mean(values), 3) if values else None

    def _sample(self) -> None:
        tick = 0
        while not self._stop.wait(0.25):
            value = self.cgroup_working_set()
            if value is not None:
                self.cgroup_samples.append((time.time(), value))
            if tick % 4 == 0:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    self._cpu_sample()
            if tick % 8 == 0:  # every 2 s
                with contextlib.suppress(Exception):  # a slow or failed sample is skipped, not fatal
                    self._kubelet_sample()
                with contextlib.suppress(Exception):
                    self._rss_sample()
            tick += 1

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)

    def within(self, samples: list[tuple[float, int]], label_prefix: str) -> list[int]:
        spans = [(a, b) for a, b, label in self.phases if label.startswith(label_prefix)]
        return [value for stamp, value in samples if any(a <= stamp <= b for a, b in spans)]

    def summary(self) -> dict:
        kubelet = sorted(self.kubelet.items())
        request = memory_bytes((self.resources.get("requests") or {}).get("memory"))
        limit = memory_bytes((self.resources.get("limits") or {}).get("memory"))
        idle_k, apply_k = self.within(kubelet, "idle"), self.within(kubelet, "apply")
        idle_c, apply_c = self.within(self.cgroup_samples, "idle"), self.within(self.cgroup_samples, "apply")
        idle_r, apply_r = self.within(self.rss, "idle"), self.within(self.rss, "apply")
        return {
            "pod": self.pod, "request_bytes": request, "limit_bytes": limit,
            "kubelet_idle": statistics.median(idle_k) if idle_k else None,
            "kubelet_apply_peak": max(apply_k) if apply_k else None,
            "kubelet_peak": max(v for _, v in kubelet) if kubelet else None,
            "kubelet_samples_idle": len(idle_k), "kubelet_samples_apply": len(apply_k),
            "cgroup_idle": statistics.median(idle_c) if idle_c else None,
            "cgroup_apply_peak": max(apply_c) if apply_c else None,
            "cgroup_max_usage": self.cgroup_max_usage(),
            "rss_idle": statistics.median(idle_r) if idle_r else None,
            "rss_apply_peak": max(apply_r) if apply_r else None,
        }


def memory_bytes(quantity: str | None) -> int | None:
    return int(parse_quantity(quantity)) if quantity else None


# --- 1. the example network -----------------------------------------------------------------------


MILESTONES = [  # key, what it is (all: seconds after `kubectl apply` started)
    ("applied", "kubectl apply returned"),
    ("scheduled", f"all {PODS} pods scheduled (spec.nodeName set)"),
    ("sandboxes", f"all {PODS} pod sandboxes started (containerd task start)"),
    ("containers", f"all {PODS} containers started (containerd task start)"),
    ("running_api", f"all {PODS} containers running (API container status)"),
    ("nats_serving", "NATS server answers its health check (pod IP, JetStream on)"),
    ("nats_pod_ready", "NATS server pod Ready (API; readiness probe every 5 s)"),
    ("nats", f"all {AGENTS} agents connected to NATS (/status)"),
    ("agents_ready", f"all {AGENTS} agents ready (/ready 200)"),
    ("converged", f"all {AGENTS} agents hold one digest (term sent when all were ready)"),
    ("pods_ready", f"all {PODS} pods Ready (API)"),
    ("network_ready", "network Ready condition"),
]


def network_run(cluster: Cluster, events: ContainerdEvents, memory: OperatorMemory, namespace: str,
                image: str) -> dict:
    create_namespace(cluster, namespace)
    body = copy.deepcopy(EXAMPLE)
    body["spec"]["image"] = image
    agents_prefix = names.agents_name(NETWORK) + "-"
    first: dict[str, dict[Any, float]] = {key: {} for key in ("scheduled", "running", "ready", "nats", "agent_ready")}
    agent_ips: dict[int, str] = {}
    nats_pod, nats_ip, nats_serving = f"{names.nats_name(NETWORK)}-0", None, None  # the first server
    term_sent = converged = network_ready = token = None
    pods: list[dict] = []
    pool = ThreadPoolExecutor(max_workers=AGENTS)

    def probe(agent: int) -> tuple[int, bool, bool]:
        ip = agent_ips[agent]
        status = http_json(ip, "/status") if agent not in first["nats"] else None
        ready = http_request(ip, HTTP_PORT, "/ready") if agent not in first["agent_ready"] else None
        return agent, bool(status and (status.get("nats") or {}).get("connected")), bool(ready and ready[0] == 200)

    def state(agent: int) -> dict | None:
        return http_json(agent_ips[agent], f"/agent/{agent}/state")

    started = time.time()
    with memory.phase(f"apply {namespace}"):
        cluster.tool("kubectl", "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body))
        applied = time.time()
        while network_ready is None or converged is None:
            if time.time() - started > RUN_TIMEOUT:
                raise TimeoutError(f"{namespace}: the example network was not Ready and converged within "
                                   f"{RUN_TIMEOUT} s (Ready: {network_ready is not None}, term sent: "
                                   f"{term_sent is not None}, converged: {converged is not None})")
            pods = cluster.pods(namespace)
            now = time.time()
            for pod in pods:
                name, status = pod["metadata"]["name"], pod.get("status") or {}
                if pod["spec"].get("nodeName"):
                    first["scheduled"].setdefault(name, now)
                containers = status.get("containerStatuses") or []
                if containers and all("running" in (c.get("state") or {}) for c in containers):
                    first["running"].setdefault(name, now)
                if condition_true(pod, "Ready"):
                    first["ready"].setdefault(name, now)
                if name.startswith(agents_prefix) and status.get("podIP"):
                    agent_ips[int(name[len(agents_prefix):])] = status["podIP"]
                if name == nats_pod and status.get("podIP"):
                    nats_ip = status["podIP"]
            if nats_ip and nats_serving is None:
                answer = http_request(nats_ip, names.NATS_MONITOR_PORT, NATS_HEALTH_PATH)
                if answer is not None and answer[0] == 200:
                    nats_serving = time.time()
            waiting = [a for a in agent_ips if a not in first["nats"] or a not in first["agent_ready"]]
            for agent, connected, ready in pool.map(probe, waiting):
                if connected or ready:  # /ready answers 200 only once NATS is connected
                    first["nats"].setdefault(agent, time.time())
                if ready:
                    first["agent_ready"].setdefault(agent, time.time())
            if term_sent is None and len(first["agent_ready"]) == AGENTS:
                token = token or api_token(cluster, namespace, NETWORK)
                answer = http_request(agent_ips[0], HTTP_PORT, "/agent/0/message", "POST", {"term": TERM}, timeout=5,
                                      token=token)
                if answer is not None and answer[0] == 202:
                    term_sent = time.time()
            if term_sent is not None and converged is None:
                states = list(pool.map(state, range(AGENTS)))
                if all(states) and len({s["digest"] for s in states}) == 1 and all(s["egraph_nodes"] > 0 for s in states):
                    converged = time.time()
            if network_ready is None and condition_true(cluster.network(namespace), "Ready"):
                network_ready = time.time()
            time.sleep(LOOP)
    pool.shutdown()

    def last(times: dict, count: int = PODS) -> float | None:
        """When the last of `count` items got there (None if some never did)."""
        return max(times.values()) - started if len(times) >= count else None

    # containerd's view: the sandbox and the one container of every pod
    sandboxes = cluster.containers(namespace, "sandbox")
    containers = [c["containerID"].split("://", 1)[-1] for p in pods
                  for c in (p.get("status") or {}).get("containerStatuses") or [] if c.get("containerID")]
    restarts = sum(c.get("restartCount", 0)
                   for p in pods for c in (p.get("status") or {}).get("containerStatuses") or [])

    def containerd_last(ids: list[str], topic: str) -> float | None:
        times = [events.time(i, topic) for i in ids]
        return max(times) - started if len(ids) == PODS and all(t is not None for t in times) else None

    container_starts = sorted(t - started for t in (events.time(i, "/tasks/start") for i in containers) if t)
    # each pod's own timeline, for where the time goes (seconds after apply)
    timeline: dict[str, dict[str, float | None]] = {}
    for sandbox in sandboxes:
        info = cluster.container_info(sandbox) or {}
        start = events.time(sandbox, "/tasks/start")
        timeline.setdefault(info.get("pod") or sandbox, {})["sandbox_started"] = start and round(start - started, 3)
    for pod in pods:
        name = pod["metadata"]["name"]
        ids = [c["containerID"].split("://", 1)[-1] for c in (pod.get("status") or {}).get("containerStatuses") or []
               if c.get("containerID")]
        start = events.time(ids[0], "/tasks/start") if ids else None
        timeline.setdefault(name, {}).update({
            "scheduled": round(first["scheduled"][name] - started, 3) if name in first["scheduled"] else None,
            "container_started": start and round(start - started, 3),
            "running_api": round(first["running"][name] - started, 3) if name in first["running"] else None,
            "ready_api": round(first["ready"][name] - started, 3) if name in first["ready"] else None})
        if name.startswith(agents_prefix) and int(name[len(agents_prefix):]) in first["nats"]:
            timeline[name]["nats_connected"] = round(first["nats"][int(name[len(agents_prefix):])] - started, 3)
    milestones = {
        "applied": applied - started, "scheduled": last(first["scheduled"]),
        "sandboxes": containerd_last(sandboxes, "/tasks/start"),
        "containers": containerd_last(containers, "/tasks/start"),
        "running_api": last(first["running"]),
        "nats_serving": nats_serving and nats_serving - started,
        "nats_pod_ready": first["ready"][nats_pod] - started if nats_pod in first["ready"] else None,
        "nats": last(first["nats"], AGENTS),
        "agents_ready": last(first["agent_ready"], AGENTS),
        "converged": converged - started, "pods_ready": last(first["ready"]), "network_ready": network_ready - started,
    }
    return {
        "namespace": namespace, "milestones": {key: None if value is None else round(value, 3)
                                               for key, value in milestones.items()},
        "term_sent": round(term_sent - started, 3), "term_to_converged": round(converged - term_sent, 3),
        "first_container_started": round(container_starts[0], 3) if container_starts else None,
        "container_starts": [round(t, 3) for t in container_starts],
        "pods_ready_to_network_ready": round((network_ready - started) - (milestones["pods_ready"] or 0), 3),
        "restarts": restarts, "wall": round(time.time() - started, 1), "pods": timeline,
    }


# --- 3. cold starts ------------------------------------------------------------------------------------


def pod_cold_start(cluster: Cluster, events: ContainerdEvents, namespace: str, kind: str) -> dict:
    """Delete the pod (agent COLD_AGENT or the COLD_COMPONENT's) and time its successor's start."""
    if kind == "agent":
        old = pod_prefix = f"{names.agents_name(NETWORK)}-{COLD_AGENT}"
        container = "agent"
    else:
        selector = f"{names.LABEL_INSTANCE}={NETWORK},{names.LABEL_COMPONENT}={COLD_COMPONENT}"
        current = wait_for(lambda: [p for p in cluster.pods(namespace, selector)
                                      if not p["metadata"].get("deletionTimestamp")], 120, f"a {COLD_COMPONENT} pod")
        old, container = current[0]["metadata"]["name"], COLD_COMPONENT
        pod_prefix = names.component_name(NETWORK, COLD_COMPONENT) + "-"
    before = set(events.created_since(0))
    deleted = time.time()
    cluster.core.delete_namespaced_pod(old, namespace)
    deadline = deleted + 240
    found, checked = None, set()
    while found is None:
        if time.time() > deadline:
            raise TimeoutError(f"no new {container} container in {namespace} within 240 s of deleting {old}")
        for container_id in events.created_since(deleted):
            if container_id in checked or container_id in before:
                continue
            checked.add(container_id)
            info = cluster.container_info(container_id)
            if (info and info["kind"] == "container" and info["namespace"] == namespace
                    and info["container"] == container and info["pod"].startswith(pod_prefix)):
                found = container_id, info
        time.sleep(0.005)
    container_id, info = found
    ip = wait_for(lambda: cluster.sandbox_ip(info["sandbox"]), 30, f"the IP of {info['pod']}", interval=0.005)
    polling_from = time.time()
    health, health_polls = first_200(ip, HTTP_PORT, "/health", deadline)
    ready, _ = first_200(ip, HTTP_PORT, "/ready", deadline)
    create = events.time(container_id, "/containers/create")
    times = {"sandbox_create": events.time(info["sandbox"], "/containers/create"),
             "sandbox_start": events.time(info["sandbox"], "/tasks/start"), "create": create,
             "task_create": events.time(container_id, "/tasks/create"),
             "task_start": events.time(container_id, "/tasks/start"),
             "polling_from": polling_from, "health": health, "ready": ready}
    if any(value is None for value in times.values()):
        raise RuntimeError(f"containerd events missing for {info['pod']}: {times}")
    return {"pod": info["pod"], "deleted_to_sandbox_create_s": round(times["sandbox_create"] - deleted, 3),
            "deleted_to_health_s": round(health - deleted, 3),
            **{f"{key}_ms": round((value - create) * 1000, 1) for key, value in times.items()},
            # polling began after the process answered: the figure is then an upper bound
            "first_poll_answered": health_polls == 1}


def host_cold_start(kind: str, network_json: Path, nats_url: str, data_dir: Path) -> dict:
    """`agentnet agent` / `agentnet component` spawned here, outside any container: spawn -> /health, /ready."""
    port = free_port()
    common = ["--config", str(network_json), "--nats-url", nats_url, "--host", "127.0.0.1", "--port", str(port)]
    command = ([AGENTNET, "agent", "--agents", "0", *common] if kind == "agent"
               else [AGENTNET, "component", COLD_COMPONENT, *common, "--data-dir", str(data_dir)])
    spawned = time.time()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        health, _ = first_200("127.0.0.1", port, "/health", spawned + 120)
        ready, _ = first_200("127.0.0.1", port, "/ready", spawned + 120)
    finally:
        controlplane.stop_process(process, grace=10)
    return {"health_ms": round((health - spawned) * 1000, 1), "ready_ms": round((ready - spawned) * 1000, 1)}


def cold_starts(cluster: Cluster, events: ContainerdEvents, namespace: str, repeats: int) -> dict:
    results: dict[str, list[dict]] = {"host agent": [], "pod agent": [], "host component": [], "pod component": []}
    with tempfile.TemporaryDirectory(prefix="agentnet-bench-host-") as tmp, EmbeddedNats() as nats:
        network_json = Path(tmp) / "network.json"
        network_json.write_text(json.dumps(network_document_from(EXAMPLE)))
        for repeat in range(repeats):
            for kind in ("agent", "component"):
                data_dir = Path(tmp) / f"data-{kind}-{repeat}"
                data_dir.mkdir()
                results[f"host {kind}"].append(host_cold_start(kind, network_json, nats.url, data_dir))
                results[f"pod {kind}"].append(pod_cold_start(cluster, events, namespace, kind))
                log(f"cold start {repeat + 1}/{repeats} {kind}: host {results[f'host {kind}'][-1]['health_ms']} ms, "
                    f"pod create -> /health {results[f'pod {kind}'][-1]['health_ms']} ms")
    return results


# --- the report ------------------------------------------------------------------------------------------


SEGMENTS = [  # a pod's cold start: name, end, start (keys of pod_cold_start's result)
    ("create_to_task_create", "task_create_ms", "create_ms"),
    ("task_create_to_task_start", "task_start_ms", "task_create_ms"),
    ("task_start_to_health", "health_ms", "task_start_ms"),
    ("health_to_ready", "ready_ms", "health_ms"),
]


def spread(values: list[float]) -> dict:
    return {"median": significant(statistics.median(values)), "min": significant(min(values)),
            "max": significant(max(values)), "samples": [significant(v) for v in values]}


def network_entries(runs: list[dict]) -> list[dict]:
    entries = []
    how = ("wall time from just before `kubectl apply -f examples/network.yaml` (a fresh namespace on the real node, "
           "operator installed by Helm); the API and the agents' pod IPs polled every 0.1 s, containerd's event "
           "timestamps for sandboxes and containers")
    for key, label in MILESTONES:
        values = [r["milestones"][key] for r in runs if r["milestones"][key] is not None]
        if key == "applied" or not values:
            continue
        extra = {"host_cpu_busy_per_run": [r.get("host_cpu_busy_mean") for r in runs]} if key == "network_ready" else {}
        entries.append(entry(f"example network on the real node: apply -> {label}", statistics.median(values), "s",
                             None, higher_is_better=False, runs=len(values), **spread(values), **extra, how=how))
    term = [r["term_to_converged"] for r in runs]
    entries.append(entry(f"example network: term POSTed to agent 0 -> all {AGENTS} agents hold one digest",
                         statistics.median(term), "s", None, higher_is_better=False, runs=len(term), **spread(term),
                         how=f"POST /agent/0/message {{'term': '{TERM}'}} at agent 0's pod IP as soon as all nine "
                             "answered /ready; then GET /agent/{i}/state of all nine every 0.1 s until one digest "
                             "(sizes > 0)"))
    share = [r["pods_ready_to_network_ready"] for r in runs]
    entries.append(entry("example network: last pod Ready -> network Ready condition (the operator's share)",
                         statistics.median(share), "s", None, higher_is_better=False, runs=len(share), **spread(share),
                         how="both seen through the API, polled every 0.1 s"))
    return entries


def memory_entries(memory: dict) -> list[dict]:
    request, limit = memory["request_bytes"], memory["limit_bytes"]
    baseline = ({"name": f"the chart's memory request ({request / MiB:.0f} MiB)", "value": request / MiB}
                if request else None)
    against = {"request_mib": request / MiB if request else None, "limit_mib": limit / MiB if limit else None}
    entries = []
    if memory["kubelet_idle"] is not None:
        entries.append(entry(
            "operator pod memory, idle (kubelet stats summary workingSetBytes)", memory["kubelet_idle"] / MiB, "MiB",
            None, higher_is_better=False, baseline=baseline, **against,
            share_of_limit=significant(memory["kubelet_idle"] / limit) if limit else None,
            kubelet_samples=memory["kubelet_samples_idle"],
            cgroup_working_set_mib=significant(memory["cgroup_idle"] / MiB) if memory["cgroup_idle"] else None,
            process_rss_mib=significant(memory["rss_idle"] / MiB) if memory["rss_idle"] else None,
            how="median of the kubelet's figures (GET /api/v1/nodes/agentnet-node/proxy/stats/summary every 2 s) "
                "while the operator, installed and Ready, had no network; also its pod cgroup and its own "
                "process_resident_memory_bytes"))
    peak = memory["kubelet_apply_peak"]
    if peak is not None:
        entries.append(entry(
            "operator pod memory, peak while the example networks are applied (kubelet workingSetBytes)", peak / MiB,
            "MiB", None, higher_is_better=False, baseline=baseline, **against,
            share_of_limit=significant(peak / limit) if limit else None,
            kubelet_samples=memory["kubelet_samples_apply"],
            cgroup_working_set_peak_mib=(significant(memory["cgroup_apply_peak"] / MiB)
                                         if memory["cgroup_apply_peak"] else None),
            cgroup_max_usage_mib=significant(memory["cgroup_max_usage"] / MiB) if memory["cgroup_max_usage"] else None,
            process_rss_peak_mib=significant(memory["rss_apply_peak"] / MiB) if memory["rss_apply_peak"] else None,
            how="highest kubelet figure stamped between `kubectl apply` and the network Ready and converged, over "
                "all runs; cgroup_working_set_peak_mib is the pod cgroup read every 0.25 s over the same spans; "
                "cgroup_max_usage_mib is the cgroup's high-water mark since the pod started (page cache included)"))
    return entries


def cold_start_entries(results: dict) -> list[dict]:
    entries = []
    for kind in ("agent", "component"):
        pod, host = results[f"pod {kind}"], results[f"host {kind}"]
        process = "`agentnet agent`" if kind == "agent" else f"`agentnet component {COLD_COMPONENT}`"
        what = f"{kind} pod" if kind == "agent" else f"component pod ({COLD_COMPONENT})"
        host_health = statistics.median(r["health_ms"] for r in host)
        host_ready = statistics.median(r["ready_ms"] for r in host)
        breakdown = {f"median_{name}_ms": significant(statistics.median(r[key] - r[start] for r in pod))
                     for name, key, start in SEGMENTS}
        common = {"runs": len(pod), "pods": [r["pod"] for r in pod],
                  "host_cpu_busy_mean": results.get("host_cpu_busy_mean"),
                  "polls_started_after_answer": sum(r["first_poll_answered"] for r in pod)}
        health = [r["health_ms"] for r in pod]
        entries.append(entry(
            f"{what} cold start on the real node: container create -> /health", statistics.median(health), "ms", None,
            higher_is_better=False, baseline={"name": f"{process} on the host: spawn -> /health", "value": host_health},
            **spread(health), **common, **breakdown,
            sandbox_create_to_container_create_ms=significant(statistics.median(-r["sandbox_create_ms"] for r in pod)),
            pod_deleted_to_new_sandbox_median_s=significant(
                statistics.median(r["deleted_to_sandbox_create_s"] for r in pod)),
            pod_deleted_to_health_median_s=significant(statistics.median(r["deleted_to_health_s"] for r in pod)),
            how="containerd /containers/create event of the new pod's container (the old pod deleted, its controller "
                "made a new one) to the first 200 on /health at the pod IP, polled every 10 ms from the host; "
                "segments: create -> task create (runc create) -> task start (exec of the entry point) -> /health -> "
                "/ready. The host baseline polls the same way, measured alternately in the same run"))
        process_only = [r["health_ms"] - r["task_start_ms"] for r in pod]
        entries.append(entry(
            f"{what} cold start: containerd task start -> /health (the process alone)", statistics.median(process_only),
            "ms", None, higher_is_better=False,
            baseline={"name": f"{process} on the host: spawn -> /health", "value": host_health}, **spread(process_only),
            runs=len(pod), how="the containerd /tasks/start event (entry point exec'd) to the first 200 on /health"))
        ready = [r["ready_ms"] for r in pod]
        entries.append(entry(
            f"{what} cold start: container create -> /ready (NATS connected, JetStream objects there)",
            statistics.median(ready), "ms", None, higher_is_better=False,
            baseline={"name": f"{process} on the host: spawn -> /ready (NATS on the host)", "value": host_ready},
            **spread(ready), runs=len(pod), how="as above, to the first 200 on /ready"))
        entries.append(entry(
            f"host baseline: {process} spawn -> /health (outside any container)", host_health, "ms", None,
            higher_is_better=False, **spread([r["health_ms"] for r in host]), runs=len(host),
            ready_median_ms=significant(host_ready),
            how=f"{process} started from this process with the example's network.json and an embedded nats-server "
                "(JetStream); /health polled every 10 ms; bench_runtime's 'agent process ready' polls every 2 ms"))
    return entries


def draw(path: Path, runs: list[dict], memory: OperatorMemory, colds: dict) -> Path:
    """Three panels: the milestones after `kubectl apply`, the cold starts' segments, the operator's memory."""
    figure, (milestones, cold, curve) = plt.subplots(3, 1, figsize=(13, 15), gridspec_kw={"height_ratios": [5, 3, 4]})
    colours = plt.get_cmap("tab10").colors

    labels, medians, lows, highs = [], [], [], []
    for key, label in MILESTONES:
        values = [r["milestones"][key] for r in runs if r["milestones"][key] is not None]
        if values:
            median = statistics.median(values)
            labels.append(label)
            medians.append(median)
            lows.append(median - min(values))
            highs.append(max(values) - median)
    rows = range(len(labels))
    milestones.barh(rows, medians, xerr=[lows, highs], capsize=3, color=[colours[i % 10] for i in rows])
    for row, median, high in zip(rows, medians, highs):
        milestones.annotate(f"{median:.1f} s", (median + high, row), xytext=(6, 0), textcoords="offset points",
                            va="center")
    milestones.set_xlim(0, max(m + h for m, h in zip(medians, highs)) * 1.12)  # room for the labels
    milestones.set_yticks(list(rows), labels)
    milestones.invert_yaxis()
    milestones.set_xlabel("seconds after kubectl apply")
    milestones.set_title(f"The example network ({PODS} pods) on the real node: median of {len(runs)} runs, "
                         "whiskers min-max", loc="left")

    segment_names = ["container create > task create", "task create > task start", "process start > /health",
                     "/health > /ready"]
    bar_labels, lefts_by_segment = [], [[] for _ in segment_names]
    widths_by_segment: list[list[float]] = [[] for _ in segment_names]
    for kind in ("agent", "component"):
        pod, host = colds[f"pod {kind}"], colds[f"host {kind}"]
        name = "agent" if kind == "agent" else COLD_COMPONENT
        widths = [statistics.median(r[key] - r[start] for r in pod) for _, key, start in SEGMENTS]
        health, ready = (statistics.median(r["health_ms"] for r in host), statistics.median(r["ready_ms"] for r in host))
        for bar, bar_widths in ((f"{name} pod (real node)", widths), (f"{name} on the host", [0, 0, health, ready - health])):
            bar_labels.append(bar)
            left = 0.0
            for index, width in enumerate(bar_widths):
                lefts_by_segment[index].append(left)
                widths_by_segment[index].append(width)
                left += width
    bars = range(len(bar_labels))
    for index, segment in enumerate(segment_names):
        cold.barh(bars, widths_by_segment[index], left=lefts_by_segment[index], label=segment,
                  color=("#78909c", "#ffa726", colours[0], colours[2])[index])
    cold.set_yticks(list(bars), bar_labels)
    cold.invert_yaxis()
    cold.set_xlabel("milliseconds")
    cold.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    cold.set_title(f"Cold start, median of {len(colds['pod agent'])}: a new pod against the same process on the host",
                   loc="left")

    t0 = min([s for s, _ in memory.cgroup_samples] + [a for a, _, _ in memory.phases] + [time.time()])
    legend_has_apply = False
    for started, ended, label in memory.phases:
        applying = label.startswith("apply")
        curve.axvspan(started - t0, ended - t0, color="#ffe0b2" if applying else "#e8f5e9", zorder=0,
                      label="a network being applied" if applying and not legend_has_apply else None)
        legend_has_apply = legend_has_apply or applying
    series = [("pod cgroup working set (every 0.25 s)", memory.cgroup_samples, "-"),
              ("process RSS (/metrics)", memory.rss, "."),
              ("kubelet stats summary workingSetBytes", sorted(memory.kubelet.items()), "o")]
    for label, samples, style in series:
        points = [(t - t0, v / MiB) for t, v in samples if t >= t0 - 1]  # not a kubelet figure cached before
        if points:
            curve.plot(*zip(*points), style, label=label, markersize=4)
    for quantity, colour, label in (((memory.resources.get("requests") or {}).get("memory"), "#e68a00", "request"),
                                    ((memory.resources.get("limits") or {}).get("memory"), "#c62828", "limit")):
        if quantity:
            curve.axhline(memory_bytes(quantity) / MiB, color=colour, linestyle="--", label=f"{label} {quantity}")
    curve.set_ylim(0, curve.get_ylim()[1] * 1.3)  # room for the legend above the lines
    curve.set_xlabel("seconds")
    curve.set_ylabel("MiB")
    curve.legend(loc="upper left", ncol=3, fontsize="small")
    curve.set_title("The operator pod's memory over the run", loc="left")

    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# --- main ---------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="example network runs at most (default 5)")
    parser.add_argument("--budget", type=float, default=600,
                        help="seconds: a further network run starts only if it is expected to fit (default 600)")
    parser.add_argument("--cold-starts", type=int, default=5, help="cold starts of each kind (default 5)")
    parser.add_argument("--idle-seconds", type=float, default=45,
                        help="operator idle memory window; the kubelet refreshes its figure every ~10-15 s (default 45)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="use the rig running there (development; left running) instead of a fresh one")
    args = parser.parse_args()
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="agentnet-bench-") as tmp:
        reuse = args.state_dir is not None and controlplane.running(args.state_dir.resolve())
        state = args.state_dir.resolve() if args.state_dir else Path(tmp) / "controlplane"
        events = memory = None
        runs: list[dict] = []
        try:
            log(f"starting the rig in {state}" if not reuse else f"using the rig running in {state}")
            kubeconfig = controlplane.up(state, watch_pid=None if reuse else os.getpid())
            rig_seconds = time.time() - began
            cluster = Cluster(state, kubeconfig, controlplane.build_binaries())
            image = images.runtime().reference
            installed = any(cluster.pods(OPERATOR_NAMESPACE, f"app.kubernetes.io/instance={RELEASE}"))
            helm_seconds = 0.0 if installed else install_operator(cluster, image)
            log(f"rig up in {rig_seconds:.1f} s, operator installed by Helm in {helm_seconds:.1f} s")
            events = ContainerdEvents(cluster.socket)
            memory = OperatorMemory(cluster)
            memory.start()
            with memory.phase("idle"):
                time.sleep(args.idle_seconds)
            deletions: list[float] = []
            while True:
                namespace = f"bench-net-{len(runs) + 1}-{int(time.time()) % 100000}"
                log(f"run {len(runs) + 1}: kubectl apply the example network in {namespace}")
                run_started = time.time()
                runs.append(network_run(cluster, events, memory, namespace, image))
                runs[-1]["host_cpu_busy_mean"] = memory.cpu_busy(run_started, time.time())
                m = runs[-1]["milestones"]
                log(f"run {len(runs)}: all containers started {m['containers']} s, agents ready {m['agents_ready']} s, "
                    f"converged {m['converged']} s, network Ready {m['network_ready']} s")
                cycle = max(r["wall"] for r in runs) + max(deletions, default=60.0)
                if len(runs) >= args.runs or time.time() - began + cycle + COLD_RESERVE > args.budget:
                    break
                with memory.phase("deleting"):
                    deletions.append(delete_namespace(cluster, runs[-1]["namespace"]))
                runs[-1]["delete_to_pods_gone"] = deletions[-1]
                log(f"namespace deleted, its pods gone in {deletions[-1]:.1f} s")
            with memory.phase("cold starts"):
                cold_started = time.time()
                colds = cold_starts(cluster, events, runs[-1]["namespace"], args.cold_starts)
                colds["host_cpu_busy_mean"] = memory.cpu_busy(cold_started, time.time())
            summary = memory.summary()  # while the pod's cgroup is there
        finally:
            if memory is not None:
                memory.stop()
            if events is not None:
                events.stop()
            if not reuse:
                log("stopping the rig")
                controlplane.down(state)
    entries = network_entries(runs) + memory_entries(summary) + cold_start_entries(colds)
    report("real_pods", entries, rig_start_seconds=round(rig_seconds, 1), helm_install_seconds=round(helm_seconds, 1),
           image=image, node=NODE_NAME, wall_seconds=round(time.time() - began, 1), runs=runs, cold_starts=colds,
           operator_memory={**summary, "phases": [(round(a - began, 2), round(b - began, 2), label)
                                                  for a, b, label in memory.phases],
                            "kubelet_samples": [(round(t - began, 1), v) for t, v in sorted(memory.kubelet.items())]})
    png = draw(RESULTS_DIR / "real_pods.png", runs, memory, colds)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
