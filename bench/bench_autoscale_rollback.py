"""Autoscaling and rollback reaction times, on a fresh local control plane and a real nats-server.

- autoscale: from a work-queue lag crossing its target (the moment the messages are in
  JetStream) to the operator writing stream-red's Deployment replicas (target: median
  <= 5 s; the HPA takes 15-55 s). Baseline, same run: writing the same replicas field
  directly (an API patch seen back through a get) - the floor of any controller.
- rollback: from a revision being declared failed (its history entry turns Failed) to the
  previous revision being healthy again (Ready, history front Deployed) (target <= 10 s).
  The old revision's pods stay Ready throughout, so this is the operator's own time.
  A failed revision asks for more CPU than any node has: its pod is never scheduled.

Run: .venv/bin/python -m bench.bench_autoscale_rollback [--repeat 10]
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from bench.common import entry, report

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from rig import controlplane  # noqa: E402  (the test rig lives under tests/)
from rig.node import fake_node_namespace  # noqa: E402
from rig.operator import RunningOperator  # noqa: E402

from agentnet_operator import names  # noqa: E402
from agentnet_runtime import natsclient  # noqa: E402
from agentnet_runtime.natsbin import EmbeddedNats  # noqa: E402

POLL = 0.02
NAMESPACE = "bench-react"
DEADLINE = 10  # progressDeadlineSeconds of the rollback network


def network(name: str, nats_url: str, component: dict, **spec) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": name},
            "spec": {"agents": 4, "topology": {"kind": "ring"}, "nats": {"url": nats_url}, "components": [component],
                     **spec}}


def wait(predicate, timeout: float, what: str) -> float:
    """Poll until truthy; the monotonic time it turned."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL)
    return time.monotonic()


