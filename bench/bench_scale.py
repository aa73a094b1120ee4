"""Scale: 64, 256 and 1,000 agents under `agentnet up` (issue 21), and the stretch toward 10,000.

Each size runs examples/network.yaml with only `agents` changed, as a new user would, in a
process of its own with nats-server's monitor port on, and measures:
  - start -> ready: from launching `agentnet up` to its GET /ready answering 200;
  - idle resident memory of every process (agentnet up and its nats-server), in all and per agent;
  - idle CPU over IDLE_SECONDS (cores: CPU seconds / wall seconds, all processes);
  - NATS messages per second at rest (nats-server's /varz in_msgs + out_msgs over the same
    window), against n * degree, the number of directed edges;
  - convergence after a burst of 1,000 terms (POSTed to random agents): seconds from the
    first POST until every agent reports one digest and none has work left (GET /status).
Targets (issue 21): 1,000 agents ready within 15 s, at rest under 1 GB in all and under a
quarter of a core, converged within 5 s of the burst.

The stretch (`--stretch`): networks past the CRD's 1,000 agents (the operator's model bounds
`agents`; the bench builds network.json past it on purpose), packed in several `agentnet agent`
processes on one nats-server, sizes doubling until one does not come up within its bound or the
machine's memory would run out; each size reports the same figures, the burst's POSTed to the process
that hosts each agent and converged when every process reports one digest and no work left. The 2D torus, since
ramanujan topologies stop at 5,000 agents (topology.MAX_RAMANUJAN_AGENTS).

With no scipy, the dashboard cannot lay out 500 agents or more (networkx's spring_layout needs
it); such a size runs without the dashboard, and the result says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import matplotlib
import yaml

from bench.common import AGENTNET, REPO, RESULTS_DIR, burst, entry, process_tree_cpu, report, wait_for_http

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLE = REPO / "examples" / "network.yaml"
SIZES = (64, 256, 1000)
IDLE_SECONDS = 20.0  # the window idle CPU and NATS traffic are measured over
SETTLE_SECONDS = 5.0  # after ready, before the idle window: the first sync round and heartbeats
BURST_TERMS = 1000
BURST_CONCURRENCY = 64  # POSTs in flight: a process busy with the burst takes many per turn of its event loop
READY_TIMEOUT = 300.0
CONVERGE_TIMEOUT = 180.0
HTTP_TIMEOUT = 120.0  # one request to a process busy with a burst
TARGETS = {"ready_s": 15.0, "rss_mb": 1024.0, "cpu_cores": 0.25, "converge_s": 5.0}  # at 1,000 agents
STRETCH_SIZES = (2000, 4000, 8000, 10000)
STRETCH_PROCESSES = 4
STRETCH_MEMORY_SHARE = 0.5  # stop before a size whose projected memory passes this share of MemAvailable


# --- processes: memory, CPU, NATS traffic ----------------------------------------------------------------


def process_tree(root: int) -> set[int]:
    """A process and its descendants, from the kernel's list of each one's children."""
    tree, frontier = set(), [root]
    while frontier:
        pid = frontier.pop()
        tree.add(pid)
        try:
            frontier += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:  # gone meanwhile
            continue
    return tree


def rss_mb(pids: set[int]) -> float:
    """Resident memory of the processes, MB (VmRSS)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def varz(monitor: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{monitor}/varz", timeout=10).json()


def free_port() -> int:
    from agentnet_runtime.natsbin import free_port as free

    return free()


def idle_window(roots: list[int], monitor: int) -> dict:
    """CPU (cores), resident memory (MB) and NATS messages per second of the process trees over IDLE_SECONDS."""
    before, cpu, start = varz(monitor), sum(process_tree_cpu(r) for r in roots), time.monotonic()
    time.sleep(IDLE_SECONDS)
    after, cpu_after, seconds = varz(monitor), sum(process_tree_cpu(r) for r in roots), time.monotonic() - start
    messages = (after["in_msgs"] - before["in_msgs"]) + (after["out_msgs"] - before["out_msgs"])
    pids = set().union(*(process_tree(r) for r in roots))
    return {"cpu_cores": (cpu_after - cpu) / seconds, "rss_mb": rss_mb(pids), "nats_msgs_per_s": messages / seconds,
            "nats_bytes_per_s": ((after["in_bytes"] - before["in_bytes"]) + (after["out_bytes"] - before["out_bytes"])) / seconds,
            "window_s": seconds, "load_average": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# --- one size under `agentnet up` ------------------------------------------------------------------------------


def dashboard_lays_out(document: dict) -> str | None:
    """None if the dashboard can lay this network out here, else why not."""
    from agentnet_runtime.components.dashboard import layout
    from agentnet_runtime.config import NetworkConfig

    try:
        layout(NetworkConfig.from_json(document))
    except ModuleNotFoundError as error:
        return f"dashboard.layout needs {error.name}, not installed"
    return None


def network_yaml(agents: int, directory: Path) -> tuple[Path, str | None, int]:
    """examples/network.yaml with `agents` changed (and the dashboard left out if it cannot lay the network
    out): its path, why the dashboard was left out (or None), and the topology's degree."""
    from agentnet_runtime.catalogue import BY_NAME
    from agentnet_runtime.local.up import network_document_from

    body = yaml.safe_load(EXAMPLE.read_text())
    body["spec"]["agents"] = agents
    without = dashboard_lays_out(network_document_from(body))
    if without:
        body["spec"]["components"] = [{"name": name} for name in BY_NAME if name != "dashboard"]
    path = directory / f"network-{agents}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path, without, int(body["spec"]["topology"]["degree"])


async def post_burst(bases: list[str], agents: int, seed: int, accepted: list[int]) -> None:
    """POST BURST_TERMS terms to random agents; `accepted` gets one entry per term taken (202). The agents are
    served at `bases`, in blocks of equal size (one process each), agent 0 first."""
    rng = random.Random(seed)
    work = [(rng.randrange(agents), str(term)) for term in burst(BURST_TERMS, seed)]
    tls = ssl.create_default_context()  # unused (plain HTTP), but a client makes one unless given one: 30 ms each
    block = -(-agents // len(bases))

    async def worker(items: list[tuple[int, str]]) -> None:
        # A client (a connection per process) per worker: one client's pool of 64 looks at every connection for
        # every request, and that took 8 of the 9 s a 64-agent burst took to post, CPU the server was measured without.
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=httpx.Limits(max_connections=len(bases)),
                                     verify=tls) as client:
            for agent, term in items:
                for attempt in range(3):  # a kept-alive connection the server has just closed: ask again
                    try:
                        response = await client.post(f"{bases[agent // block]}/agent/{agent}/message", json={"term": term})
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
                response.raise_for_status()
                accepted.append(agent)

    await asyncio.gather(*(worker(work[i::BURST_CONCURRENCY]) for i in range(BURST_CONCURRENCY)))


def one_digest(bases: list[str]) -> tuple[bool, int]:
    """(every agent of the processes at `bases` reports one digest and none has work left, e-nodes of agent 0)
    from their GET /status; (False, 0) if one does not answer. Work left matters: agents that share an e-graph
    report one digest at every moment."""
    try:
        statuses = [httpx.get(f"{base}/status", timeout=HTTP_TIMEOUT).json() for base in bases]
    except httpx.HTTPError:  # a process busy with the burst may answer late: ask again
        return False, 0
    digests = {agent["digest"] for status in statuses for agent in status["agents"].values()}
    return len(digests) == 1 and all(status["settled"] for status in statuses), statuses[0]["agents"]["0"]["size"]


def burst_convergence(bases: list[str], agents: int) -> dict:
    """POST the burst, then wait for one digest: the figures, or why there are none."""
    start, accepted = time.perf_counter(), []
    try:
        asyncio.run(asyncio.wait_for(post_burst(bases, agents, agents, accepted), CONVERGE_TIMEOUT))
    except (TimeoutError, httpx.HTTPError) as error:  # the process too busy to take the burst in time
        say(f"{agents} agents: the burst was not taken within {CONVERGE_TIMEOUT:.0f} s: {error!r}")
    posted = time.perf_counter() - start
    say(f"{agents} agents: {len(accepted)} of {BURST_TERMS} terms taken in {posted:.1f} s")
    same, nodes = False, 0
    while len(accepted) == BURST_TERMS:  # a burst cut short converges on less: no figure then
        same, nodes = one_digest(bases)
        if same or time.perf_counter() - start > CONVERGE_TIMEOUT:
            break
        time.sleep(0.1)
    converge = time.perf_counter() - start
    return {"burst_posted_s": posted, "burst_accepted": len(accepted), "converge_s": converge if same else None,
            "nodes_after_burst": nodes}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_size(agents: int, directory: Path) -> dict:
    path, without, degree = network_yaml(agents, directory)
    port, monitor = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(directory / f"up-{agents}.log", "wb")
    process = subprocess.Popen([AGENTNET, "up", "-f", str(path), "--port", str(port), "--nats-monitor-port", str(monitor)],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        ready = wait_for_http(f"{base}/ready", READY_TIMEOUT)
        say(f"{agents} agents ready in {ready:.1f} s{'' if without is None else ' (no dashboard: ' + without + ')'}")
        time.sleep(SETTLE_SECONDS)
        idle = idle_window([process.pid], monitor)
        say(f"{agents} agents idle: {json.dumps(idle)}")
        converged = burst_convergence([base], agents)
        after = rss_mb(process_tree(process.pid))
        say(f"{agents} agents: converged after {converged['converge_s']} s, {converged['nodes_after_burst']} e-nodes, {after:.0f} MB")
        return {"agents": agents, "degree": degree, "edges_directed": agents * degree, "ready_s": ready, **idle,
                **converged, "rss_after_burst_mb": after, "dashboard": "on" if without is None else f"off: {without}"}  # fmt: skip
    finally:
        stop(process)
        log.close()


# --- the stretch: past 1,000 agents, packed in several processes ----------------------------------------------


def stretch_network(agents: int, processes: int) -> dict:
    """network.json for `agents` on a 2D torus, built by the operator's own code past the CRD's bound."""
    from agentnet_operator.children import network_config
    from agentnet_operator.model import AgentNetwork

    body = yaml.safe_load(EXAMPLE.read_text())
    body["spec"].update(agents=1000, topology={"kind": "torus", "dimensions": 2}, components=[])
    model = AgentNetwork.model_validate(body)
    spec = model.spec.model_copy(update={"agents": agents, "agents_per_pod": -(-agents // processes)})
    return network_config(model.model_copy(update={"spec": spec}))


def run_stretch(agents: int, processes: int, directory: Path) -> dict:
    from agentnet_runtime.natsbin import EmbeddedNats

    document = stretch_network(agents, processes)
    config = directory / f"network-{agents}.json"
    config.write_text(json.dumps(document))
    monitor = free_port()
    nats = EmbeddedNats(directory / f"nats-{agents}", args=("-m", str(monitor))).start()
    block, started, hosts = -(-agents // processes), time.perf_counter(), []
    try:
        for first in range(0, agents, block):
            port = free_port()
            log = open(directory / f"agents-{agents}-{first}.log", "wb")
            command = [AGENTNET, "agent", "--config", str(config), "--agents", f"{first}-{min(agents, first + block) - 1}",
                       "--nats-url", nats.url, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**os.environ, "AGENTNET_DATA_DIR": ""})  # fmt: skip
            hosts.append((process, port, log))
        for _, port, _ in hosts:
            wait_for_http(f"http://127.0.0.1:{port}/ready", max(0.1, READY_TIMEOUT - (time.perf_counter() - started)))
        ready = time.perf_counter() - started
        time.sleep(SETTLE_SECONDS)
        pids = [p.pid for p, _, _ in hosts] + [nats.process.pid]
        idle = idle_window(pids, monitor)
        say(f"{agents} agents in {processes} processes idle: {json.dumps(idle)}")
        converged = burst_convergence([f"http://127.0.0.1:{port}" for _, port, _ in hosts], agents)
        after = sum(rss_mb(process_tree(pid)) for pid in pids)
        say(f"{agents} agents: converged after {converged['converge_s']} s, {converged['nodes_after_burst']} e-nodes, {after:.0f} MB")
        return {"agents": agents, "processes": processes, "degree": 4, "edges_directed": agents * 4, "ready_s": ready, **idle,
                **converged, "rss_after_burst_mb": after}  # fmt: skip
    finally:
        for process, _, log in hosts:
            stop(process)
            log.close()
        nats.stop()


# --- results ---------------------------------------------------------------------------------------------------


def plot(runs: list[dict], stretch: list[dict], path: Path) -> None:
    every = runs + stretch
    panels = [("ready_s", "start -> ready (s)"), ("rss_per_agent_mb", "idle memory per agent (MB)"),
              ("cpu_cores", "idle CPU (cores)"), ("converge_s", "converged after 1,000 terms (s)"),
              ("nats_msgs_per_s", "NATS messages/s at rest")]  # fmt: skip
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for axis, (key, title) in zip(axes, panels):
        for label, series, style in (("agentnet up", runs, "o-"), (f"{STRETCH_PROCESSES} processes", stretch, "s--")):
            points = [(r["agents"], r[key]) for r in series if r.get(key) is not None]
            if points:
                axis.plot(*zip(*points), style, label=label)
        if key == "nats_msgs_per_s":
            axis.plot([r["agents"] for r in every], [r["edges_directed"] for r in every], ":", color="grey", label="n * degree")
        axis.set_xscale("log")
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("agents")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 and 256 agents only")
    parser.add_argument("--sizes", type=lambda text: tuple(int(x) for x in text.split(",")), help="agents per run, e.g. 64,1000")
    parser.add_argument("--stretch", action="store_true", help="also past 1,000 agents, packed in several processes")
    args = parser.parse_args()
    sizes = args.sizes or (SIZES[:2] if args.quick else SIZES)
    runs, stretch = [], []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        directory = Path(scratch)
        for agents in sizes:
            run = run_size(agents, directory)
            run["rss_per_agent_mb"] = run["rss_mb"] / agents
            runs.append(run)
            print(json.dumps(run), flush=True)
        if args.stretch:
            for agents in STRETCH_SIZES:
                if stretch:  # memory grows about linearly: stop before a size that would not fit
                    projected = stretch[-1]["rss_mb"] * agents / stretch[-1]["agents"]
                    if projected > STRETCH_MEMORY_SHARE * available_mb():
                        stretch.append({"agents": agents, "skipped": f"projected {projected:.0f} MB, over half of MemAvailable"})
                        break
                try:
                    run = run_stretch(agents, STRETCH_PROCESSES, directory)
                except (TimeoutError, httpx.HTTPError, RuntimeError) as error:
                    stretch.append({"agents": agents, "failed": f"{type(error).__name__}: {error}"})
                    break
                run["rss_per_agent_mb"] = run["rss_mb"] / agents
                stretch.append(run)
                print(json.dumps(run), flush=True)
    entries = []
    for run in runs:
        at_target = run["agents"] == 1000
        n = run["agents"]

        def target(key: str) -> float | None:
            return TARGETS[key] if at_target else None

        entries += [
            entry(f"{n} agents: start -> ready", run["ready_s"], "s", target("ready_s"), higher_is_better=False),
            entry(f"{n} agents: idle memory, all processes", run["rss_mb"], "MB", target("rss_mb"), higher_is_better=False,
                  per_agent_mb=round(run["rss_per_agent_mb"], 3)),
            entry(f"{n} agents: idle CPU, all processes", run["cpu_cores"], "cores", target("cpu_cores"), higher_is_better=False,
                  window_s=round(run["window_s"], 1), load_average=run["load_average"]),
            entry(f"{n} agents: NATS messages/s at rest", run["nats_msgs_per_s"], "msg/s", None, higher_is_better=False,
                  baseline={"name": "n * degree", "value": run["edges_directed"]}),
            entry(f"{n} agents: converged after {BURST_TERMS:,} terms", run["converge_s"] or CONVERGE_TIMEOUT, "s",
                  target("converge_s"), higher_is_better=False, converged=run["converge_s"] is not None,
                  nodes=run["nodes_after_burst"], dashboard=run["dashboard"]),
        ]  # fmt: skip
    if len(runs) > 1:  # what one more agent costs, apart from what the components and nats-server hold anyway
        small, large = runs[0], runs[-1]
        slope = (large["rss_mb"] - small["rss_mb"]) / (large["agents"] - small["agents"]) * 1024
        entries.append(entry(f"idle memory per added agent ({small['agents']} -> {large['agents']} agents)", slope, "KB", None,
                             higher_is_better=False))  # fmt: skip
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    png = RESULTS_DIR / "scale.png"
    plot(runs, [s for s in stretch if "ready_s" in s], png)
    report("scale", entries, runs=runs, stretch=stretch, plot=str(png.relative_to(REPO)))


if __name__ == "__main__":
    main()
