"""The rig is real: a scheduler, controllers and kwok make pods Ready, the
garbage collector works, claims bind to directories of the real node, kubectl and
helm talk to it, NATS serves JetStream, and nothing is left running after teardown."""

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import nats
import pytest
from kubernetes import client

from agentnet_runtime import natsbin
from agentnet_runtime.natsbin import EmbeddedNats
from rig import EXISTING_KUBECONFIG, controlplane, health, images, node, storage, wait_for

VERSIONS = dict(line.split("=", 1) for line in
                (Path(__file__).parent / "controlplane" / "versions.env").read_text().splitlines()
                if line and not line.startswith("#"))


@pytest.mark.cluster
def test_deployment_reaches_three_ready_replicas(k8s, namespace):
    apps = client.AppsV1Api(k8s)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=3, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")])))))

    wait_for(lambda: apps.read_namespaced_deployment_status("web", namespace).status.ready_replicas == 3,
             60, "3 ready replicas")
    # The Deployment controller made a ReplicaSet, the scheduler bound its pods to a node.
    pods = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 3
    assert all(pod.spec.node_name and pod.status.phase == "Running" for pod in pods)
    assert all(pod.metadata.owner_references[0].kind == "ReplicaSet" for pod in pods)


@pytest.mark.cluster
def test_deleting_an_owner_garbage_collects_its_dependent(k8s, namespace):
    core = client.CoreV1Api(k8s)
    owner = core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="owner")))
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(
        name="dependent", owner_references=[client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)])))

    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        return "dependent" not in {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}

    wait_for(dependent_gone, 60, "the garbage collector to delete the dependent")


def claim_and_writer(namespace: str, image: str) -> tuple[client.V1PersistentVolumeClaim, client.V1Pod]:
    """A claim of the default class and a pod that writes a file into it as an unprivileged user."""
    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="claim"),
        spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"],
                                                resources=client.V1VolumeResourceRequirements(requests={"storage": "8Mi"})))
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="writer"), spec=client.V1PodSpec(
        security_context=client.V1PodSecurityContext(run_as_user=65532, run_as_group=65532, run_as_non_root=True),
        containers=[client.V1Container(
            name="writer", image=image, image_pull_policy="Never",
            command=["sh", "-c", "mkdir /data/sub && echo written > /data/sub/file && sleep 3600"],
            volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")])],
        volumes=[client.V1Volume(name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
            claim_name="claim"))]))
    return claim, pod


@pytest.mark.cluster
@pytest.mark.skipif(bool(EXISTING_KUBECONFIG), reason="the local-path provisioner is the local rig's")
def test_a_claim_binds_to_a_directory_of_the_real_node_and_goes_with_it(k8s, kubeconfig):
    core = client.CoreV1Api(k8s)
    namespace = f"rig-storage-{os.getpid()}"  # no node selector: the rig's default, the real node
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        wait_for(lambda: core.list_namespaced_service_account(namespace).items, 30, "the default ServiceAccount")
        claim, pod = claim_and_writer(namespace, images.busybox().reference)
        core.create_namespaced_persistent_volume_claim(namespace, claim)
        core.create_namespaced_pod(namespace, pod)
        wait_for(lambda: core.read_namespaced_pod("writer", namespace).status.phase == "Running", 120, "the writer")
        bound = core.read_namespaced_persistent_volume_claim("claim", namespace)
        assert bound.status.phase == "Bound" and bound.spec.storage_class_name == storage.STORAGE_CLASS
        volume = core.read_persistent_volume(bound.spec.volume_name)
        assert volume.metadata.annotations["pv.kubernetes.io/provisioned-by"] == storage.PROVISIONER
        terms = volume.spec.node_affinity.required.node_selector_terms
        assert terms[0].match_expressions[0].values == [node.NODE_NAME]
        # The node's /var/lib is <state dir>/node/var-lib on the host: the volume is there, nowhere else.
        on_host = kubeconfig.parent / "node" / "var-lib" / Path(volume.spec.host_path.path).relative_to("/var/lib")
        assert volume.spec.host_path.path.startswith(storage.VOLUMES_DIR + "/")
        wait_for(lambda: (on_host / "sub" / "file").exists(), 30, "the pod's file on the node")
        assert (on_host / "sub" / "file").read_text() == "written\n"

        core.delete_namespaced_pod("writer", namespace, grace_period_seconds=0)
        core.delete_namespaced_persistent_volume_claim("claim", namespace)
        wait_for(lambda: not core.list_persistent_volume(field_selector=f"metadata.name={volume.metadata.name}").items,
                 120, "the released volume to be deleted")
        wait_for(lambda: not on_host.exists(), 30, "the volume's directory to be removed from the node")
    finally:
        core.delete_namespace(namespace)


