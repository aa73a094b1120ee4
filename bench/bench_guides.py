"""The deployment guides' targets: `python -m bench.bench_guides [--quick]` -> bench/results/guides.json
(and guides_latency.png, the latency distribution of every route measured).

Targets (issue 19, quoting ../shared/guides): "1000+ messages/second across 9 agents" (003), "Error rate
< 0.1%" and "P99 < 100ms" (000's success criteria), "Cold start time < 100ms" (000).

Everything runs for real: `agentnet up -f examples/network.yaml` as a process (an embedded nats-server,
the 9 agents and the 11 components on one port; for the messages between agents, with --replica-per-agent); the load comes from a second process (this module with
--load) that times each request client-side; the cold starts are `agentnet agent` and `agentnet component`
processes, next to `python -c pass` and the same imports alone, measured in the same run so that the share
Python's own start takes is plain.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import matplotlib
from prometheus_client.parser import text_string_to_metric_families

from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse
from agentnet_runtime.local.up import network_document
from agentnet_runtime.natsbin import EmbeddedNats, free_port

from .common import (AGENTNET, REPO, RESULTS_DIR, arguments_or_load, entry, get_latencies, load_from_second_process,
                     percentile, process_tree_cpu, report, significant, wait_for_http)  # fmt: skip

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLE = REPO / "examples" / "network.yaml"
AGENTS = 9  # the example network's

# GET routes that answer from memory (no saturation, no DuckDB scan of the whole log): every
# component's, and the agents'. Paths as `agentnet up` mounts them (a component's own port drops its prefix).
SIMPLE_ROUTES = (
    "/health", "/status", "/agent/4/state",
    "/stream/red/status", "/stream/blue/status", "/stream/green/status",
    "/crdt/state", "/egraph/health", "/verify/skills", "/agents/status", "/colors/palette",
    "/sync/status", "/timeline/query?agent=3&limit=50", "/dashboard/state",
)  # fmt: skip


# --- the mixed load: valid requests must succeed, invalid ones must be refused (4xx) ------------------------


def replica_wire(n: int) -> dict:
    egraph = EGraph(f"bench{n}")
    egraph.add_term(parse(f"w{n} * (u + v)"))
    return egraph.to_wire()


def mixed_request(n: int) -> tuple[str, bool, str, str, dict | bytes | None]:
    """The n-th request of the mixed load: (case, valid, method, path, JSON body or raw bytes).
    Valid and invalid alternate; the terms are new each time, so nothing is answered from a memo."""
    agent = n % AGENTS
    cases = (
        ("agent message: a term", True, "POST", f"/agent/{agent}/message", {"term": f"m{n} * (p + q)"}),
        ("agent message: unparseable term", False, "POST", f"/agent/{agent}/message", {"term": f"m{n} * ("}),
        ("agent state", True, "GET", f"/agent/{agent}/state", None),
        ("agent state: no such agent", False, "GET", f"/agent/{AGENTS + agent}/state", None),
        ("egraph saturate", True, "POST", "/egraph/saturate", {"term": f"(s{n} + 0) * 1"}),
        ("egraph saturate: term not a string", False, "POST", "/egraph/saturate", {"term": n}),
        ("crdt merge", True, "POST", "/crdt/merge", {"states": [replica_wire(n)]}),
        ("crdt merge: not a wire state", False, "POST", "/crdt/merge", {"states": [{"kind": "agentnet.egraph.state"}]}),
        ("stream-red terms", True, "POST", "/stream/red/terms", {"term": f"(r{n} + s) + t"}),
        ("agent message: not JSON", False, "POST", f"/agent/{agent}/message", b"{\"term\": "),
        ("timeline query", True, "GET", f"/timeline/query?agent={agent}&limit=20", None),
        ("timeline query: agent not a number", False, "GET", "/timeline/query?agent=abc", None),
        ("orchestrator status", True, "GET", "/agents/status", None),
        ("egraph verify: no rhs", False, "POST", "/egraph/verify", {"lhs": f"v{n}"}),
    )
    return cases[n % len(cases)]


def outcome_is_error(valid: bool, status: int | None) -> bool:
    """A valid request must be answered 2xx; an invalid one refused with 4xx (a 5xx, a timeout or an
    accepted invalid request is an error). `status` None: no answer at all."""
    if status is None:
        return True
    return not (200 <= status < 300) if valid else not (400 <= status < 500)


async def mixed_load(spec: dict) -> dict:
    base, concurrency, deadline = spec["base"], spec["concurrency"], time.monotonic() + spec["seconds"]
    counter = iter(range(10**9))
    cases: dict[str, dict] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                case, valid, method, path, body = mixed_request(next(counter))
                kwargs = {"content": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}
                try:
                    status = (await client.request(method, path, **kwargs)).status_code
                except httpx.HTTPError:
                    status = None
                tally = cases.setdefault(case, {"valid": valid, "requests": 0, "errors": 0, "statuses": {}})
                tally["requests"] += 1
                tally["errors"] += outcome_is_error(valid, status)
                tally["statuses"][str(status)] = tally["statuses"].get(str(status), 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"cases": cases}


# --- the term load that makes the agents talk --------------------------------------------------------------


async def term_load(spec: dict) -> dict:
    """Distinct terms to the agents round-robin, back to back from `concurrency` connections, for `seconds`."""
    base, concurrency = spec["base"], spec["concurrency"]
    counter = iter(range(10**9))
    sent = failed = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        start = time.time()
        deadline = time.monotonic() + spec["seconds"]

        async def worker() -> None:
            nonlocal sent, failed
            while time.monotonic() < deadline:
                n = next(counter)
                response = await client.post(f"/agent/{n % AGENTS}/message", json={"term": f"a{n} * (b{n % 7} + c)"})
                sent += 1
                failed += response.status_code != 202

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        end = time.time()
    return {"start": start, "end": end, "sent": sent, "failed": failed}


async def routes_load(spec: dict) -> dict:
    return {path: await get_latencies(spec["base"] + path, spec["requests"], spec["concurrency"], seconds=120)
            for path in spec["paths"]}  # fmt: skip


def run_load(spec: dict) -> dict:
    return load_from_second_process("bench.bench_guides", spec)


# --- `agentnet up` --------------------------------------------------------------------------------------------


class Up:
    """`agentnet up -f examples/network.yaml` as a process, ready (every agent and component)."""

    def __init__(self, directory: Path, *flags: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [AGENTNET, "up", "-f", str(EXAMPLE), "--port", str(self.port), "--data-dir", str(directory), *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_http(f"{self.base}/ready", 120)

    def received(self) -> dict[str, float]:
        """The agents' own counters of what they received from other agents, by kind (state, sync, ack)."""
        text = httpx.get(f"{self.base}/metrics", timeout=10).text
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "agentnet_messages_total" and sample.labels["direction"] == "in":
                    counts[sample.labels["kind"]] = counts.get(sample.labels["kind"], 0.0) + sample.value
        return counts

    def converged(self) -> bool:
        return httpx.get(f"{self.base}/status", timeout=10).json()["converged"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


class Sampler:
    """(wall time, total received by the agents) every `every` seconds, on a thread of its own, until stopped."""

    def __init__(self, up: Up, every: float):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(up, every), daemon=True)
        self._thread.start()

    def _run(self, up: Up, every: float) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), sum(up.received().values())))
            self._stop.wait(every)

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def rate_within(samples: list[tuple[float, float]], start: float, end: float) -> tuple[float, float]:
    """Messages per second between the first and the last sample inside [start, end], and that span."""
    inside = [(t, count) for t, count in samples if start <= t <= end]
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    return (c1 - c0) / (t1 - t0), t1 - t0


