"""Service components benchmark: `python -m bench.bench_components_services [--quick]` -> bench/results/components_services.json.

Targets (issue 5): 10 verifications/s with 17 verifiers through skill-verification (aim: 100/s); p99 under
load below 50 ms for simple routes (GET /agents/status, GET /timeline/query with a filter). Also measured:
how long agent-orchestrator takes to mark a SIGKILLed agent process gone (the issue: within three heartbeat
intervals) and to see it back once restarted.

Everything runs as its own process, as in pods: skill-verification, agent-orchestrator and interaction-timeline
(`agentnet component NAME`), 9 agents in two `agentnet agent` processes (0-7 and 8, heartbeat every 0.5 s,
publishing their timeline events on NATS), one embedded nats-server. The timeline starts with 100,000 events
already in its DuckDB file. The load comes from a second process: this module with --load for the
verifications, bench_components_engine's load generator for the GETs; both time each request client-side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from agentnet_runtime.local.up import network_document_from
from agentnet_runtime.natsbin import EmbeddedNats, free_port
from agentnet_runtime.timeline import Recorder, Timeline

from .bench_components_engine import latency_entry, run_load
from .common import entry, load_from_second_process, percentile, report, wait_for_http

REPO = Path(__file__).resolve().parents[1]
AGENTNET = str(Path(sys.executable).with_name("agentnet"))
COMPONENTS = ("skill-verification", "agent-orchestrator", "interaction-timeline")
HEARTBEAT = 0.5  # seconds, the agents' --heartbeat-interval and the orchestrator's setting
TIMELINE_EVENTS = 100_000


# --- inputs ----------------------------------------------------------------------------------------------


def claims(count: int, seed: int) -> list[dict]:
    """Distinct term claims, half true, half false: a product of sums against its expansion,
    monomials shuffled and factors commuted (e.g. (v3 + v9) * v1 = v1*v9 + v3*v1); in a false
    one a variable of the expansion is replaced. Products of 1-2 by 2 summands."""
    rng, names, out, seen = random.Random(seed), [f"v{i}" for i in range(40)], [], set()
    while len(out) < count:
        left, right = rng.sample(names, rng.randint(1, 2)), rng.sample(names, 2)
        product = f"({' + '.join(left)}) * ({' + '.join(right)})"
        monomials = [f"{a}*{b}" if rng.random() < 0.5 else f"{b}*{a}" for a in left for b in right]
        rng.shuffle(monomials)
        if len(out) % 2:
            _, factor = monomials[0].split("*")
            monomials[0] = f"{rng.choice([n for n in names if n not in left + right])}*{factor}"
        expansion = " + ".join(monomials)
        if (product, expansion) not in seen:
            seen.add((product, expansion))
            out.append({"lhs": product, "rhs": expansion})
    return out


def fill_timeline(path: Path, network: dict, count: int) -> None:
    """`count` send/receive/rewrite events of the network's 9 agents, as agents record them."""
    colours = [node["colour"] for node in network["nodes"]]
    events: list = []
    recorders = [Recorder(i, f"{i}.bench", colours[i], events.append) for i in range(len(colours))]
    rng = random.Random(3)
    for number in range(count):
        recorder = recorders[number % len(recorders)]
        kind = rng.choice(("send", "receive", "rewrite"))
        recorder.record(kind, f"agent.{rng.randrange(9)}.state" if kind != "rewrite" else "", {"nodes": rng.randrange(50)})
    with Timeline(path) as timeline:
        for offset in range(0, count, 10_000):
            timeline.append(events[offset : offset + 10_000])


# --- the load process ----------------------------------------------------------------------------------------


async def verify_load(spec: dict) -> dict:
    """POST each claim to /verify/terms from `concurrency` keep-alive connections, back to back."""
    bodies = claims(spec["requests"], spec["seed"])
    latencies: list[float] = []
    verdicts: Counter[str] = Counter()
    queue = iter(bodies)
    limits = httpx.Limits(max_connections=spec["concurrency"], max_keepalive_connections=spec["concurrency"])
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            for body in queue:
                start = time.perf_counter()
                response = await client.post(spec["url"], json=body)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()
                verdicts[response.json()["verdict"]] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "items": len(bodies), "latencies": latencies, "verdicts": dict(verdicts)}


def run_verify_load(spec: dict) -> dict:
    return load_from_second_process("bench.bench_components_services", spec)


# --- the network ---------------------------------------------------------------------------------------------