@pytest.mark.cluster
def test_a_claim_of_a_pod_on_the_fake_node_binds_too(k8s, namespace):
    core = client.CoreV1Api(k8s)
    claim, pod = claim_and_writer(namespace, "busybox")
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    core.create_namespaced_pod(namespace, pod)
    wait_for(lambda: core.read_namespaced_pod("writer", namespace).status.phase == "Running", 120, "the writer")
    assert core.read_namespaced_persistent_volume_claim("claim", namespace).status.phase == "Bound"
    assert core.read_namespaced_pod("writer", namespace).spec.node_name == controlplane.FAKE_NODE_NAME


@pytest.mark.cluster
def test_the_health_gate_names_a_deployment_without_pods_and_a_service_without_endpoints(k8s, namespace):
    """What a test on pods waits for (rig/health.py), shown on objects of the test's own: the rig's own
    system pods are not to be taken away from the other workers' tests. The gate fails with the report
    while the Deployment has no pod, and lets the test go once kwok runs one."""
    assert health.problems(k8s) == []  # the gate let this test start
    apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)
    labels = {"app": "idle"}
    apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "idle"},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "none"}]}}}})
    core.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "idle"},
        "spec": {"selector": labels, "ports": [{"port": 80}]}})
    found = health.problems(k8s, deployments=[(namespace, "idle"), (namespace, "absent")],
                            services=[(namespace, "idle")])
    assert found[0] == f"Deployment {namespace}/idle has no available pod"
    assert found[1].startswith(f"Deployment {namespace}/absent: 404")
    assert found[2] == f"Service {namespace}/idle has no ready endpoint"
    assert len(found) == 3

    gate = health.Gate(deployments=[(namespace, "idle")], services=[])
    with pytest.raises(AssertionError) as unwell:
        gate.wait(k8s, logs=None, timeout=2)
    said = str(unwell.value)
    assert "stayed unwell for 2s" in said and f"problems: Deployment {namespace}/idle has no available pod" in said
    assert "--- kube-system/coredns-" in said  # the report follows: the system pods' states and logs

    apps.patch_namespaced_deployment_scale("idle", namespace, {"spec": {"replicas": 1}})  # kwok runs it
    gate.wait(k8s, logs=None, timeout=120)  # returns once the pod is available


@pytest.mark.cluster
def test_kubectl_talks_to_the_cluster(kubectl, namespace):
    version = json.loads(kubectl("version", "-o", "json"))
    assert version["clientVersion"]["gitVersion"] == VERSIONS["KUBERNETES_VERSION"]
    if not EXISTING_KUBECONFIG:
        assert version["serverVersion"]["gitVersion"] == VERSIONS["KUBERNETES_VERSION"]
    kubectl("-n", namespace, "create", "configmap", "hello", "--from-literal=greeting=hi")
    assert kubectl("-n", namespace, "get", "configmap", "hello", "-o", "jsonpath={.data.greeting}") == "hi"


@pytest.mark.cluster
def test_helm_installs_and_uninstalls_a_chart(helm, kubectl, namespace, tmp_path):
    assert VERSIONS["HELM_VERSION"] in helm("version", "--short")
    chart = tmp_path / "demo"
    helm("create", str(chart))
    helm("install", "demo", str(chart), "-n", namespace, "--wait", "--timeout", "90s")
    releases = json.loads(helm("list", "-n", namespace, "-o", "json"))
    assert [(r["name"], r["status"]) for r in releases] == [("demo", "deployed")]
    assert kubectl("-n", namespace, "get", "deployment", "demo", "-o", "jsonpath={.status.readyReplicas}") == "1"
    helm("uninstall", "demo", "-n", namespace, "--wait")
    assert kubectl("-n", namespace, "get", "deployments", "-o", "name") == ""


def test_binaries_carry_their_release_versions(rig_bin):
    def version_of(binary: str, *args: str) -> str:
        return subprocess.run([str(rig_bin / binary), *args], capture_output=True, text=True).stdout

    assert version_of("kube-apiserver", "--version").strip() == f"Kubernetes {VERSIONS['KUBERNETES_VERSION']}"
    assert f"etcd Version: {VERSIONS['ETCD_VERSION'].lstrip('v')}" in version_of("etcd", "--version")
    assert VERSIONS["KWOK_VERSION"] in version_of("kwok", "--version")


async def test_nats_pubsub_and_jetstream(nats_server):
    nc = await nats.connect(nats_server.url)
    try:
        subscription = await nc.subscribe("agent.0.heartbeat")
        await nc.publish("agent.0.heartbeat", b"beat")
        assert (await subscription.next_msg(timeout=2)).data == b"beat"

        js = nc.jetstream()
        await js.add_stream(name="WORK", subjects=["work.>"], retention="workqueue")
        for i in range(3):
            await js.publish("work.red", str(i).encode())
        consumer = await js.pull_subscribe("work.red", durable="red")
        messages = await consumer.fetch(3, timeout=2)
        assert [m.data for m in messages] == [b"0", b"1", b"2"]
        for m in messages:
            await m.ack()
    finally:
        await nc.close()


