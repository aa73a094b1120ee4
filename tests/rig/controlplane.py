"""The local Kubernetes cluster for tests and `make dev-cluster`.

Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler; one real
node (node.py: containerd, runc, CNI, kubelet, kube-proxy, CoreDNS) where pods
run real containers, with a default StorageClass whose claims the local-path
provisioner binds to directories of that node (storage.py); and kwok, whose fake node takes the pods of namespaces
that ask for it (node.fake_node_namespace) so that scale tests can schedule
thousands — all built from Go modules by ../controlplane/build.sh and cached
under ~/.cache/agentnet.

A supervisor process (`python -m rig.controlplane serve`) owns the component
processes. They die with it (PR_SET_PDEATHSIG), and it stops them when it is
told to, or when the process it watches (the test run) is gone — so nothing is
left behind even when a test run is killed.

    python -m rig.controlplane up   [--state-dir DIR]   # prints `export KUBECONFIG=...`
    python -m rig.controlplane down [--state-dir DIR]
    python -m rig.controlplane load-image [--state-dir DIR]   # the runtime image, again (after `make image`)
"""

import argparse
import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rig import images, pki, storage
from rig.node import (APISERVER_KUBELET_BINDING, APISERVER_KUBELET_CLIENT, FAKE_NODE, NODE_KIND_LABEL, NODE_NAME,
                      REAL_NODE_SELECTOR, Node, containerd_socket, coredns_manifests, import_image)

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "controlplane" / "build.sh"
DEFAULT_STATE_DIR = Path.home() / ".cache" / "agentnet" / "dev-cluster"
SERVICE_CIDR, SERVICE_IP = "10.96.0.0/16", "10.96.0.1"  # virtual: nothing is ever sent there
POD_CIDR = "10.244.0.0/16"  # fake pod IPs kwok writes into pod status
FAKE_NODE_NAME = "kwok-node-0"
# file stem -> (user, group) of each client certificate
IDENTITIES = {
    "admin": ("agentnet-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),  # the Node authorizer's identity
    "kube-proxy": ("system:kube-proxy", None),  # bound to system:node-proxier by default
    "apiserver-kubelet-client": (APISERVER_KUBELET_CLIENT, None),
}
# Pods go to the real node unless their namespace names the fake one.
ADMISSION_CONFIG = f"""apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodNodeSelector
  configuration:
    podNodeSelectorPluginConfig:
      clusterDefaultNodeSelector: "{REAL_NODE_SELECTOR}"
"""
# Records every write (not reads) so tests can count what a reconcile changed.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
"""
STOP_GRACE_SECONDS = 10
# The controller-manager's and scheduler's own API rate limits (defaults 20 and 50
# requests/s) would otherwise dominate any test that creates hundreds of pods: the
# rig should measure the code under test, not these throttles.
CLIENT_RATE = ["--kube-api-qps=500", "--kube-api-burst=1000"]


def build_binaries() -> Path:
    """Build (or reuse) the cached binaries and return their directory."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs this child when its parent exits."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_process(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL if it is still there after `grace` seconds; always reaped."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Paths:
    """Where everything of one control plane lives."""

    def __init__(self, state_dir: Path):
        self.root = state_dir
        self.pki = state_dir / "pki"
        self.logs = state_dir / "logs"
        self.etcd_data = state_dir / "etcd"
        self.kubeconfig = state_dir / "kubeconfig"  # admin
        self.audit_log = state_dir / "audit.log"
        self.ready = state_dir / "ready"  # exists while the control plane serves
        self.supervisor_pid = state_dir / "supervisor.pid"
        self.pids = state_dir / "pids.json"  # component processes, for tests and `down`


def kubeconfig_text(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "agentnet",
        "clusters": [{"name": "agentnet", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "agentnet", "context": {"cluster": "agentnet", "user": user}}],
    }, indent=2)


class ControlPlane:
    """Starts and stops the component processes. Not thread-safe; one per state dir."""

    def __init__(self, state_dir: Path, bin_dir: Path):
        self.paths = Paths(state_dir)
        self.bin = bin_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.server = ""
        self.node: Node | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float = 180) -> None:
        p = self.paths
        for d in (p.root, p.logs, p.etcd_data):
            d.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        # The node's network comes first: the API server listens where the node reaches it.
        self.node = Node(p.root, self.bin, self._spawn)
        self.node.open_network()
        host_ip, node_ip = self.node.slot.host_ip, self.node.slot.node_ip
        etcd_port, peer_port, api_port, kwok_port = (free_port() for _ in range(4))
        self.server = f"https://{host_ip}:{api_port}"
        pki.write_pki(p.pki, ["127.0.0.1", SERVICE_IP, host_ip], IDENTITIES,
                      servers={"kubelet-serving": (NODE_NAME, [node_ip])})
        for stem, (user, _) in IDENTITIES.items():
            (p.root / f"{stem}.kubeconfig").write_text(kubeconfig_text(
                self.server, p.pki / "ca.crt", p.pki / f"{stem}.crt", p.pki / f"{stem}.key", user))
        (p.root / "audit-policy.yaml").write_text(AUDIT_POLICY)
        (p.root / "admission.yaml").write_text(ADMISSION_CONFIG)
        # The node's images are built (or found in the cache) while etcd and the API server start.
        image_builds = ThreadPoolExecutor(max_workers=1)
        node_images = image_builds.submit(lambda: [images.pause(), images.coredns(self.bin / "coredns"),
                                                   images.local_path_provisioner(), images.busybox(),
                                                   images.runtime()])

        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn("etcd", [
            str(self.bin / "etcd"), "--name=default", f"--data-dir={p.etcd_data}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        self._wait(deadline, "etcd", lambda: self._http_ok(f"{etcd_url}/health"))

        self._spawn("kube-apiserver", [
            str(self.bin / "kube-apiserver"), f"--etcd-servers={etcd_url}",
            f"--bind-address={host_ip}", f"--secure-port={api_port}",
            # The `kubernetes` Service's endpoint: what in-cluster clients (the operator's pod) reach.
            f"--advertise-address={host_ip}", "--endpoint-reconciler-type=lease",
            f"--tls-cert-file={p.pki / 'apiserver.crt'}", f"--tls-private-key-file={p.pki / 'apiserver.key'}",
            f"--client-ca-file={p.pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={p.pki / 'sa.pub'}",
            f"--service-account-signing-key-file={p.pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=PodNodeSelector", f"--admission-control-config-file={p.root / 'admission.yaml'}",
            # logs, exec and port-forward: the API server calls the kubelet at its node IP and checks its certificate.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-certificate-authority={p.pki / 'ca.crt'}",
            f"--kubelet-client-certificate={p.pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p.pki / 'apiserver-kubelet-client.key'}",
            f"--audit-policy-file={p.root / 'audit-policy.yaml'}", f"--audit-log-path={p.audit_log}",
            "--audit-log-maxsize=100", "--profiling=false",
        ])
        self._wait(deadline, "kube-apiserver", lambda: self._api_ok("/readyz"))

        self._spawn("kube-controller-manager", [
            str(self.bin / "kube-controller-manager"),
            f"--kubeconfig={p.root / 'controller-manager.kubeconfig'}", "--secure-port=0",
            "--leader-elect=false", f"--service-account-private-key-file={p.pki / 'sa.key'}",
            f"--root-ca-file={p.pki / 'ca.crt'}", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--use-service-account-credentials=true",  # one identity per controller, as in kubeadm
            *CLIENT_RATE,
        ])
        self._spawn("kube-scheduler", [
            str(self.bin / "kube-scheduler"),
            f"--kubeconfig={p.root / 'scheduler.kubeconfig'}", "--secure-port=0", "--leader-elect=false",
            *CLIENT_RATE,
        ])
        (p.root / "kwok-storage-stage.yaml").write_text(json.dumps(storage.FAKE_NODE_HELPER_STAGE))
        self._spawn("kwok", [
            str(self.bin / "kwok"),
            f"--kubeconfig={p.root / 'kwok.kubeconfig'}", f"--config={self.bin.parent / 'kwok-stages.yaml'}",
            f"--config={p.root / 'kwok-storage-stage.yaml'}",
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40", f"--server-address=127.0.0.1:{kwok_port}",
            f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1",
        ])
        self.kubectl("apply", "-f", "-", input=json.dumps(fake_node(FAKE_NODE_NAME)))

        pause, coredns, provisioner, helper, runtime = node_images.result()
        image_builds.shutdown()
        # Afresh: the builds wait their turn behind other worktrees' (one lock), which is no startup time.
        deadline = time.monotonic() + timeout
        self.node.start({"kubelet": p.root / "kubelet.kubeconfig", "kube-proxy": p.root / "kube-proxy.kubeconfig"},
                        p.pki, [pause, coredns, provisioner, helper, runtime], sandbox_image=pause.reference)
        # The images can wait long for other runs' builds (a lock): the readiness waits start now.
        deadline = time.monotonic() + timeout
        self.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [
                APISERVER_KUBELET_BINDING, *coredns_manifests(coredns.reference),
                *storage.manifests(provisioner.reference, helper.reference)]}))
        for node in (FAKE_NODE_NAME, NODE_NAME):
            self._wait(deadline, f"node {node} Ready", lambda: self._node_ready(node))
        # Pods need the namespace's default ServiceAccount, which a controller creates.
        self._wait(deadline, "default ServiceAccount",
                   lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"))
        self._wait(deadline, "CoreDNS", lambda: self._available("kube-system", "coredns"))
        self._wait(deadline, "the local-path provisioner", lambda: self._available(storage.NAMESPACE, storage.NAME))
        p.kubeconfig.write_text((p.root / "admin.kubeconfig").read_text())
        p.pids.write_text(json.dumps({name: proc.pid for name, proc in self.processes.items()}))

    def stop(self) -> None:
        """Stop in reverse start order, then whatever the node leaves (containers, shims)."""
        for proc in reversed(list(self.processes.values())):
            stop_process(proc)
        self.processes.clear()
        if self.node is not None:
            self.node.stop()
            self.node = None

    # -- helpers -------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.paths.root / 'admin.kubeconfig'}", *args],
            input=input, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _spawn(self, name: str, command: list[str], preexec=die_with_parent) -> subprocess.Popen:
        log = open(self.paths.logs / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=preexec)
        log.close()
        return self.processes[name]

    def _wait(self, deadline: float, what: str, check) -> None:
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}; "
                                       f"see {self.paths.logs / (name + '.log')}:\n{self._log_tail(name)}")
            if check():
                return
            time.sleep(0.2)
        raise TimeoutError(f"timed out waiting for {what}; logs in {self.paths.logs}")

    def _log_tail(self, name: str, lines: int = 20) -> str:
        text = (self.paths.logs / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    @staticmethod
    def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return response.status == 200
        except OSError:
            return False

    def _admin_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.paths.pki / "ca.crt"))
        context.load_cert_chain(self.paths.pki / "admin.crt", self.paths.pki / "admin.key")
        return context

    def _api_ok(self, path: str) -> bool:
        return self._http_ok(self.server + path, self._admin_tls())

    def _get(self, path: str) -> dict | None:
        try:
            with urllib.request.urlopen(self.server + path, timeout=2, context=self._admin_tls()) as response:
                return json.load(response)
        except OSError:
            return None

    def _node_ready(self, name: str) -> bool:
        node = self._get(f"/api/v1/nodes/{name}") or {}
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions", []))

    def _available(self, namespace: str, deployment: str) -> bool:
        found = self._get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}") or {}
        return (found.get("status") or {}).get("availableReplicas", 0) >= 1