class Network:
    """The three components and two agent processes, on one nats-server."""

    def __init__(self, nats_url: str, directory: Path):
        self.nats_url, self.directory = nats_url, directory
        body = {"metadata": {"name": "bench"}, "spec": {"agents": 9, "topology": {"kind": "ramanujan", "degree": 4}}}
        document = network_document_from(body)
        document["components"]["agent-orchestrator"]["settings"] = {"heartbeat_interval": str(HEARTBEAT)}
        self.config = directory / "network.json"
        self.config.write_text(json.dumps(document))
        data = directory / "timeline-data"
        fill_timeline(data / "timeline.duckdb", document, TIMELINE_EVENTS)
        self.ports = {name: free_port() for name in COMPONENTS}
        self.components = [
            subprocess.Popen([AGENTNET, "component", name, "--config", str(self.config), "--nats-url", nats_url,
                              "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                              "--data-dir", str(data if name == "interaction-timeline" else directory / name)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, port in self.ports.items()
        ]  # fmt: skip
        self.agents = {block: self.start_agents(block) for block in ("0-7", "8")}
        for name in COMPONENTS:
            wait_for_http(self.url(name, "/health"), 60)
        self.wait_for(lambda: httpx.get(self.url("agent-orchestrator", "/status")).json()["alive"] == 9, 60, "9 agents alive")

    def start_agents(self, block: str) -> subprocess.Popen:
        return subprocess.Popen(
            [AGENTNET, "agent", "--config", str(self.config), "--agents", block, "--nats-url", self.nats_url,
             "--host", "127.0.0.1", "--port", str(free_port()), "--heartbeat-interval", str(HEARTBEAT), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def url(self, component: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[component]}{path}"

    @staticmethod
    def wait_for(predicate, timeout: float, what: str, every: float = 0.005) -> float:
        """Seconds until `predicate()` holds, polling every `every` seconds."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if predicate():
                return time.perf_counter() - start
            time.sleep(every)
        raise TimeoutError(f"no {what} within {timeout}s")

    def stop(self) -> None:
        for process in [*self.components, *self.agents.values()]:
            process.terminate()
        for process in [*self.components, *self.agents.values()]:
            process.wait(30)


# --- figures ---------------------------------------------------------------------------------------------------


def bench_verification(network: Network, quick: bool) -> list[dict]:
    requests = 200 if quick else 1_000
    run = run_verify_load({"url": network.url("skill-verification", "/terms"), "requests": requests, "concurrency": 2, "seed": 5})
    return [
        entry(
            "skill-verification: verifications/s, 17 verifiers (distinct claims)", run["items"] / run["seconds"], "verifications/s",
            10, higher_is_better=True, aim=100, verdicts=run["verdicts"], connections=2,
            p50_ms=round(percentile(run["latencies"], 0.5) * 1000, 2), p99_ms=round(percentile(run["latencies"], 0.99) * 1000, 2),
            how="POST /terms, each claim new (no memo hits): a product of 1-2 by 2 sums against its shuffled expansion, "
                "half of them falsified; every verifier evaluates, true claims are saturated by each of the 17",
        ),
    ]  # fmt: skip


def bench_simple_routes(network: Network, quick: bool) -> list[dict]:
    count = 1_000 if quick else 5_000
    status = run_load({"mode": "http", "kind": "get", "url": network.url("agent-orchestrator", "/status"),
                       "requests": count, "concurrency": 2})  # fmt: skip
    query = network.url("interaction-timeline", "/query?agent=3&kind=send&limit=100")
    timeline = run_load({"mode": "http", "kind": "get", "url": query, "requests": count, "concurrency": 2})
    stored = len(httpx.get(network.url("interaction-timeline", "/query?limit=100000")).json()["events"])
    return [
        latency_entry("GET /agents/status p99 under load", status, 50, connections=2, agents=9),
        latency_entry(
            "GET /timeline/query?agent=3&kind=send&limit=100 p99 under load", timeline, 50, connections=2,
            events_stored=stored, how="DuckDB file pre-filled with 100,000 events; the live agents' events keep arriving on NATS",
        ),
    ]  # fmt: skip


def bench_membership(network: Network, quick: bool) -> list[dict]:
    """SIGKILL the process of agent 8, time until the orchestrator says gone; restart it, time until back."""
    gone, back = [], []
    for _ in range(2 if quick else 4):
        process = network.agents["8"]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

        def state() -> str:
            return httpx.get(network.url("agent-orchestrator", "/8")).json()["state"]

        gone.append(network.wait_for(lambda: state() == "gone", 30, "agent 8 gone"))
        network.agents["8"] = network.start_agents("8")
        back.append(network.wait_for(lambda: state() == "alive", 60, "agent 8 back"))
    return [
        entry(
            "agent-orchestrator: SIGKILLed agent marked gone after (worst run)", max(gone) / HEARTBEAT, "heartbeat intervals", 3,
            higher_is_better=False, seconds=[round(s, 3) for s in gone], heartbeat_interval=HEARTBEAT,
            how="from SIGKILL of the process hosting agent 8 until GET /agents/8 says gone (polled every 5 ms); "
                "gone_after = 2.5 intervals of silence",
        ),
        entry(
            "agent-orchestrator: restarted agent seen back after (worst run)", max(back), "s", None, higher_is_better=False,
            seconds=[round(s, 3) for s in back], how="from starting `agentnet agent --agents 8` until GET /agents/8 says alive "
            "(includes the process start and its NATS connection)",
        ),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the load-generator process: a JSON spec
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(verify_load(json.loads(args.load)))))
        return
    entries: list[dict] = []
    with tempfile.TemporaryDirectory() as directory, EmbeddedNats(Path(directory) / "nats") as nats:
        network = Network(nats.url, Path(directory))
        try:
            entries += bench_verification(network, args.quick)
            entries += bench_simple_routes(network, args.quick)
            entries += bench_membership(network, args.quick)
        finally:
            network.stop()
    report("components_services", entries, quick=args.quick)


if __name__ == "__main__":
    main()
