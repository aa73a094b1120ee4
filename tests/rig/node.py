"""The rig's real node: containerd with runc, the CNI bridge, kubelet, kube-proxy
and CoreDNS, so that pods run real containers next to kwok's fake ones.

The node lives in network and mount namespaces of its own, inside one cgroup
subtree of its own, so that stopping it leaves nothing on the host:

- network: a veth pair joins the host (`anet-node<slot>`, 10.231.<slot>.1) to the
  node (`eth0`, 10.231.<slot>.2). The API server listens on the host end; pods
  live on the node's `cni0` bridge (10.<232+slot>.0.0/16) and the host routes
  that range to the node, so the API server reaches pods (proxy, port-forward).
  The bridge, kube-proxy's nftables tables, the CNI plugins' masquerade rules and
  `ip_forward` all belong to the node's namespace and vanish with it.
- mount: the node sees a tmpfs on /run and the state dir's folders on /var/lib
  and /var/log, so containerd, runc, CNI and the kubelet keep their usual paths
  (/run/containerd, /var/lib/kubelet, /run/netns, /var/log/pods ...) while
  everything they write stays in the state dir or in memory.
- cgroups: every node process and every container runs under
  /agentnet-node-<slot> (kubelet's cgroupRoot); stopping freezes and kills that
  subtree and removes it, shims and containers included (they outlive
  containerd by design).

The kubelet sets six kernel tunables on start (vm.overcommit_memory, kernel.panic,
...; they are host-wide): the first node on the host records their values and
the last one to stop puts them back (KernelTunables).

A slot (0..SLOTS-1) numbers a node on this host; its lock file under
~/.cache/agentnet/rig-slots is held while the node runs, so a dev cluster and a
test run can have a node each, and a slot found unlocked with leftovers (a
supervisor killed with SIGKILL) is cleaned before it is reused.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import ipaddress
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SLOTS = 8
NODE_NAME = "agentnet-node"
CLUSTER_DOMAIN = "cluster.local"
CLUSTER_DNS_IP = "10.96.0.10"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
CGROUP_MOUNTS = Path("/sys/fs/cgroup")
SLOT_DIR = Path.home() / ".cache" / "agentnet" / "rig-slots"
# Labels that tell the two nodes apart; the API server's PodNodeSelector plugin
# sends pods to the real node unless their namespace asks for the fake one.
NODE_KIND_LABEL = "rig.agentnet.dev/node"
REAL_NODE, FAKE_NODE = "real", "fake"
NAMESPACE_NODE_SELECTOR = "scheduler.alpha.kubernetes.io/node-selector"
REAL_NODE_SELECTOR = f"{NODE_KIND_LABEL}={REAL_NODE}"
FAKE_NODE_SELECTOR = f"{NODE_KIND_LABEL}={FAKE_NODE}"
# What the kubelet writes at start (pkg/kubelet/cm setupKernelTunables).
KUBELET_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
                   "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def fake_node_namespace(name: str) -> dict:
    """A Namespace whose pods go to kwok's fake node (the rig's default is the real one)."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "annotations": {NAMESPACE_NODE_SELECTOR: FAKE_NODE_SELECTOR}}}


# -- addresses --------------------------------------------------------------------------
@dataclass(frozen=True)
class Slot:
    """Addresses and names of the node in slot `number`."""

    number: int

    @property
    def host_link(self) -> str:  # at most 15 characters (IFNAMSIZ)
        return f"anet-node{self.number}"

    @property
    def host_ip(self) -> str:
        return f"10.231.{self.number}.1"

    @property
    def node_ip(self) -> str:
        return f"10.231.{self.number}.2"

    @property
    def pod_cidr(self) -> str:
        return f"10.{232 + self.number}.0.0/16"

    @property
    def cgroup(self) -> str:
        return f"agentnet-node-{self.number}"


class SlotLock:
    """Holds the lock file of a free slot for as long as the node lives."""

    def __init__(self, directory: Path = SLOT_DIR):
        directory.mkdir(parents=True, exist_ok=True)
        for number in range(SLOTS):
            handle = _try_lock(directory / f"{number}.lock")
            if handle is not None:
                self.slot, self._handle = Slot(number), handle
                return
        raise RuntimeError(f"all {SLOTS} rig node slots are in use (locks in {directory})")

    def release(self) -> None:
        self._handle.close()