def bench_messages(up: Up, quick: bool) -> list[dict]:
    idle_seconds, load_seconds, concurrency = (4, 10, 4) if quick else (8, 30, 4)
    sampler = Sampler(up, 0.25)
    time.sleep(idle_seconds)
    idle_end = time.time()
    cpu_before = process_tree_cpu(up.process.pid)
    load = run_load({"mode": "terms", "base": up.base, "seconds": load_seconds, "concurrency": concurrency})
    cpu = process_tree_cpu(up.process.pid) - cpu_before
    samples = sampler.stop()
    idle, _ = rate_within(samples, samples[0][0], idle_end)
    busy, span = rate_within(samples, load["start"], load["end"])
    before = up.received()
    converge_start = time.perf_counter()
    while not up.converged() and time.perf_counter() - converge_start < 120:
        time.sleep(0.1)
    converged_after = time.perf_counter() - converge_start
    after = up.received()
    by_kind = {kind: round(count) for kind, count in sorted(after.items())}
    return [
        entry(
            "messages/s received across the 9 agents, under a term load", busy, "messages/s", 1_000, higher_is_better=True,
            baseline={"name": "the same network idle (sync rounds only)", "value": idle},
            window_s=round(span, 2), terms_sent=load["sent"], terms_refused=load["failed"],
            terms_per_s=round(load["sent"] / (load["end"] - load["start"]), 1),
            messages_per_term=round(busy * span / max(load["sent"], 1), 2), connections=concurrency,
            up_cpu_seconds=round(cpu, 2), up_cpu_share_of_one_core=round(cpu / (load["end"] - load["start"]), 2),
            messages_per_up_cpu_second=round(busy * (load["end"] - load["start"]) / cpu) if cpu else None,
            converged_s_after_load=round(converged_after, 2), received_by_kind=by_kind,
            received_while_converging=round(sum(after.values()) - sum(before.values())),
            how="`agentnet up -f examples/network.yaml --replica-per-agent` (each agent its own e-graph, replicating "
                "as agents in pods of their own do; by default they share one and send each other nothing); a second process posts distinct terms (a{n} * (b + c)) to "
                "/agent/{n % 9}/message back to back; agent-to-agent deliveries counted at the receiver "
                "(agentnet_messages_total{direction=in}: state, sync, ack), read from /metrics every 0.25 s, "
                "over the samples inside the load's own start and end; up_cpu: the `agentnet up` process tree's CPU time "
                "(nats-server and stream workers included) while the load ran, to read the figure against the machine's load",
        ),
    ]  # fmt: skip