def host_leftovers(slot: node.Slot) -> list[str]:
    """What a rig's node in `slot` could leave on the host, if it is still there."""
    found = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{slot.cgroup}")]
    if node.link_exists(slot.host_link):
        found.append(f"link {slot.host_link}")
    if slot.pod_cidr.split("/")[0] in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout:
        found.append(f"route to {slot.pod_cidr}")
    return found


@pytest.mark.parametrize("how", ["down", "owner killed", "supervisor killed"])
def test_teardown_leaves_nothing_behind(rig_bin, tmp_path, how):
    owner = subprocess.Popen(["sleep", "600"])  # stands in for a test run that gets killed
    state_dir = tmp_path / "cp"
    try:
        controlplane.up(state_dir, watch_pid=owner.pid)
        supervisor = int((state_dir / controlplane.Paths(state_dir).supervisor_pid.name).read_text())
        pids = [supervisor, *json.loads((state_dir / "pids.json").read_text()).values()]
        # etcd, the API server, controller-manager, scheduler, kwok; the node's namespaces, containerd, kubelet, kube-proxy
        assert len(pids) == 10 and all(controlplane.pid_alive(pid) for pid in pids)
        slot = node.Slot(int((state_dir / "node" / "slot").read_text()))
        containers = node.cgroup_pids(slot.cgroup) - set(pids)  # CoreDNS, its pod's pause and their shim
        assert len(containers) >= 3 and host_leftovers(slot)
        assert node.KernelTunables().saved.exists()  # the host's values, to put back

        if how == "down":
            controlplane.down(state_dir)
        elif how == "owner killed":
            owner.send_signal(signal.SIGKILL)
        else:  # nothing cleans up: the next node in the slot does (node.reap, once it holds the slot's lock)
            os.kill(supervisor, signal.SIGKILL)
        wait_for(lambda: not any(controlplane.pid_alive(pid) for pid in pids), 60,
                 "every control plane process to exit")
        if how == "supervisor killed":
            assert host_leftovers(slot)  # containers and shims outlive the supervisor by design
            node.reap(slot)
        wait_for(lambda: not host_leftovers(slot), 30, "the node's cgroups, link and route to go")
        assert not any(controlplane.pid_alive(pid) for pid in containers)
    finally:
        owner.kill()
        owner.wait()


def test_the_last_node_to_stop_puts_the_kernel_tunables_back(tmp_path):
    """The kubelet changes host-wide sysctls; the rig saves them before the first node and the last
    node restores them. One real sysctl (kernel.panic, harmless to change for a moment) and slot
    locks in a directory of this test's, so the rig's own nodes are not involved."""
    key = "kernel/panic"
    original = node.read_sysctl(key)
    tunables = node.KernelTunables(tmp_path, keys=(key,))
    first, second = node.SlotLock(tmp_path), node.SlotLock(tmp_path)
    try:
        tunables.save()
        node.write_sysctl(key, str(int(original) + 7))  # what a kubelet does at start
        tunables.save()  # a second node: the host's value stays the one saved
        first.release()
        tunables.restore_unless_in_use()
        assert node.read_sysctl(key) == str(int(original) + 7)  # the second node still runs
        second.release()
        tunables.restore_unless_in_use()
        assert node.read_sysctl(key) == original and not tunables.saved.exists()
    finally:
        node.write_sysctl(key, original)


def test_stopped_nats_server_leaves_no_process(tmp_path):
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    pid = server.process.pid
    server.stop()
    assert not controlplane.pid_alive(pid)


def test_a_nats_server_whose_chosen_port_was_taken_meanwhile_chooses_another(tmp_path, monkeypatch):
    # The race is made, not mocked: a real socket listens on the first port chosen.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        chosen = iter([taken, natsbin.free_port()])
        monkeypatch.setattr(natsbin, "free_port", lambda host="127.0.0.1": next(chosen))
        with EmbeddedNats(tmp_path / "chosen") as server:
            assert server.port != taken
        # A port the caller named is theirs: it is not silently changed.
        with pytest.raises(natsbin.PortTaken, match="exited"):
            EmbeddedNats(tmp_path / "named", port=taken).start()


def test_build_cache_is_keyed_by_the_pinned_versions(tmp_path):
    script_dir = Path(__file__).parent / "controlplane"
    changed = tmp_path / "controlplane"
    changed.mkdir()
    (changed / "build.sh").write_text((script_dir / "build.sh").read_text())
    versions = (script_dir / "versions.env").read_text()

    def key(directory: Path) -> str:
        return subprocess.run(["bash", str(directory / "build.sh"), "--key"], check=True,
                              capture_output=True, text=True).stdout.strip()

    (changed / "versions.env").write_text(versions)
    assert key(changed) == key(script_dir)  # same versions: the cached build is reused
    (changed / "versions.env").write_text(versions.replace(VERSIONS["KWOK_VERSION"], "v0.7.0"))
    assert key(changed) != key(script_dir)  # any change: a new build