def _try_lock(path: Path) -> IO | None:
    handle = open(path, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle
    except BlockingIOError:
        handle.close()
        return None


def slots_in_use(directory: Path = SLOT_DIR) -> list[int]:
    """Slots whose node runs now (its supervisor holds the lock)."""
    used = []
    for number in range(SLOTS):
        handle = _try_lock(directory / f"{number}.lock")
        if handle is None:
            used.append(number)
        else:
            handle.close()
    return used


# -- kernel tunables the kubelet changes ----------------------------------------------------
class KernelTunables:
    """The host's values of what the kubelet changes, saved before the first node on
    the host starts and put back when the last one stops. "Last" is judged by the slot
    locks, so a node whose supervisor was killed does not keep them changed forever:
    the next node to stop restores them."""

    def __init__(self, directory: Path = SLOT_DIR, keys: tuple[str, ...] = KUBELET_SYSCTLS):
        self.directory, self.keys = directory, keys
        self.saved = directory / "sysctls.json"

    def _locked(self) -> IO:
        handle = open(self.directory / "sysctls.lock", "w")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def save(self) -> None:
        with self._locked():
            if not self.saved.exists():  # else an earlier node saved the host's own values
                self.saved.write_text(json.dumps({key: read_sysctl(key) for key in self.keys}))

    def restore_unless_in_use(self) -> None:
        """After this node released its slot: restore if no other node runs."""
        with self._locked():
            if self.saved.exists() and not slots_in_use(self.directory):
                for key, value in json.loads(self.saved.read_text()).items():
                    write_sysctl(key, value)
                self.saved.unlink()


def read_sysctl(key: str) -> str:
    return Path("/proc/sys", key).read_text().strip()


def write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", key).write_text(value)


# -- cgroups -----------------------------------------------------------------------------------
def cgroup_hierarchies() -> list[Path]:
    """Every cgroup v1 hierarchy (and the v2 one beside them) mounted under /sys/fs/cgroup."""
    return sorted(p for p in CGROUP_MOUNTS.iterdir() if (p / "cgroup.procs").exists())


def create_cgroup(name: str) -> None:
    """/<name> and /<name>/system in every hierarchy, cpuset initialised from its parent
    (a v1 cpuset cgroup starts with no CPUs and refuses tasks)."""
    for hierarchy in cgroup_hierarchies():
        for path in (hierarchy / name, hierarchy / name / "system"):
            path.mkdir(exist_ok=True)
            if (path / "cpuset.cpus").exists():
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (path / knob).read_text().strip():
                        (path / knob).write_text((path.parent / knob).read_text())


def cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        for procs in (hierarchy / name).rglob("cgroup.procs") if (hierarchy / name).exists() else ():
            try:
                pids.update(int(line) for line in procs.read_text().split())
            except (FileNotFoundError, OSError):
                pass
    return pids


def remove_cgroup(name: str, timeout: float = 30) -> None:
    """Kill every process under /<name> (frozen first, so nothing forks meanwhile) and
    remove the subtree from every hierarchy."""
    freezer = CGROUP_MOUNTS / "freezer" / name / "freezer.state"
    deadline = time.monotonic() + timeout
    while True:
        pids = cgroup_pids(name)
        if not pids:
            break
        if freezer.exists():
            freezer.write_text("FROZEN")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if freezer.exists():
            freezer.write_text("THAWED")
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {sorted(pids)} in cgroup /{name} would not die")
        time.sleep(0.1)
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / name
        if not root.exists():
            continue
        for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [root]:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:  # EBUSY while the last tasks are being reaped
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


# -- entering the node ------------------------------------------------------------------------
def _setns(pid: int, nstype: int, kind: str) -> None:
    fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)
    try:
        if _libc.setns(fd, nstype) != 0:
            raise OSError(ctypes.get_errno(), f"setns {kind}")
    finally:
        os.close(fd)


def enter_node(holder_pid: int | None, cgroup: str):
    """preexec_fn: die with the parent, join the node's cgroup and (once they exist) its
    network and mount namespaces."""
    def preexec() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        for hierarchy in cgroup_hierarchies():
            (hierarchy / cgroup / "system" / "cgroup.procs").write_text(str(os.getpid()))
        if holder_pid is not None:
            _setns(holder_pid, CLONE_NEWNET, "net")
            _setns(holder_pid, CLONE_NEWNS, "mnt")
            os.chdir("/")
    return preexec


# The first process of the node: makes its mounts, then holds the namespaces.
# unshare(1) has already made every inherited mount private, so nothing the node
# mounts reaches the host; within the node, mounts are shared again (the kubelet
# and containerd expect that of a node's root).
HOLDER_SCRIPT = r"""
set -eu
node_dir=$1
mount --make-rshared /
mount -t tmpfs -o mode=0755 agentnet-node-run /run
mkdir -p /run/netns "$node_dir/var-lib" "$node_dir/var-log"
mount --bind "$node_dir/var-lib" /var/lib
mount --bind "$node_dir/var-log" /var/log
ip link set lo up
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
touch "$node_dir/namespaces-ready"
exec sleep infinity
"""


