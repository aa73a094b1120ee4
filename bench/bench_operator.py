"""Operator benchmarks against the local control plane (a fresh one, started here).

- one network: from its pods being Ready to the network being Ready (target <= 3 s)
- 50 networks applied at once: until all are Ready (target <= 60 s), the operator's
  peak memory (target <= 150 MB) and API requests per reconcile.

The baseline measured in the same run is the single network's apply-to-Ready time.
Run: .venv/bin/python -m bench.bench_operator [--networks 50]
"""

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from kubernetes import client, config

from bench.common import entry, report

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from rig import controlplane  # noqa: E402  (the test rig lives under tests/)
from rig.node import fake_node_namespace  # noqa: E402
from rig.operator import RunningOperator  # noqa: E402

from agentnet_operator import names  # noqa: E402

POLL_SECONDS = 0.05
EXAMPLE = yaml.safe_load((REPO / "examples" / "network.yaml").read_text())


def is_ready(body: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in body.get("status", {}).get("conditions", []))


def pods_ready(core: client.CoreV1Api, namespace: str, expected: int) -> bool:
    pods = core.list_namespaced_pod(namespace).items
    return len(pods) == expected and all(
        any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []) for pod in pods)


def create_namespace(core: client.CoreV1Api, name: str) -> None:
    core.create_namespace(fake_node_namespace(name))  # 1,050 pods: kwok's node, not the real one
    deadline = time.monotonic() + 30
    while not core.list_namespaced_service_account(name).items and time.monotonic() < deadline:
        time.sleep(0.1)


def one_network(api: client.ApiClient) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    create_namespace(core, "bench-one")
    expected_pods = EXAMPLE["spec"]["agents"] + 11 + 1  # agents, components, NATS
    started = time.monotonic()
    custom.create_namespaced_custom_object(names.GROUP, names.VERSION, "bench-one", names.PLURAL, EXAMPLE)
    pods_at = network_at = None
    while network_at is None and time.monotonic() - started < 120:
        now = time.monotonic()
        if pods_at is None and pods_ready(core, "bench-one", expected_pods):
            pods_at = now
        if is_ready(custom.get_namespaced_custom_object(names.GROUP, names.VERSION, "bench-one",
                                                        names.PLURAL, EXAMPLE["metadata"]["name"])):
            network_at = now
            pods_at = pods_at or now  # both turned within one poll
        time.sleep(POLL_SECONDS)
    if network_at is None:
        raise RuntimeError("the example network did not become Ready within 120 s")
    return {"apply_to_ready": network_at - started, "pods_ready_to_ready": max(0.0, network_at - pods_at)}


def many_networks(api: client.ApiClient, operator: RunningOperator, count: int) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    create_namespace(core, "bench-many")
    requests_before = operator.metric("agentnet_operator_api_requests_total")
    reconciles_before = operator.metric("agentnet_operator_reconciles_total")
    peak_rss = [operator.rss_bytes()]
    sampling = threading.Event()

    def sample_memory() -> None:
        while not sampling.wait(0.2):
            peak_rss[0] = max(peak_rss[0], operator.rss_bytes())

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    started = time.monotonic()
    for i in range(count):
        body = copy.deepcopy(EXAMPLE)
        body["metadata"]["name"] = f"net-{i:02d}"
        custom.create_namespaced_custom_object(names.GROUP, names.VERSION, "bench-many", names.PLURAL, body)
    ready_at = pods_at = None
    expected_pods = count * (EXAMPLE["spec"]["agents"] + 12)
    while time.monotonic() - started < 600:
        if pods_at is None and pods_ready(core, "bench-many", expected_pods):
            pods_at = time.monotonic()
        items = custom.list_namespaced_custom_object(names.GROUP, names.VERSION, "bench-many", names.PLURAL)["items"]
        ready = sum(map(is_ready, items))
        if ready == count:
            ready_at = time.monotonic()
            pods_at = pods_at or ready_at  # both turned within one poll
            break
        if int(time.monotonic() - started) % 10 == 0:
            print(f"  {time.monotonic() - started:5.1f}s: {ready}/{count} networks Ready, pods Ready: "
                  f"{'yes' if pods_at else 'no'}", file=sys.stderr)
        time.sleep(0.25)
    sampling.set()
    sampler.join()
    requests = operator.metric("agentnet_operator_api_requests_total") - requests_before
    reconciles = operator.metric("agentnet_operator_reconciles_total") - reconciles_before
    return {"all_ready": (ready_at or float("inf")) - started, "pods_ready": (pods_at or float("inf")) - started,
            "peak_rss": peak_rss[0],
            "requests": requests, "reconciles": reconciles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentnet-bench-") as tmp:
        state = Path(tmp) / "controlplane"
        kubeconfig = controlplane.up(state, watch_pid=os.getpid())
        bin_dir = controlplane.build_binaries()
        operator = None
        try:
            subprocess.run([str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", "apply", "--server-side",
                            "-f", str(REPO / "crds")], check=True, capture_output=True)
            subprocess.run([str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", "wait",
                            "--for=condition=Established", f"crd/{names.CRD_NAME}"], check=True, capture_output=True)
            operator = RunningOperator(kubeconfig, Path(tmp) / "operator.log")
            api = config.new_client_from_config(config_file=str(kubeconfig))
            one = one_network(api)
            many = many_networks(api, operator, args.networks)
        finally:
            if operator is not None:
                operator.stop()
            controlplane.down(state)
    pods = (EXAMPLE["spec"]["agents"] + 12) * args.networks
    entries = [
        entry("one network: pods Ready -> network Ready", one["pods_ready_to_ready"], "s", 3.0,
              higher_is_better=False),
        entry("one network: apply -> Ready", one["apply_to_ready"], "s", None, higher_is_better=False),
        entry(f"{args.networks} networks ({pods} pods): apply -> all Ready", many["all_ready"], "s", 60.0,
              higher_is_better=False, baseline={"name": "one network apply -> Ready", "value": one["apply_to_ready"]}),
        entry(f"{args.networks} networks: apply -> all {pods} pods Ready (the control plane's share)",
              many["pods_ready"], "s", None, higher_is_better=False),
        entry(f"{args.networks} networks: operator peak memory (RSS)", many["peak_rss"] / 2**20, "MiB", 150.0,
              higher_is_better=False),
        entry(f"{args.networks} networks: API requests per reconcile",
              many["requests"] / max(1.0, many["reconciles"]), "requests", None, higher_is_better=False,
              requests=many["requests"], reconciles=many["reconciles"]),
        entry(f"{args.networks} networks: API requests per network (create to Ready)",
              many["requests"] / args.networks, "requests", None, higher_is_better=False),
    ]
    report("operator", entries)


if __name__ == "__main__":
    main()