def fake_node(name: str) -> dict:
    """A Node that kwok manages: roomy enough for thousands of small pods (50 example
    networks are 1,050 pods), since nothing really runs on it."""
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "kwok", NODE_KIND_LABEL: FAKE_NODE},
        },
        "status": {"allocatable": {"cpu": "2000", "memory": "8Ti", "pods": "5000"},
                   "capacity": {"cpu": "2000", "memory": "8Ti", "pods": "5000"}},
    }


# -- supervisor ------------------------------------------------------------------
def serve(state_dir: Path, watch_pid: int | None) -> int:
    """Run the control plane until SIGTERM/SIGINT or until `watch_pid` exits."""
    paths = Paths(state_dir)
    stopping = False

    def request_stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.supervisor_pid.write_text(str(os.getpid()))
    plane = ControlPlane(state_dir, build_binaries())
    try:
        plane.start()
        paths.ready.write_text(plane.server)
        while not stopping and (watch_pid is None or pid_alive(watch_pid)):
            if any(proc.poll() is not None for proc in plane.processes.values()):
                print("a control plane process exited; stopping the rest", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        paths.ready.unlink(missing_ok=True)
        plane.stop()
        paths.supervisor_pid.unlink(missing_ok=True)


def running(state_dir: Path) -> bool:
    paths = Paths(state_dir)
    if not (paths.ready.exists() and paths.supervisor_pid.exists()):
        return False
    return pid_alive(int(paths.supervisor_pid.read_text()))


def up(state_dir: Path, watch_pid: int | None = None, timeout: float = 3600) -> Path:
    """Start a supervisor in the background (unless one serves already) and
    return the admin kubeconfig once the control plane is ready. The timeout
    covers a cold build of the binaries."""
    paths = Paths(state_dir)
    if running(state_dir):
        return paths.kubeconfig
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "rig.controlplane", "serve", f"--state-dir={state_dir}"]
    if watch_pid is not None:
        command.append(f"--watch-pid={watch_pid}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")]))}
    with open(paths.logs / "supervisor.log", "ab") as log:
        supervisor = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    deadline = time.monotonic() + timeout
    while not paths.ready.exists():
        if supervisor.poll() is not None:
            log_text = (paths.logs / "supervisor.log").read_text(errors="replace")
            raise RuntimeError(f"control plane failed to start:\n{log_text[-4000:]}")
        if time.monotonic() > deadline:
            supervisor.terminate()
            raise TimeoutError(f"control plane not ready after {timeout:.0f}s; logs in {paths.logs}")
        time.sleep(0.2)
    return paths.kubeconfig


def down(state_dir: Path, timeout: float = 60) -> None:
    """Stop the supervisor of `state_dir` (and so every component) and wait for it."""
    paths = Paths(state_dir)
    if not paths.supervisor_pid.exists():
        return
    pid = int(paths.supervisor_pid.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)  # its children die with it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rig.controlplane", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "serve", "load-image"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--watch-pid", type=int, default=None)
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    if args.action == "serve":
        return serve(state_dir, args.watch_pid)
    if args.action == "down":
        down(state_dir)
        print(f"control plane in {state_dir} stopped")
        return 0
    if args.action == "load-image":
        if not running(state_dir):
            print(f"no control plane runs in {state_dir}; its next start imports the image")
            return 0
        image = images.runtime()
        import_image(containerd_socket(state_dir), image.archive, image.reference)
        print(f"{image.reference} imported into the node of {state_dir}")
        return 0
    started = time.monotonic()
    kubeconfig = up(state_dir, args.watch_pid)
    print(f"# control plane ready in {time.monotonic() - started:.1f}s; stop it with `make dev-cluster-down`")
    print(f"export KUBECONFIG={kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
