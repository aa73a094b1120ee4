"""Durability and bounded memory: `python -m bench.bench_durability [--quick]` -> bench/results/durability.json
and durability_soak.png.

Issue 16 asks for three figures, all measured here for real (an embedded nats-server, `agentnet up` as a
process, snapshot files on disk):
  - a soak: the example network (9 agents) under a steady mix of repeated and distinct terms for 10 minutes
    (90 s with --quick), resident memory of every process of `agentnet up` sampled every few seconds, once
    with a budget (spec.retention.maxNodes, and the timeline's retention.timeline.maxEvents, which the example
    sets to a million) and once without. With the budget, growth after warm-up (once both bounds are reached)
    must stay under 10 %; without it, memory per e-node must stay flat (bytes per e-node at the end of
    warm-up against the end);
  - storage per agent (the snapshot files: columnar, lzma) after 1,000 and 10,000 terms, against the guides' 1 MB;
  - an agent holding 100,000 e-nodes: restart from its snapshot against re-sync from its neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import matplotlib
import psutil
import yaml

from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.config import AgentSettings, NetworkConfig, load_config
from agentnet_runtime.core.terms import Term, parse
from agentnet_runtime.local.up import network_document_from
from agentnet_runtime.natsbin import EmbeddedNats, free_port
from agentnet_runtime.web import tune_collector

from .common import AGENTNET, FAST, RESULTS_DIR, burst, converged, entry, report, wait_for_http

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = yaml.safe_load((REPO / "examples" / "network.yaml").read_text())
RATE = 10  # terms per second into the soak, one agent after another
SAMPLE_EVERY = 3.0  # seconds between memory samples
BUDGET = 10_000  # spec.retention.maxNodes in the soak with a budget
TIMELINE_BUDGET = 10_000  # and its spec.retention.timeline.maxEvents (the timeline's DuckDB index grows with its events)
GUIDE_STORAGE = 1_000_000  # bytes per agent (the guides)


def workload(count: int, start: int = 0) -> list[Term]:
    """Half repeated (a pool of 200 sums and products of 2-3 variables out of 30), half distinct
    (`a_i*(b_i+c_i)+d_i` with fresh names), alternating."""
    pool = burst(200, seed=3)
    return [pool[i % len(pool)] if i % 2 == 0 else parse(f"a{i}*(b{i}+c{i})+d{i}") for i in range(start, start + count)]


# --- soak ----------------------------------------------------------------------------------------------------


@dataclass
class Soak:
    """Samples of one soak run: (seconds since the load began, resident bytes of every process, e-nodes)."""

    budget: int | None
    samples: list[tuple[float, dict[str, int], int]] = field(default_factory=list)
    submitted: int = 0
    failures: list[str] = field(default_factory=list)  # requests that failed, and why
    slowest: float = 0.0  # seconds, the slowest POST
    late_samples: int = 0  # samples whose e-node count an agent was too busy to give in time
    timeline_full: float | None = None  # seconds into the load when the timeline's retention first dropped events

    def total(self, index: int) -> int:
        return sum(self.samples[index][1].values())

    def bounds_reached(self) -> float | None:
        """Seconds into the load when every bound was reached: the largest replica holds 90 % of the budget (it
        keeps whole epochs, so it stays a little under it) and the timeline has begun dropping; None if not."""
        full = None if self.budget is None else next((t for t, _, nodes in self.samples if nodes >= 0.9 * self.budget), None)
        return None if full is None or self.timeline_full is None else max(full, self.timeline_full)

    def warm_index(self) -> int:
        """The end of warm-up: a minute after every bound was reached, else after the first fifth of the run."""
        elapsed, reached = self.samples[-1][0], self.bounds_reached()
        warm = elapsed * 0.2 if reached is None else reached + 60
        return next(i for i, sample in enumerate(self.samples) if sample[0] >= min(warm, elapsed))


def _resident(root: psutil.Process) -> dict[str, int]:
    """Resident bytes per process of a process tree, keyed by what it runs (e.g. `agentnet component
    crdt-service`, `nats-server`) and its pid."""
    resident = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            words = [Path(word).name for word in process.cmdline()[:4] if not word.startswith("-")]
            resident[f"{' '.join(words[:3]) or process.name()}:{process.pid}"] = process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return resident


def growth_by_process(run: Soak, start: int, end: int, top: int = 5) -> dict[str, float]:
    """MB each process grew between two samples, the largest first (where a soak's growth went)."""
    before, after = run.samples[start][1], run.samples[end][1]
    grown = {name: (after[name] - before.get(name, 0)) / 2**20 for name in after}
    return {name: round(mb, 1) for name, mb in sorted(grown.items(), key=lambda item: -abs(item[1]))[:top]}


def _largest_replica(client: httpx.Client, base: str, agents: int) -> int | None:
    """The most e-nodes any agent holds; None when an agent is too busy to answer in time (a shared
    machine): that sample repeats the previous count, and the soak goes on."""
    try:
        return max(client.get(f"{base}/agent/{i}/state", timeout=10).json()["egraph_nodes"] for i in range(agents))
    except httpx.HTTPError:
        return None


def _timeline_dropped(client: httpx.Client, base: str) -> bool:
    try:
        return client.get(f"{base}/timeline/retention", timeout=10).json()["dropped"] > 0
    except httpx.HTTPError:
        return False


def soak(seconds: float, budget: int | None) -> Soak:
    retention = EXAMPLE["spec"]["retention"]
    if budget:
        retention = {**retention, "maxNodes": budget, "timeline": {**retention["timeline"], "maxEvents": TIMELINE_BUDGET}}
    body = {**EXAMPLE, "spec": {**EXAMPLE["spec"], "retention": retention}}
    result = Soak(budget)
    with tempfile.TemporaryDirectory() as directory:
        manifest, port = Path(directory) / "network.yaml", free_port()
        manifest.write_text(yaml.safe_dump(body))
        up = subprocess.Popen([AGENTNET, "up", "-f", str(manifest), "--port", str(port), "--data-dir", f"{directory}/data"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        base, stop, loader = f"http://127.0.0.1:{port}", threading.Event(), None
        try:
            wait_for_http(f"{base}/ready", 120)
            root, agents = psutil.Process(up.pid), body["spec"]["agents"]

            def load() -> None:
                with httpx.Client() as client:
                    began = time.monotonic()
                    while not stop.is_set():
                        for term in workload(RATE, result.submitted):
                            if stop.is_set():
                                break
                            start = time.perf_counter()
                            try:
                                client.post(f"{base}/agent/{result.submitted % agents}/message", json={"term": str(term)},
                                            timeout=30).raise_for_status()  # fmt: skip
                            except httpx.HTTPError as error:  # counted and reported; the soak goes on
                                result.failures.append(f"{type(error).__name__}: {error}")
                            result.slowest = max(result.slowest, time.perf_counter() - start)
                            result.submitted += 1
                        stop.wait(max(0.0, began + result.submitted / RATE - time.monotonic()))

            loader = threading.Thread(target=load, name="soak-load")
            began = time.monotonic()
            loader.start()
            with httpx.Client() as client:
                while (elapsed := time.monotonic() - began) < seconds:
                    nodes = _largest_replica(client, base, agents)
                    if budget and result.timeline_full is None and _timeline_dropped(client, base):
                        result.timeline_full = elapsed
                    if nodes is None:
                        result.late_samples += 1
                        nodes = result.samples[-1][2] if result.samples else 0
                    result.samples.append((elapsed, _resident(root), nodes))
                    time.sleep(SAMPLE_EVERY)
        finally:
            stop.set()
            if loader is not None:
                loader.join(60)  # no request left to meet a network that is stopping (refused, counted as failed)
            up.terminate()
            up.wait(60)
    return result


def soak_entries(bounded: Soak, unbounded: Soak) -> list[dict]:
    warm, end = bounded.warm_index(), len(bounded.samples) - 1
    growth = (bounded.total(end) - bounded.total(warm)) / bounded.total(warm) * 100
    u_warm, u_end = unbounded.warm_index(), len(unbounded.samples) - 1
    idle = unbounded.total(0)

    def per_node(index: int) -> float:  # the memory the network's knowledge takes, per e-node of one replica
        return (unbounded.total(index) - idle) / (unbounded.samples[index][2] * 9)

    minutes = round(bounded.samples[-1][0] / 60, 1)
    return [
        entry(
            f"soak with maxNodes {BUDGET:,} and timeline maxEvents {TIMELINE_BUDGET:,}: resident memory growth after warm-up",
            growth, "%", 10, higher_is_better=False,
            minutes=minutes, warm_up_ends_s=round(bounded.samples[warm][0]), terms=bounded.submitted,
            bounds_reached_s=bounded.bounds_reached(), timeline_max_events=TIMELINE_BUDGET,
            resident_mb_at_warm=round(bounded.total(warm) / 2**20, 1), resident_mb_at_end=round(bounded.total(end) / 2**20, 1),
            largest_replica_nodes=bounded.samples[end][2], failed_posts=len(bounded.failures),
            late_samples=bounded.late_samples, growth_mb_by_process=growth_by_process(bounded, warm, end),
            slowest_post_s=round(bounded.slowest, 2), first_failures=bounded.failures[:3],
            how=f"`agentnet up -f examples/network.yaml` + spec.retention.maxNodes and .timeline.maxEvents, {RATE} terms/s (half repeated, half "
                f"distinct), RSS of every process of its tree (nats-server included) every {SAMPLE_EVERY:g} s",
        ),
        entry(
            "soak without a budget: bytes per e-node, end of run", per_node(u_end), "B", None, higher_is_better=False,
            baseline={"name": "the same at the end of warm-up", "value": per_node(u_warm)}, minutes=minutes,
            largest_replica_nodes=unbounded.samples[u_end][2], terms=unbounded.submitted, failed_posts=len(unbounded.failures),
            late_samples=unbounded.late_samples,
            slowest_post_s=round(unbounded.slowest, 2), first_failures=unbounded.failures[:3],
            resident_mb_idle=round(idle / 2**20, 1), resident_mb_at_end=round(unbounded.total(u_end) / 2**20, 1),
            how="(RSS of the whole tree - RSS before the load) / (e-nodes of the largest replica x 9 replicas)",
        ),
    ]


def plot_soak(runs: list[Soak], path: Path) -> None:
    figure, memory = plt.subplots(figsize=(9, 4.8))
    nodes = memory.twinx()
    for run, colour in zip(runs, ("tab:blue", "tab:red")):
        label = f"maxNodes {run.budget:,}" if run.budget else "no budget"
        times = [t / 60 for t, _, _ in run.samples]
        memory.plot(times, [run.total(i) / 2**20 for i in range(len(run.samples))], color=colour, label=f"resident MB, {label}")
        nodes.plot(times, [n for _, _, n in run.samples], color=colour, linestyle=":", label=f"e-nodes, {label}")
    memory.set_xlabel("minutes of load")
    memory.set_ylabel("resident memory of agentnet up's processes (MB)")
    nodes.set_ylabel("e-nodes of the largest replica (dotted)")
    memory.set_ylim(bottom=0)
    nodes.set_ylim(bottom=0)
    memory.legend(loc="upper left", fontsize=8)
    figure.suptitle(f"Soak: 9 agents, {RATE} terms/s, half distinct")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --- storage per agent, restart against re-sync -------------------------------------------------------------


def example_network(**spec) -> NetworkConfig:
    return NetworkConfig.from_json(network_document_from({**EXAMPLE, "spec": {**EXAMPLE["spec"], **spec}}))


async def run_host(net: NetworkConfig, nats_url: str, data_dir: Path, agent_ids, settings: AgentSettings) -> AgentHost:
    config = load_config(env={}, network=net, agent_ids=tuple(agent_ids), nats_url=nats_url, agent=settings, data_dir=str(data_dir))
    host = AgentHost(config)
    await host.start()
    await asyncio.wait_for(host.ready.wait(), 120)
    return host


async def feed(host: AgentHost, terms: list[Term]) -> None:
    """Submit terms one agent after another, then wait for one digest with no rewrite pending."""
    size = len(host.agents)
    for index, term in enumerate(terms):
        agent = host.agents[index % size]
        agent.submit(term)
        host.wake(agent)
        if index % 200 == 199:
            await asyncio.sleep(0)  # let the pushes go out while the rest is submitted
    while not (converged(host) and await host.settle(0)):
        await asyncio.sleep(0.01)


async def storage_per_agent(nats_url: str, terms: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory)
        host = await run_host(example_network(), nats_url, data, range(9), replace(FAST, snapshot_interval=3600))
        try:
            await feed(host, workload(terms))
            nodes = len(host.agents[0].egraph)
        finally:
            await host.stop()  # writes every agent's snapshot
        sizes = [path.stat().st_size for path in (data / "snapshots").iterdir() if path.name.startswith("agent-")]
    return {"bytes": max(sizes), "median": statistics.median(sizes), "nodes": nodes, "files": len(sizes)}


async def restart_against_resync(nats_url: str, target_nodes: int) -> dict:
    """Agent 0 of the example network holds `target_nodes` e-nodes; it restarts from its snapshot, then from nothing."""
    net, settings = example_network(), replace(FAST, snapshot_interval=3600, node_cap=0)  # replication only: sizes as fed
    with tempfile.TemporaryDirectory() as directory:
        kept, empty = Path(directory) / "kept", Path(directory) / "empty"
        others = await run_host(net, nats_url, Path(directory) / "others", range(1, 9), settings)
        alone = await run_host(net, nats_url, kept, [0], settings)
        try:
            hosts, fed = (alone, others), 0
            while len(alone.agents[0].egraph) < target_nodes:
                batch = workload(2_000, fed)
                for index, term in enumerate(batch):
                    others.agents[1 + index % 8].submit(term)
                    others.wake(others.agents[1 + index % 8])
                fed += len(batch)
                await wait_converged(hosts)
            nodes, digest = len(alone.agents[0].egraph), alone.agents[0].egraph.digest()
            await alone.stop()
            timings = {}
            for name, data in (("snapshot", kept), ("resync", empty)):
                start = time.perf_counter()
                alone = await run_host(net, nats_url, data, [0], settings)
                while alone.agents[0].egraph.digest() != digest:
                    await alone.sync_agent(alone.agents[0])
                    await asyncio.sleep(0.01)
                timings[name] = time.perf_counter() - start
                await alone.stop()
            return {"nodes": nodes, **timings}
        finally:
            await others.stop()


async def wait_converged(hosts) -> None:
    while len({d for host in hosts for d in host.digests().values()}) != 1 or not all([await h.settle(0) for h in hosts]):
        await asyncio.sleep(0.02)


def storage_entries(nats_url: str, quick: bool) -> list[dict]:
    entries = []
    for terms in (1_000,) if quick else (1_000, 10_000):
        result = asyncio.run(storage_per_agent(nats_url, terms))
        entries.append(
            entry(
                f"storage per agent after {terms:,} terms (snapshot file, compressed)", result["bytes"], "B", GUIDE_STORAGE,
                higher_is_better=False, median_bytes=result["median"], nodes_per_replica=result["nodes"], agents=result["files"],
                bytes_per_node=round(result["bytes"] / result["nodes"], 2),
                how="example network (9 agents) in one process on a real nats-server, terms half repeated half distinct, "
                    "rewriting on; converged, then stopped (each agent writes its snapshot, agent/snapshot_format.py); "
                    "the largest file",
            )
        )
    restart = asyncio.run(restart_against_resync(nats_url, 20_000 if quick else 100_000))
    entries.append(
        entry(
            f"agent with {restart['nodes']:,} e-nodes: restart from its snapshot", restart["snapshot"], "s", None,
            higher_is_better=False, baseline={"name": "restart empty, re-sync from its 4 neighbours", "value": restart["resync"]},
            how="agent 0 in a host of its own beside agents 1-8 on a real nats-server; from start to its digest "
                "equal to the one it had before it stopped (syncing with its neighbours in both cases)",
        )
    )
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="90 s soaks, 1,000 terms, 20,000 e-nodes")
    args = parser.parse_args()
    tune_collector()  # this process hosts agents, as a runtime process does
    with EmbeddedNats() as nats:
        entries = storage_entries(nats.url, args.quick)
    seconds = 90 if args.quick else 600
    bounded, unbounded = soak(seconds, BUDGET), soak(seconds, None)
    plot = RESULTS_DIR / "durability_soak.png"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot_soak([bounded, unbounded], plot)
    entries += soak_entries(bounded, unbounded)
    report("durability", entries, quick=args.quick, plot=str(plot.relative_to(REPO)),
           soak_samples={str(run.budget): [(round(t, 1), sum(r.values()), n) for t, r, n in run.samples] for run in (bounded, unbounded)})


if __name__ == "__main__":
    sys.exit(main())