def containerd_socket(state_dir: Path) -> Path:
    """Where the node of the rig in `state_dir` serves containerd (reachable from the host:
    a Unix socket ignores network namespaces)."""
    return state_dir / "node" / "containerd.sock"


def ctr(socket: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", f"--address={socket}", *args], capture_output=True, text=True)


def import_image(socket: Path, archive: Path, reference: str) -> None:
    """Load an image archive into a node's containerd, where the kubelet finds it."""
    result = ctr(socket, "--namespace=k8s.io", "images", "import", str(archive))
    if result.returncode != 0 or ctr(socket, "--namespace=k8s.io", "images", "check",
                                     f"name=={reference}").returncode != 0:
        raise RuntimeError(f"importing {archive} as {reference} failed: {result.stderr.strip()}")


def reap_orphans() -> None:
    """Collect the exit status of every child that has exited (adopted shims included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def reap(slot: Slot) -> None:
    """Remove what a node in `slot` left behind (its supervisor was killed)."""
    if any((h / slot.cgroup).exists() for h in cgroup_hierarchies()):
        remove_cgroup(slot.cgroup)
    if link_exists(slot.host_link):
        run("ip", "link", "delete", slot.host_link)


# -- configuration files ------------------------------------------------------------------------
def containerd_config(node_dir: Path, sandbox_image: str) -> str:
    return f"""version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{containerd_socket(node_dir.parent)}"
[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{node_dir / 'cni'}"
"""


def cni_config(pod_cidr: str) -> dict:
    return {
        "cniVersion": "1.0.0", "name": "agentnet",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "isDefaultGateway": True,
             "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(slot: Slot, node_dir: Path, pki: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this host has cgroup v1 (kubelet >= 1.35 refuses it otherwise)
        "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{slot.cgroup}",
        "containerRuntimeEndpoint": f"unix://{containerd_socket(node_dir.parent)}",
        "address": slot.node_ip, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"), "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "clusterDomain": CLUSTER_DOMAIN, "clusterDNS": [CLUSTER_DNS_IP], "resolvConf": "",
        "failSwapOn": False, "serializeImagePulls": False,
        # The rig's disk is shared with everything else on the machine: evict only when it is truly full,
        # and never garbage-collect the images it imported (nothing could pull them again).
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100,
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(slot: Slot, kubeconfig: Path) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "nftables",  # its own tables, in the node's network namespace
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME, "clusterCIDR": slot.pod_cidr,
        "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
        # 0 leaves the kernel's conntrack settings alone (the table size is host-wide).
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


COREDNS_PORT = 1053  # unprivileged inside the pod; the kube-dns Service maps 53 to it


def coredns_manifests(image: str) -> list[dict]:
    """CoreDNS as kubeadm deploys it, trimmed: cluster names only (the rig has no upstream DNS)."""
    meta = {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}
    corefile = (f".:{COREDNS_PORT} {{\n    errors\n    health :8080\n    ready :8181\n"
                f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n        pods insecure\n"
                f"        fallthrough in-addr.arpa ip6.arpa\n    }}\n    cache 30\n    loop\n    reload\n}}\n")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", **meta},
         "data": {"Corefile": corefile}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", **meta},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                  "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}}, "spec": {
                      "serviceAccountName": "coredns", "dnsPolicy": "Default",
                      "priorityClassName": "system-cluster-critical",
                      "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                          "seccompProfile": {"type": "RuntimeDefault"}},
                      "containers": [{
                          "name": "coredns", "image": image, "imagePullPolicy": "Never",
                          "args": ["-conf", "/etc/coredns/Corefile"],
                          "ports": [{"name": "dns", "containerPort": COREDNS_PORT, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": COREDNS_PORT, "protocol": "TCP"}],
                          # kubeadm's probes and requests: a busy node answers late, and a BestEffort pod
                          # (cpu.shares 2) is the last to run on one
                          "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                          "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10,
                                            "initialDelaySeconds": 60, "timeoutSeconds": 5, "failureThreshold": 5},
                          "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}},
                          "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                              "capabilities": {"drop": ["ALL"]}},
                          "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}]}],
                      "volumes": [{"name": "config", "configMap": {"name": "coredns"}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", **meta},
         "spec": {"clusterIP": CLUSTER_DNS_IP, "selector": {"k8s-app": "kube-dns"},
                  "ports": [{"name": "dns", "port": 53, "targetPort": COREDNS_PORT, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "targetPort": COREDNS_PORT, "protocol": "TCP"}]}},
    ]


# The API server's identity towards kubelets (logs, exec, port-forward), as kubeadm binds it.
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"
APISERVER_KUBELET_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
    "metadata": {"name": APISERVER_KUBELET_CLIENT},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": APISERVER_KUBELET_CLIENT}],
}


# -- the node's processes ---------------------------------------------------------------------------
class Node:
    """One real node: `open_network()` before the API server starts (it listens on the
    host end of the link), `start()` once it serves, `stop()` at the end."""

    def __init__(self, state_dir: Path, bin_dir: Path, spawn):
        self.dir = state_dir / "node"
        self.bin = bin_dir
        self._spawn = spawn  # ControlPlane._spawn(name, command, preexec): its processes, its logs
        self._lock = SlotLock()
        self.slot = self._lock.slot
        self.holder: subprocess.Popen | None = None
        reap(self.slot)

    @property
    def socket(self) -> Path:
        return containerd_socket(self.dir.parent)

    def open_network(self, timeout: float = 30) -> None:
        s = self.slot
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "slot").write_text(str(s.number))  # for `down` and the tests
        # containerd's shims detach from it; as a subreaper this process adopts them
        # (not init), so stop() reaps them and no zombie outlives the node.
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
        (self.dir / "namespaces-ready").unlink(missing_ok=True)
        create_cgroup(s.cgroup)
        self.holder = self._spawn("node-namespaces", [
            "unshare", "--net", "--mount", "--propagation", "private",
            "sh", "-c", HOLDER_SCRIPT, "sh", str(self.dir)], enter_node(None, s.cgroup))
        deadline = time.monotonic() + timeout
        while not (self.dir / "namespaces-ready").exists():
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node's namespaces did not come up; see {self.dir}/../logs/node-namespaces.log")
            time.sleep(0.02)
        pid = str(self.holder.pid)
        run("ip", "link", "add", s.host_link, "type", "veth", "peer", "name", "eth0", "netns", pid)
        run("ip", "addr", "add", f"{s.host_ip}/30", "dev", s.host_link)
        run("ip", "link", "set", s.host_link, "up")
        inside = ("nsenter", "--target", pid, "--net")
        run(*inside, "ip", "addr", "add", f"{s.node_ip}/30", "dev", "eth0")
        run(*inside, "ip", "link", "set", "eth0", "up")
        run(*inside, "ip", "route", "add", "default", "via", s.host_ip)
        run("ip", "route", "add", s.pod_cidr, "via", s.node_ip)  # gone with the link

    def start(self, kubeconfigs: dict[str, Path], pki: Path, images: list[tuple[str, Path]],
              sandbox_image: str, timeout: float = 60) -> None:
        """containerd (with `images` imported), then kubelet and kube-proxy."""
        assert self.holder is not None, "open_network() first"
        s, d = self.slot, self.dir
        (d / "cni").mkdir(exist_ok=True)
        (d / "cni" / "10-agentnet.conflist").write_text(json.dumps(cni_config(s.pod_cidr), indent=2))
        (d / "containerd.toml").write_text(containerd_config(d, sandbox_image))
        (d / "kubelet.yaml").write_text(json.dumps(kubelet_config(s, d, pki), indent=2))
        (d / "kube-proxy.yaml").write_text(json.dumps(kube_proxy_config(s, kubeconfigs["kube-proxy"]), indent=2))
        inside = enter_node(self.holder.pid, s.cgroup)

        self._spawn("containerd", ["containerd", f"--config={d / 'containerd.toml'}", "--log-level=warn"], inside)
        deadline = time.monotonic() + timeout
        while not self._ctr_ok("version"):
            if time.monotonic() > deadline:
                raise TimeoutError("containerd did not answer")
            time.sleep(0.05)
        for reference, archive in images:
            self.import_image(archive, reference)

        KernelTunables().save()
        self._spawn("kubelet", [str(self.bin / "kubelet"), f"--config={d / 'kubelet.yaml'}",
                                f"--kubeconfig={kubeconfigs['kubelet']}", f"--hostname-override={NODE_NAME}",
                                f"--node-ip={s.node_ip}", f"--node-labels={REAL_NODE_SELECTOR}"], inside)
        self._spawn("kube-proxy", [str(self.bin / "kube-proxy"), f"--config={d / 'kube-proxy.yaml'}"], inside)

    def _ctr_ok(self, *args: str) -> bool:
        return ctr(self.socket, *args).returncode == 0

    def import_image(self, archive: Path, reference: str) -> None:
        import_image(self.socket, archive, reference)

    def stop(self) -> None:
        """Kill everything in the node's cgroup (containers and shims outlive containerd and
        the kubelet by design), remove the cgroups and the link, put the tunables back."""
        try:
            remove_cgroup(self.slot.cgroup)
            reap_orphans()
            if link_exists(self.slot.host_link):
                run("ip", "link", "delete", self.slot.host_link)
        finally:
            self._lock.release()
            KernelTunables().restore_unless_in_use()
