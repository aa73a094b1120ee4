"""Operator failover: the leading operator killed -> the standby's first reconcile.

Its own local control plane; two `agentnet operator` processes with leader election share one
Lease. Each repetition: the leader is killed (SIGKILL: no release, so the standby must wait for
the Lease to expire) or stopped (SIGTERM: it releases the Lease, the baseline measured in the same
run), the network's spec is changed at once, and the time runs until the standby's first
reconcile has completed (its agentnet_operator_reconciles_total rises; under load a reconcile
writing the change takes a second or more), with the moment it reports leading (its
agentnet_operator_leader gauge) and the change in status (observedGeneration) alongside. A
fresh standby is started before the next repetition. Several Lease durations show the time
following the duration: after a kill the standby leads at most duration + a jittered retry
period after the leader's last renewal. `--kubeconfig` uses a running cluster instead.

Writes bench/results/operator_failover.json and operator_failover.png.
Run: .venv/bin/python -m bench.bench_operator_failover [--repeat 3] [--durations 4 8]
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from kubernetes import client, config  # noqa: E402

from bench.common import RESULTS_DIR, entry, report  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from rig import controlplane  # noqa: E402  (the test rig lives under tests/)
from rig.node import fake_node_namespace  # noqa: E402
from rig.operator import RunningOperator  # noqa: E402

from agentnet_operator import names  # noqa: E402
from agentnet_operator.settings import JITTER_FACTOR  # noqa: E402

NAMESPACE, NETWORK = "bench-failover", "failover"
POLL_SECONDS = 0.02
RETRY_SECONDS = 0.5


def election_args(duration: int) -> tuple[str, ...]:
    # The renew deadline as client-go's defaults have it: two thirds of the duration.
    return ("--leader-elect", f"--lease-namespace={NAMESPACE}", f"--lease-duration-seconds={duration}",
            f"--lease-renew-deadline-seconds={duration * 2 / 3}", f"--lease-retry-period-seconds={RETRY_SECONDS}")


def leads(running: RunningOperator) -> bool:
    return running.process.poll() is None and running.metric("agentnet_operator_leader") == 1


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"timed out waiting for {what}")


def observed_generation(custom: client.CustomObjectsApi) -> int:
    body = custom.get_namespaced_custom_object(names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, NETWORK)
    return (body.get("status") or {}).get("observedGeneration", 0)


def one_failover(custom: client.CustomObjectsApi, pair: list[RunningOperator], how: signal.Signals,
                 agents: int) -> dict:
    leader = wait(lambda: next((r for r in pair if leads(r)), None), 120, "a leader")
    (standby,) = [r for r in pair if r is not leader]
    def settled() -> bool:
        body = custom.get_namespaced_custom_object(names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, NETWORK)
        return (body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"]

    wait(settled, 60, "a settled network")
    before = standby.metric("agentnet_operator_reconciles_total")
    killed = time.monotonic()
    leader.process.send_signal(how)
    patched = custom.patch_namespaced_custom_object(names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, NETWORK,
                                                    {"spec": {"agents": agents}})
    generation = patched["metadata"]["generation"]
    leading = wait(lambda: leads(standby) and time.monotonic(), 120, "the standby to lead") - killed
    first = wait(lambda: standby.metric("agentnet_operator_reconciles_total") > before and time.monotonic(),
                 120, "the standby's first reconcile") - killed
    observed = wait(lambda: observed_generation(custom) >= generation and time.monotonic(), 120,
                    "the change in status") - killed
    leader.stop()
    return {"leads": leading, "first_reconcile": first, "observed_generation": observed,
            "leader": pair.index(leader)}


def plot(results: dict, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4))
    durations = sorted(results["kill"])
    series = (("kill", "leads", "o", "killed: standby leads"),
              ("kill", "first_reconcile", "x", "killed: first reconcile"),
              ("stop", "first_reconcile", "s", "stopped (releases): first reconcile"))
    for how, key, marker, label in series:
        xs = [d for d in durations for _ in results[how][d]]
        axis.scatter(xs, [r[key] for d in durations for r in results[how][d]], marker=marker, label=label, alpha=0.8)
    axis.plot(durations, durations, linestyle="--", color="grey", label="Lease duration")
    # The standby times the Lease from when it saw the last renewal, and reads every jittered retry period.
    axis.plot(durations, [d + RETRY_SECONDS * (1 + JITTER_FACTOR) * 2 for d in durations], linestyle=":",
              color="grey", label="kill: bound on leading (duration + 2 read periods)")
    axis.set_xlabel("leaseDurationSeconds")
    axis.set_ylabel("leader gone -> (s)")
    axis.set_title(f"operator failover (load average {os.getloadavg()[0]:.1f})")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="failovers per Lease duration and signal")
    parser.add_argument("--durations", type=int, nargs="+", default=[4, 8], help="Lease durations to measure (s)")
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="Use this cluster (it needs the CRD applied or applicable) instead of starting one")
    args = parser.parse_args()
    results: dict[str, dict[int, list[dict]]] = {"kill": {}, "stop": {}}
    with tempfile.TemporaryDirectory(prefix="agentnet-bench-") as tmp:
        state = Path(tmp) / "controlplane"
        kubeconfig = args.kubeconfig or controlplane.up(state, watch_pid=os.getpid())
        kubectl = str(controlplane.build_binaries() / "kubectl")
        pair: list[RunningOperator] = []
        try:
            subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "apply", "--server-side", "-f", str(REPO / "crds")],
                           check=True, capture_output=True)
            subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "wait", "--for=condition=Established",
                            f"crd/{names.CRD_NAME}"], check=True, capture_output=True)
            api = config.new_client_from_config(config_file=str(kubeconfig))
            core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
            core.create_namespace(fake_node_namespace(NAMESPACE))
            custom.create_namespaced_custom_object(names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, {
                "apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": NETWORK},
                "spec": {"agents": 4, "topology": {"kind": "ring"}, "components": [{"name": "stream-red"}]}})
            runs = 0
            for duration in args.durations:
                for how, sig in (("kill", signal.SIGKILL), ("stop", signal.SIGTERM)):
                    results[how][duration] = []
                    for _ in range(args.repeat):
                        while len(pair) < 2:  # a fresh standby beside the leader
                            pair.append(RunningOperator(kubeconfig, Path(tmp) / f"operator-{runs}-{len(pair)}.log",
                                                        namespace=NAMESPACE, args=election_args(duration)))
                        runs += 1
                        result = one_failover(custom, pair, sig, agents=4 + runs % 2 * 2)
                        results[how][duration].append(result)
                        print(f"  duration {duration} s, leader {how}: first reconcile after "
                              f"{result['first_reconcile']:.2f} s", file=sys.stderr)
                        pair.pop(result["leader"])
                # Next duration: every process starts again with it (a Lease's duration is the holder's).
                for running in pair:
                    running.stop()
                pair.clear()
        finally:
            for running in pair:
                running.stop()
            if args.kubeconfig is None:
                controlplane.down(state)
            else:
                client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig))).delete_namespace(NAMESPACE)
    image = RESULTS_DIR / "operator_failover.png"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(results, image)
    entries = []
    for duration in args.durations:
        lease = {"name": "the Lease's duration", "value": float(duration)}
        for how, what in (("kill", "leader killed"), ("stop", "leader stopped (releases the Lease)")):
            runs = results[how][duration]
            for key, until in (("leads", "standby leads"), ("first_reconcile", "standby's first reconcile done"),
                               ("observed_generation", "change in status")):
                samples = [r[key] for r in runs]
                entries.append(entry(f"Lease {duration} s: {what} -> {until} (median)", statistics.median(samples),
                                     "s", None, higher_is_better=False, baseline=lease, samples=samples))
    report("operator_failover", entries, plot=image.name, retry_period_seconds=RETRY_SECONDS,
           raw=json.loads(json.dumps(results)))


if __name__ == "__main__":
    main()
