"""Agent network runtime benchmark: `python -m bench.bench_runtime [--quick]` -> bench/results/runtime.json.

Targets (issue 4): 9 agents on ramanujan converge within 1 s after a burst of 1,000 terms;
256 agents on ramanujan converge in at most diameter+2 sync rounds and >= 5x faster than a
ring; timeline appends >= 100,000 events/s; GET /agent/{id}/state p99 <= 10 ms under load
from a second process; an agent process answers /health within 500 ms of starting.

Everything runs for real: agents on an embedded nats-server, DuckDB in a temp file,
`agentnet up` and `agentnet agent` as processes, a load generator as another process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
import networkx as nx

from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.config import AgentSettings, NetworkConfig, load_config
from agentnet_runtime.core.terms import Term
from agentnet_runtime.local.up import network_document_from
from agentnet_runtime.natsbin import EmbeddedNats, free_port
from agentnet_runtime.timeline import Recorder, Timeline
from agentnet_runtime.web import tune_collector

from .common import AGENTNET, FAST, REPO, burst, converged, entry, get_latencies, random_term, report, wait_for_http

def network(agents: int, kind: str) -> NetworkConfig:
    topology = {"kind": kind, **({"degree": 4} if kind == "ramanujan" else {})}
    return NetworkConfig.from_json(network_document_from({"metadata": {"name": "bench"}, "spec": {"agents": agents, "topology": topology}}))


async def started_host(net: NetworkConfig, nats_url: str, settings: AgentSettings) -> AgentHost:
    host = AgentHost(load_config(env={}, network=net, agent_ids=tuple(range(net.size)), nats_url=nats_url, agent=settings))
    await host.start()
    await asyncio.wait_for(host.ready.wait(), 30)
    await host.settle()
    return host


# --- 9 agents, burst of 1,000 terms ------------------------------------------------------------------


async def burst_convergence(nats_url: str, terms: list[Term], settings: AgentSettings) -> dict:
    host = await started_host(network(9, "ramanujan"), nats_url, settings)
    try:
        start = time.perf_counter()
        for index, term in enumerate(terms):  # round-robin over the agents, as fast as possible
            agent = host.agents[index % 9]
            agent.submit(term)
            host.wake(agent)
        while not (converged(host) and await host.settle(0)):
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - start
        return {"seconds": elapsed, "nodes": len(host.agents[0].egraph)}
    finally:
        await host.stop()


def bench_burst(nats_url: str, quick: bool) -> list[dict]:
    terms = burst(1000, seed=1)
    rewriting = [asyncio.run(burst_convergence(nats_url, terms, FAST)) for _ in range(1 if quick else 2)]
    replication = [asyncio.run(burst_convergence(nats_url, terms, replace(FAST, node_cap=0))) for _ in range(2 if quick else 3)]
    shared = [asyncio.run(burst_convergence(nats_url, terms, replace(FAST, share_replica=True))) for _ in range(1 if quick else 2)]
    best, data = min(rewriting, key=lambda r: r["seconds"]), min(replication, key=lambda r: r["seconds"])
    one = min(shared, key=lambda r: r["seconds"])
    return [
        entry(
            "9 agents sharing one e-graph (a process's default) converge after 1,000 terms, rewriting on", one["seconds"],
            "s", 1.0, higher_is_better=False, baseline={"name": "each agent its own replica", "value": best["seconds"]},
            nodes=one["nodes"], runs=len(shared), how="as below, with AgentSettings.share_replica on",
        ),
        entry(
            "9 agents (ramanujan) converge after 1,000 terms, rewriting on", best["seconds"], "s", 1.0,
            higher_is_better=False, baseline={"name": "same burst, replication only (rewriting off)", "value": data["seconds"]},
            nodes=best["nodes"], runs=len(rewriting), terms="2-3 variables out of 30, + and *, one agent each round-robin",
            how="one process, real NATS; from the first submit to one digest on all 9 with no rewrite pending",
        ),
        entry(
            "9 agents (ramanujan) converge after 1,000 terms, replication only", data["seconds"], "s", 1.0,
            higher_is_better=False, nodes=data["nodes"], runs=len(replication),
            how="agents' node cap 0: they replicate what was submitted and rewrite nothing",
        ),
    ]


# --- 256 agents: sync rounds, ramanujan vs ring -------------------------------------------------------


async def rounds_to_converge(nats_url: str, kind: str, agents: int, terms: int, max_rounds: int) -> dict:
    net = network(agents, kind)
    graph = nx.Graph([(n.id, m) for n in net.nodes for m in n.neighbours])
    # Rounds only: no pushes, no timer; each round every agent pulls from every neighbour once.
    # Replication only (node cap 0): with 256 agents rewriting, the rewrite waves (measured by
    # the 9-agent burst) would swamp the one thing this compares, how topology spreads data.
    settings = replace(FAST, eager=False, sync_interval=0, heartbeat_interval=30, node_cap=0)
    host = await started_host(net, nats_url, settings)
    try:
        rng = random.Random(5)
        for term in burst(terms, seed=2):
            host.agents[rng.randrange(agents)].submit(term)
        await host.settle()
        start, rounds = time.perf_counter(), 0
        while not converged(host) and rounds < max_rounds:
            await host.sync_round()
            await host.settle()
            rounds += 1
        return {"rounds": rounds, "seconds": time.perf_counter() - start, "diameter": nx.diameter(graph),
                "converged": converged(host), "nodes": len(host.agents[0].egraph)}  # fmt: skip
    finally:
        await host.stop()


def bench_rounds(nats_url: str, quick: bool) -> list[dict]:
    agents, terms = 256, 32
    ramanujan = asyncio.run(rounds_to_converge(nats_url, "ramanujan", agents, terms, 40))
    ring = asyncio.run(rounds_to_converge(nats_url, "ring", agents, terms, agents // 2 + 20))
    return [
        entry(
            f"{agents} agents (ramanujan): sync rounds to converge", ramanujan["rounds"], "rounds", ramanujan["diameter"] + 2,
            higher_is_better=False, baseline={"name": f"ring of {agents}", "value": ring["rounds"]}, diameter=ramanujan["diameter"],
            ring_diameter=ring["diameter"], terms=terms, nodes=ramanujan["nodes"], converged=ramanujan["converged"],
            how="rounds only (no eager pushes), replication only (no rewriting): in a round every agent pulls from each "
                "neighbour by digest exchange; one process, real NATS",
        ),
        entry(
            f"{agents} agents: ring time / ramanujan time to converge", ring["seconds"] / ramanujan["seconds"], "x", 5,
            higher_is_better=True, ramanujan_seconds=round(ramanujan["seconds"], 3), ring_seconds=round(ring["seconds"], 3),
            ring_rounds=ring["rounds"], ring_converged=ring["converged"],
        ),
    ]


# --- timeline appends ------------------------------------------------------------------------------------


def bench_timeline(quick: bool) -> list[dict]:
    total, batch = (100_000 if quick else 300_000), 10_000
    events: list = []
    recorders = [Recorder(i, f"{i}.bench", "RED", events.append) for i in range(9)]
    for number in range(total):
        recorder = recorders[number % 9]
        recorder.record("send", f"agent.{(number + 1) % 9}.state", {"to": (number + 1) % 9, "nodes": 12})
    with tempfile.TemporaryDirectory() as directory, Timeline(Path(directory) / "timeline.duckdb") as timeline:
        start = time.perf_counter()
        for offset in range(0, total, batch):
            timeline.append(events[offset : offset + batch])
        elapsed = time.perf_counter() - start
        replay_start = time.perf_counter()
        for offset in range(0, total, batch):
            timeline.append(events[offset : offset + batch])
        replay = time.perf_counter() - replay_start
        assert timeline.count() == total
    return [
        entry(
            "timeline appends (DuckDB file, idempotent)", total / elapsed, "events/s", 100_000, higher_is_better=True,
            baseline={"name": "replaying the same events (all skipped)", "value": total / replay}, events=total, batch=batch,
            how="wall time of Timeline.append over pre-built events in batches of 10,000 (appender -> staging -> INSERT OR IGNORE)",
        )
    ]


def talked(agents: int, steps: int, seed: int = 1) -> tuple[list, list]:
    """Events of `agents` recorders sending to and receiving from random others (late, reordered): as recorded
    (partial clocks), and each with the whole clock its recorder held (what every event stored before)."""
    rng, recorded, whole, in_flight = random.Random(seed), [], [], []

    def keep(event) -> None:
        recorded.append(event)
        whole.append(replace(event, clock=dict(recorders[event.origin].clock), partial=False))

    recorders = [Recorder(i, f"{i}.bench", "RED", keep) for i in range(agents)]
    for _ in range(steps):
        agent = rng.randrange(agents)
        if rng.random() < 0.5 or not in_flight:
            recorders[agent].record("send")
            in_flight.append((rng.randrange(agents), recorders[agent].stamp()))
        else:
            to, stamp = in_flight.pop(rng.randrange(len(in_flight)))
            recorders[to].record("receive", received=stamp)
    return recorded, whole


def store_and_query(events: list, batch: int) -> dict:
    """Append in batches to a fresh DuckDB file, then the timeline's default query (1,000 events) and one agent's."""
    with tempfile.TemporaryDirectory() as directory, Timeline(Path(directory) / "timeline.duckdb") as timeline:
        start = time.perf_counter()
        for offset in range(0, len(events), batch):
            timeline.append(events[offset : offset + batch])
        appended = time.perf_counter() - start
        queries = {}
        for name, filters in (("first 1,000", {"limit": 1_000}), ("one agent", {"agent": 3, "limit": 1_000})):
            times = []
            for _ in range(5):
                start = time.perf_counter()
                answered = timeline.query(**filters)
                times.append(time.perf_counter() - start)
            queries[name] = (min(times), answered)
    return {"events_per_s": len(events) / appended, "queries": queries}


def bench_timeline_clocks(quick: bool) -> list[dict]:
    agents, steps, batch = 300, (20_000 if quick else 60_000), 2_000
    recorded, whole = talked(agents, steps)
    partial, before = store_and_query(recorded, batch), store_and_query(whole, batch)
    for name, (_, answered) in partial["queries"].items():  # the same answers, from partial clocks
        assert [e.clock for e in answered] == [e.clock for e in before["queries"][name][1]], name
    held, held_before = sum(len(e.clock) for e in recorded), sum(len(e.clock) for e in whole)
    how = (f"{agents} recorders, {len(recorded):,} events of random sends and late receives; the baseline stores every "
           "event with its whole clock, as before events kept partial ones; both answer the same clocks")  # fmt: skip
    return [
        entry(f"timeline of {agents} agents that talked: clock entries kept per event", held / len(recorded), "entries",
              None, higher_is_better=False, baseline={"name": "whole clocks", "value": held_before / len(whole)}, how=how),
        entry(f"timeline of {agents} agents that talked: appends", partial["events_per_s"], "events/s", None,
              higher_is_better=True, baseline={"name": "whole clocks", "value": before["events_per_s"]}, batch=batch, how=how),
    ] + [
        entry(f"timeline of {agents} agents that talked: query ({name})", seconds * 1000, "ms", 100, higher_is_better=False,
              baseline={"name": "whole clocks", "value": before["queries"][name][0] * 1000}, events=len(answered),
              how=how + "; the best of 5; 100 ms: guide 000's P99 for a request")
        for name, (seconds, answered) in partial["queries"].items()
    ]  # fmt: skip


# --- HTTP latency under load from another process -------------------------------------------------------


def bench_state_latency(quick: bool) -> list[dict]:
    port, requests, concurrency = free_port(), (2_000 if quick else 5_000), 2
    up = subprocess.Popen([AGENTNET, "up", "-f", str(REPO / "examples" / "network.yaml"), "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", 60)
        httpx.post(f"http://127.0.0.1:{port}/agent/0/message", json={"term": "x*(y+z)"}, timeout=5)
        time.sleep(2)  # let the network converge: the load measures serving, not syncing
        generator = subprocess.run(
            [sys.executable, "-m", "bench.bench_runtime", "--load", f"http://127.0.0.1:{port}/agent/4/state", str(requests),
             str(concurrency)],
            capture_output=True, text=True, timeout=120, cwd=REPO, check=True,
        )  # fmt: skip
        latencies = sorted(json.loads(generator.stdout))
    finally:
        up.terminate()
        up.wait(30)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return [
        entry(
            "GET /agent/{id}/state p99 under load", p99 * 1000, "ms", 10, higher_is_better=False,
            p50_ms=round(statistics.median(latencies) * 1000, 3), max_ms=round(latencies[-1] * 1000, 3),
            requests=len(latencies), concurrency=concurrency,
            how=f"`agentnet up` (9 agents, converged, timers running) serving; a separate load-generator process "
                f"(httpx, {concurrency} keep-alive connections, back to back) measures client-side latency",
        )  # fmt: skip
    ]


def bench_agent_start(nats_url: str, quick: bool) -> list[dict]:
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "network.json"
        config.write_text(json.dumps(network_document_from(
            {"metadata": {"name": "bench"}, "spec": {"agents": 9, "topology": {"kind": "ramanujan", "degree": 4}}})))  # fmt: skip
        samples = []
        for _ in range(3 if quick else 7):
            port = free_port()
            start = time.perf_counter()
            process = subprocess.Popen(
                [AGENTNET, "agent", "--config", str(config), "--agents", "0", "--nats-url", nats_url,
                 "--host", "127.0.0.1", "--port", str(port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                wait_for_http(f"http://127.0.0.1:{port}/health", 30)
                samples.append(time.perf_counter() - start)
            finally:
                process.terminate()
                process.wait(10)
    return [
        entry(
            "agent process ready (start to first 200 on /health)", min(samples) * 1000, "ms", 500, higher_is_better=False,
            median_ms=round(statistics.median(samples) * 1000, 1), runs=len(samples),
            how="`agentnet agent` via its console script; /health polled every 2 ms from this process",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--load", nargs=3, metavar=("URL", "REQUESTS", "CONCURRENCY"), help=argparse.SUPPRESS)  # load generator
    args = parser.parse_args()
    if args.load:
        url, requests, concurrency = args.load
        print(json.dumps(asyncio.run(get_latencies(url, int(requests), int(concurrency), seconds=60))))
        return
    entries: list[dict] = []
    tune_collector()  # this process hosts agents and a timeline, as a runtime process does (web.run_until_signal)
    with EmbeddedNats() as nats:
        entries += bench_agent_start(nats.url, args.quick)
        entries += bench_timeline(args.quick)
        entries += bench_timeline_clocks(args.quick)
        entries += bench_state_latency(args.quick)
        entries += bench_burst(nats.url, args.quick)
        entries += bench_rounds(nats.url, args.quick)
    report("runtime", entries, quick=args.quick)


if __name__ == "__main__":
    main()
