"""The agents' convergence after a NATS pod is killed, on the rig's real pods.

Its own rig with the real node, the operator installed by its Helm chart, then one network of
9 agent pods (the example's ramanujan graph, no components) on a managed NATS cluster of 3
servers (TLS, JetStream on claims). Each trial POSTs a burst of distinct terms to the agents'
pods (round robin, with the network's API token) and polls every agent's digest until all nine
hold one. A "kill" trial deletes a NATS pod with no grace right after the burst (a different
server each time, as a node loss would), and waits for it to be back and the network Ready
before the next trial; a "calm" trial is the same burst with no kill. The two alternate, so both
see the same machine. Reported: the seconds from the first POST until one digest (median and
spread), kill against calm.

Records only: the project sets no target here.
Writes bench/results/nats_pods.json and nats_pods.png (each trial's convergence time).
Run: .venv/bin/python -m bench.bench_nats_pods [--trials 5] [--terms 200]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from bench.bench_real_pods import (EXAMPLE, NETWORK, Cluster, api_token, create_namespace,  # noqa: E402
                                   http_json, http_request, install_operator, log)
from bench.common import RESULTS_DIR, burst, entry, report, significant  # noqa: E402
from rig import condition_true, controlplane, images, wait_for  # noqa: E402

from agentnet_operator import names  # noqa: E402
from agentnet_runtime.catalogue import HTTP_PORT  # noqa: E402

AGENTS, SERVERS = EXAMPLE["spec"]["agents"], 3
NAMESPACE = "bench-nats-pods"
POLL = 0.1  # seconds between two reads of the nine digests
TRIAL_TIMEOUT = 300  # one trial, burst to one digest
RECOVERY_TIMEOUT = 300  # a killed server back and the network Ready


def network_body(image: str) -> dict:
    """The example's agents and graph on a 3-server NATS, no components, and no per-client rate limit: the
    bench is one client sending bursts, which the default (100 requests a minute per client) would refuse."""
    body = copy.deepcopy(EXAMPLE)
    body["spec"].update(image=image, components=[], nats={"managed": True, "replicas": SERVERS},
                        limits={"rateLimit": {"requests": 0}})
    return body


def agent_ips(cluster: Cluster) -> dict[int, str]:
    prefix = names.agents_name(NETWORK) + "-"
    return {int(p["metadata"]["name"][len(prefix):]): p["status"]["podIP"]
            for p in cluster.pods(NAMESPACE, f"{names.LABEL_COMPONENT}={names.ROLE_AGENT}")
            if p["metadata"]["name"].startswith(prefix) and (p.get("status") or {}).get("podIP")}


def network_ready(cluster: Cluster) -> bool:
    return condition_true(cluster.network(NAMESPACE), "Ready")


def trial(cluster: Cluster, pool: ThreadPoolExecutor, ips: dict[int, str], token: str, terms: list[str],
          victim: str | None) -> dict:
    """A burst to the agents, the `victim` NATS pod killed right after it (None: calm); seconds until one digest."""
    def post(index: int) -> bool:
        agent = index % AGENTS
        answer = http_request(ips[agent], HTTP_PORT, f"/agent/{agent}/message", "POST", {"term": terms[index]},
                              timeout=10, token=token)
        return answer is not None and answer[0] == 202

    def digest(agent: int) -> str | None:
        return (http_json(ips[agent], f"/agent/{agent}/state") or {}).get("digest")

    started = time.time()
    accepted = sum(pool.map(post, range(len(terms))))
    if accepted != len(terms):
        raise RuntimeError(f"{len(terms) - accepted} of the burst's {len(terms)} POSTs were not accepted (202)")
    killed = None
    if victim is not None:
        cluster.core.delete_namespaced_pod(victim, NAMESPACE, grace_period_seconds=0)
        killed = time.time()
    while True:
        if time.time() - started > TRIAL_TIMEOUT:
            raise TimeoutError(f"the agents did not reach one digest within {TRIAL_TIMEOUT} s")
        seen = list(pool.map(digest, range(AGENTS)))
        if all(seen) and len(set(seen)) == 1:
            now = time.time()
            return {"victim": victim, "converged_s": round(now - started, 3),
                    "kill_after_burst_s": killed and round(killed - started, 3),
                    "kill_to_converged_s": killed and round(now - killed, 3)}
        time.sleep(POLL)


def draw(path: Path, trials: list[dict]) -> Path:
    figure, axis = plt.subplots(figsize=(7, 3.6))
    kinds = (("calm", False), ("a NATS pod killed", True))
    for row, (_, kill) in enumerate(kinds):
        values = [t["converged_s"] for t in trials if (t["victim"] is not None) == kill]
        axis.scatter(values, [row] * len(values), s=40, alpha=0.7)
        axis.plot([statistics.median(values)] * 2, [row - 0.25, row + 0.25], color="black")
    axis.set_yticks(range(len(kinds)), [label for label, _ in kinds])
    axis.set_ylim(-0.6, 1.6)
    axis.set_xlabel("seconds from the burst's first POST until the 9 agent pods hold one digest")
    axis.set_title("9 agent pods, 3 NATS servers, the rig's real node (bar: median)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5, help="trials of each kind, alternating (default 5)")
    parser.add_argument("--terms", type=int, default=200, help="terms in each burst (default 200)")
    args = parser.parse_args()
    began = time.time()
    trials: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="agentnet-bench-") as tmp:
        state = Path(tmp) / "controlplane"
        try:
            log(f"starting the rig in {state}")
            kubeconfig = controlplane.up(state, watch_pid=os.getpid())
            cluster = Cluster(state, kubeconfig, controlplane.build_binaries())
            image = images.runtime().reference
            install_operator(cluster, image)
            create_namespace(cluster, NAMESPACE)
            cluster.tool("kubectl", "apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(network_body(image)))
            wait_for(lambda: network_ready(cluster), 600, "the network to be Ready", interval=1)
            token = api_token(cluster, NAMESPACE, NETWORK)
            with ThreadPoolExecutor(max_workers=AGENTS) as pool:
                for number in range(2 * args.trials):
                    kill = number % 2 == 1
                    victim = f"{names.nats_name(NETWORK)}-{(number // 2) % SERVERS}" if kill else None
                    old_uid = victim and cluster.core.read_namespaced_pod(victim, NAMESPACE).metadata.uid
                    ips = agent_ips(cluster)
                    terms = [str(t) for t in burst(args.terms, seed=number)]
                    trials.append(trial(cluster, pool, ips, token, terms, victim))
                    log(f"trial {number + 1}: {trials[-1]}")
                    if victim is not None:  # back, and the network Ready, before the next trial
                        wait_for(lambda: any(p["metadata"]["name"] == victim and p["metadata"]["uid"] != old_uid
                                             and condition_true(p, "Ready") for p in cluster.pods(NAMESPACE)),
                                 RECOVERY_TIMEOUT, f"{victim} back and Ready", interval=1)
                        wait_for(lambda: network_ready(cluster), RECOVERY_TIMEOUT, "the network Ready again", interval=1)
        finally:
            log("stopping the rig")
            controlplane.down(state)
    calm = [t["converged_s"] for t in trials if t["victim"] is None]
    killed = [t["converged_s"] for t in trials if t["victim"] is not None]
    load = os.getloadavg()
    entries = [
        entry(f"9 agent pods converge after a burst of {args.terms} terms, a NATS pod killed right after it",
              statistics.median(killed), "s", None, higher_is_better=False,
              samples=[significant(v) for v in killed], min=min(killed), max=max(killed),
              baseline={"name": "the same burst, no pod killed (median)", "value": statistics.median(calm)},
              baseline_samples=[significant(v) for v in calm]),
    ]
    report("nats_pods", entries, trials=trials, terms=args.terms, servers=SERVERS, agents=AGENTS,
           load_average=[round(x, 2) for x in load], wall_seconds=round(time.time() - began, 1))
    print(f"wrote {draw(RESULTS_DIR / 'nats_pods.png', trials)}")


if __name__ == "__main__":
    main()