def distribution(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"samples": [round(s, 3) for s in samples], "min": round(ordered[0], 3), "max": round(ordered[-1], 3),
            "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3)}


def autoscale(api: client.ApiClient, nats_url: str, repeat: int) -> tuple[list[float], list[float]]:
    apps, custom = client.AppsV1Api(api), client.CustomObjectsApi(api)
    component = {"name": "stream-red", "autoscaling": {
        "minReplicas": 1, "maxReplicas": 3, "metric": {"source": "nats", "target": 10},
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0,
                                   "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]}}}}
    custom.create_namespaced_custom_object(names.GROUP, names.VERSION, NAMESPACE, names.PLURAL,
                                           network("auto", nats_url, component))
    deployment = "auto-stream-red"

    def replicas() -> int:
        try:
            return apps.read_namespaced_deployment(deployment, NAMESPACE).spec.replicas
        except client.ApiException:
            return -1

    wait(lambda: replicas() == 1, 120, "the autoscaled network's stream-red Deployment")

    async def queue(count: int) -> None:
        nc = await natsclient.connect(nats_url)
        js = nc.jetstream()
        await natsclient.ensure_work_stream(js)
        await asyncio.gather(*[await js.publish_async(natsclient.work_subject("RED"), b"a + b") for _ in range(count)])
        await nc.close()

    async def drain() -> None:
        nc = await natsclient.connect(nats_url)
        await nc.jetstream().purge_stream(natsclient.WORK_STREAM)
        await nc.close()

    reactions, direct = [], []
    for _ in range(repeat):
        asyncio.run(queue(100))  # lag 100 against a target of 10 per replica
        crossed = time.monotonic()
        reactions.append(wait(lambda: replicas() > 1, 60, "the operator scaling up") - crossed)
        asyncio.run(drain())
        wait(lambda: replicas() == 1, 60, "the operator scaling back down")
        time.sleep(1.5)  # let the scale-down's rate period pass
    # Baseline: the same field written directly, on a Deployment no controller manages.
    apps.create_namespaced_deployment(NAMESPACE, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "baseline"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "baseline"}},
                 "template": {"metadata": {"labels": {"app": "baseline"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    for i in range(repeat):
        started = time.monotonic()
        apps.patch_namespaced_deployment_scale("baseline", NAMESPACE, {"spec": {"replicas": i % 2}})
        wait(lambda: apps.read_namespaced_deployment("baseline", NAMESPACE).spec.replicas == i % 2, 10, "baseline")
        direct.append(time.monotonic() - started)
    return reactions, direct


def rollback(api: client.ApiClient, nats_url: str, repeat: int) -> list[float]:
    custom = client.CustomObjectsApi(api)

    def body() -> dict:
        return custom.get_namespaced_custom_object(names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, "roll")

    def put(spec: dict) -> None:
        custom.patch_namespaced_custom_object(names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, "roll",
                                              {"spec": spec})

    def front() -> dict:
        history = body().get("status", {}).get("history") or [{}]
        return history[0]

    def ready() -> bool:
        status = body().get("status", {})
        return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))

    custom.create_namespaced_custom_object(names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, network(
        "roll", nats_url, {"name": "stream-red"}, image="agentnet:good-0",
        rollout={"progressDeadlineSeconds": DEADLINE, "autoRollback": True}))
    samples = []
    for i in range(repeat):
        wait(lambda: front().get("result") == "Deployed" and ready(), 120, "a healthy revision")
        good = front()["revision"]
        put({"image": f"agentnet:bad-{i}", "components": [{"name": "stream-red",
                                                          "resources": {"requests": {"cpu": "100000"}}}]})

        def failed() -> bool:
            history = body().get("status", {}).get("history") or []
            return any(h["result"] in ("Failed", "RolledBack") and h["revision"] != good for h in history)

        declared = wait(failed, DEADLINE + 60, "the bad revision declared failed")
        healthy = wait(lambda: front().get("revision") == good and front().get("result") == "Deployed" and ready(),
                       60, "the previous revision healthy again")
        samples.append(healthy - declared)
        put({"image": f"agentnet:good-{i + 1}", "components": [{"name": "stream-red"}]})
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, help="autoscale reactions measured (rollbacks: a third)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentnet-bench-") as tmp:
        state = Path(tmp) / "controlplane"
        kubeconfig = controlplane.up(state, watch_pid=os.getpid())
        bin_dir = controlplane.build_binaries()
        nats = EmbeddedNats(Path(tmp) / "nats")
        nats.start()
        operator = None
        try:
            kubectl = [str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}"]
            subprocess.run([*kubectl, "apply", "--server-side", "-f", str(REPO / "crds")], check=True, capture_output=True)
            subprocess.run([*kubectl, "wait", "--for=condition=Established", f"crd/{names.CRD_NAME}"], check=True,
                           capture_output=True)
            subprocess.run([*kubectl, "create", "-f", "-"], input=json.dumps(fake_node_namespace(NAMESPACE)).encode(),
                           check=True, capture_output=True)
            operator = RunningOperator(kubeconfig, Path(tmp) / "operator.log", namespace=NAMESPACE, resync_seconds=5)
            api = config.new_client_from_config(config_file=str(kubeconfig))
            reactions, direct = autoscale(api, nats.url, args.repeat)
            rollbacks = rollback(api, nats.url, max(1, args.repeat // 3))
        finally:
            if operator is not None:
                operator.stop()
            nats.stop()
            controlplane.down(state)
    entries = [
        entry("autoscale: lag crosses target -> replicas written (median)", statistics.median(reactions), "s", 5.0,
              higher_is_better=False, baseline={"name": "direct replicas patch, seen back (median)",
                                                "value": statistics.median(direct)},
              distribution=distribution(reactions), read_interval_seconds=1.0),
        entry("rollback: revision declared failed -> previous revision healthy (median)", statistics.median(rollbacks),
              "s", 10.0, higher_is_better=False, distribution=distribution(rollbacks),
              progress_deadline_seconds=DEADLINE),
    ]
    report("autoscale_rollback", entries)


if __name__ == "__main__":
    main()