def bench_errors(up: Up, quick: bool) -> list[dict]:
    seconds, concurrency = (10, 4) if quick else (90, 4)
    cases = run_load({"mode": "mixed", "base": up.base, "seconds": seconds, "concurrency": concurrency})["cases"]
    total = sum(c["requests"] for c in cases.values())
    errors = sum(c["errors"] for c in cases.values())
    valid = [c for c in cases.values() if c["valid"]]
    valid_total, valid_errors = sum(c["requests"] for c in valid), sum(c["errors"] for c in valid)
    return [
        entry(
            "error rate under a mixed load of valid and invalid requests", 100 * errors / total, "%", 0.1,
            higher_is_better=False, requests=total, errors=errors, valid_requests=valid_total,
            # With no error in n requests the rate is below 3/n at 95 % confidence ("rule of three").
            upper_95_percent=significant(100 * 3 / total) if errors == 0 else None,
            valid_errors=valid_errors, connections=concurrency, seconds=seconds, cases=cases,
            how="half the requests valid (terms to agents, saturate, merge, stream terms, state, timeline, status), half "
                "invalid (unparseable or ill-typed terms, a non-wire state, truncated JSON, an unknown agent, a bad query "
                "parameter), interleaved, back to back from a second process; an error is a valid request not answered "
                "2xx, or an invalid one not refused with a 4xx (a 5xx, a timeout, or accepted)",
        ),
    ]  # fmt: skip


def bench_routes(up: Up, quick: bool) -> tuple[list[dict], dict[str, list[float]]]:
    requests = 300 if quick else 1_500
    httpx.post(f"{up.base}/agent/0/message", json={"term": "x*(y+z)"}, timeout=10)
    latencies = run_load({"mode": "routes", "base": up.base, "paths": list(SIMPLE_ROUTES), "requests": requests,
                          "concurrency": 2})  # fmt: skip
    p99 = {path: percentile(samples, 0.99) * 1000 for path, samples in latencies.items()}
    worst = max(p99, key=p99.get)
    entries = [
        entry(
            "p99 of every simple route (the worst of them)", p99[worst], "ms", 100, higher_is_better=False,
            baseline={"name": "GET /health (the HTTP floor)", "value": p99["/health"]}, worst_route=worst,
            routes=len(p99), requests_per_route=requests, connections=2,
            how="`agentnet up` with one term spread; a second process sends each route's GETs back to back from 2 "
                "keep-alive connections (httpx) and times them client-side",
        ),
    ]
    for path, samples in latencies.items():
        entries.append(entry(
            f"GET {path} p99", p99[path], "ms", 100, higher_is_better=False,
            p50_ms=round(statistics.median(samples) * 1000, 3), max_ms=round(max(samples) * 1000, 3), requests=len(samples),
        ))  # fmt: skip
    return entries, latencies


def plot_latencies(latencies: dict[str, list[float]], path: Path) -> None:
    order = sorted(latencies, key=lambda p: percentile(latencies[p], 0.99))
    figure, axes = plt.subplots(figsize=(9, 0.42 * len(order) + 1.4))
    data = [[s * 1000 for s in latencies[p]] for p in order]
    axes.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=False, tick_labels=order)
    for row, samples in enumerate(data, start=1):
        axes.plot(percentile(samples, 0.99), row, "o", color="tab:red", markersize=4)
        axes.plot(max(samples), row, "x", color="tab:gray", markersize=4)
    axes.axvline(100, color="tab:red", linestyle="--", linewidth=1, label="the guides' p99 target (100 ms)")
    axes.set_xscale("log")
    axes.set_xlabel("latency, ms (box: quartiles; whiskers: p1-p99; red dot: p99; x: max)")
    axes.legend(loc="lower right", fontsize=8)
    figure.suptitle("GET latency of every simple route under `agentnet up` (2 connections, back to back)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --- cold starts ----------------------------------------------------------------------------------------------


def exit_time(command: list[str]) -> float:
    """Seconds from spawning `command` to its exit."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def health_time(command: list[str], url: str) -> float:
    """Seconds from spawning `command` to its first 200 on `url`."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(url, 30)
        return time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(10)


def bench_cold_starts(quick: bool) -> list[dict]:
    repeat = 5 if quick else 11
    agent_imports = "import agentnet_runtime.cli, agentnet_runtime.agent.main"
    component_imports = "import agentnet_runtime.cli, agentnet_runtime.components.main, agentnet_runtime.components.crdt_service"
    with tempfile.TemporaryDirectory() as directory, EmbeddedNats(Path(directory) / "nats") as nats:
        config = Path(directory) / "network.json"
        config.write_text(json.dumps(network_document(EXAMPLE)))

        def agent() -> float:
            port = free_port()
            return health_time([AGENTNET, "agent", "--config", str(config), "--agents", "0", "--nats-url", nats.url,
                                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                               f"http://127.0.0.1:{port}/health")  # fmt: skip

        def component() -> float:
            port = free_port()
            return health_time([AGENTNET, "component", "crdt-service", "--config", str(config), "--nats-url", nats.url,
                                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                "--data-dir", str(Path(directory) / "crdt")], f"http://127.0.0.1:{port}/health")  # fmt: skip

        # Interleaved, so that a busy moment of the machine falls on every kind alike.
        runs: dict[str, list[float]] = {"python": [], "agent imports": [], "component imports": [], "agent": [], "component": []}
        for _ in range(repeat):
            runs["python"].append(exit_time([sys.executable, "-c", "pass"]))
            runs["agent imports"].append(exit_time([sys.executable, "-c", agent_imports]))
            runs["component imports"].append(exit_time([sys.executable, "-c", component_imports]))
            runs["agent"].append(agent())
            runs["component"].append(component())
    best = {kind: min(samples) * 1000 for kind, samples in runs.items()}
    median = {kind: round(statistics.median(samples) * 1000, 1) for kind, samples in runs.items()}
    floor = {"name": "`python -c pass` (the interpreter's own start)", "value": best["python"]}
    return [
        entry(
            "agent cold start: `agentnet agent` spawned -> first 200 on /health", best["agent"], "ms", 100,
            higher_is_better=False, baseline=floor, median_ms=median["agent"], runs=repeat,
            imports_alone_ms=round(best["agent imports"], 1), python_alone_ms=round(best["python"], 1),
            how="best of the runs; /health polled every 2 ms; `imports_alone` is `python -c '" + agent_imports + "'`",
        ),
        entry(
            "component cold start: `agentnet component crdt-service` spawned -> first 200 on /health", best["component"],
            "ms", 100, higher_is_better=False, baseline=floor, median_ms=median["component"], runs=repeat,
            imports_alone_ms=round(best["component imports"], 1), python_alone_ms=round(best["python"], 1),
            how="best of the runs; /health polled every 2 ms; `imports_alone` is `python -c '" + component_imports + "'`",
        ),
        entry("the floor: `python -c pass`, spawn -> exit", best["python"], "ms", None, higher_is_better=False,
              median_ms=median["python"], runs=repeat, python=sys.executable),
        entry("the floor: interpreter + the agent's imports, spawn -> exit", best["agent imports"], "ms", None,
              higher_is_better=False, baseline=floor, median_ms=median["agent imports"], runs=repeat),
        entry("the floor: interpreter + the component's imports, spawn -> exit", best["component imports"], "ms", None,
              higher_is_better=False, baseline=floor, median_ms=median["component imports"], runs=repeat),
    ]  # fmt: skip


def main() -> None:
    args = arguments_or_load(__doc__, {"terms": term_load, "mixed": mixed_load, "routes": routes_load})
    if args is None:
        return  # this was the load generator
    load_average_before = [round(load, 2) for load in os.getloadavg()]  # the machine is shared: say how busy it was
    entries = bench_cold_starts(args.quick)
    with tempfile.TemporaryDirectory() as directory:
        up = Up(Path(directory) / "shared")
        try:
            routes, latencies = bench_routes(up, args.quick)
            entries += bench_errors(up, args.quick)
            entries += routes
        finally:
            up.stop()
        # Under `up` the nine agents share one e-graph and send each other nothing: the messages between
        # agents are counted where each holds its own, as in pods of their own.
        up = Up(Path(directory) / "per-agent", "--replica-per-agent")
        try:
            entries += bench_messages(up, args.quick)
        finally:
            up.stop()
    plot = RESULTS_DIR / "guides_latency.png"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot_latencies(latencies, plot)
    report("guides", entries, quick=args.quick, plot=str(plot.relative_to(REPO)), load_average_before=load_average_before)


if __name__ == "__main__":
    main()
