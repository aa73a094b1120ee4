"""Engine components benchmark: `python -m bench.bench_components_engine [--quick]` -> bench/results/components_engine.json.

Targets (issue 5): 10,000 merges/s through crdt-service (its batched NATS path, crdt.merge; HTTP figures
reported too); 1,000 saturations/s through egraph-service; p99 under load below 50 ms for simple routes and
below 200 ms for /egraph/saturate.

Every component runs as its own process, as in a pod (`agentnet component NAME`), on an embedded nats-server;
the load comes from a second process (this module with --load), which times each request client-side. Inputs
are built before the clock starts. Merges join δ-CRDT deltas of 9 simulated agents (one event each, drawn at
random from a pool of 500 events per agent), so nearly every merge is new to the cache while the service's
accumulated replica stays the size of such a network; 5,000 of those merges asked 20 times over measure the cache.
Figures "per CPU-second" divide by the CPU time the component's processes used (from /proc): what one core
given to the component does, whatever else the machine runs; the others are wall-clock rates on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.local.up import network_document_from
from agentnet_runtime.natsbin import EmbeddedNats, free_port

from .bench_core import distinct_terms, random_term
from .common import entry, load_from_second_process, percentile, process_tree_cpu, report, wait_for_http

REPO = Path(__file__).resolve().parents[1]
AGENTNET = str(Path(sys.executable).with_name("agentnet"))
COMPONENTS = ("crdt-service", "egraph-service", "stream-red")
BENCH_ENV = {**os.environ, "SATURATION_TIMEOUT_MS": "100"}  # the budget these figures were measured with (the guides' default is 5000)
AGENTS, EVENTS_PER_AGENT = 9, 500
TERM_POOL = 60_000


# --- inputs (built in the load process, before timing) ---------------------------------------------------


def agent_events(seed: int = 7) -> list[list[dict]]:
    """For each of 9 simulated agents, the wire form of each of its events as a one-event delta."""
    rng, pool = random.Random(seed), []
    for agent in range(AGENTS):
        egraph, events = EGraph(f"agent-{agent}.bench"), []
        while len(events) < EVENTS_PER_AGENT:
            before = egraph.clock
            egraph.add_term(random_term(rng, rng.randint(2, 5), "abcdefgh"))
            delta = egraph.delta_since(before)
            if delta:  # a term the agent already had makes no event
                events.append(delta.to_wire())
        pool.append(events)
    return pool


def merges(count: int, seed: int) -> list[dict]:
    """`count` merges of two events of two different agents; distinct pairs, so each is new to the cache."""
    pool, rng, seen, out = agent_events(), random.Random(seed), set(), []
    while len(out) < count:
        first, second = rng.sample(range(AGENTS), 2)
        pair = ((first, rng.randrange(EVENTS_PER_AGENT)), (second, rng.randrange(EVENTS_PER_AGENT)))
        if pair not in seen:
            seen.add(pair)
            out.append({"states": [pool[agent][event] for agent, event in pair]})
    return out


@functools.cache
def all_terms() -> list[str]:
    """Distinct small terms (3..9 nodes, 5 variables) in a random order; every run takes its own slice."""
    pool = [str(term) for term in distinct_terms(TERM_POOL, seed=11)]
    random.Random(11).shuffle(pool)
    return pool


def terms(count: int, offset: int) -> list[str]:
    if offset + count > TERM_POOL:
        raise ValueError(f"the term pool has {TERM_POOL} terms")
    return all_terms()[offset : offset + count]


def request_bodies(kind: str, count: int, per_request: int, offset: int) -> list[bytes | None]:
    """One body per request: `count` requests of `per_request` items each."""
    if kind == "get":
        return [None] * count
    if kind == "merge":
        return [json.dumps(m).encode() for m in merges(count, seed=offset)]
    items = terms(count * per_request, offset)
    groups = [items[i : i + per_request] for i in range(0, len(items), per_request)]
    if kind == "term":  # single terms, {"term": ...}
        return [json.dumps({"term": group[0]}).encode() for group in groups]
    return [json.dumps({"terms": group}).encode() for group in groups]


# --- the load process -------------------------------------------------------------------------------------


async def http_load(spec: dict) -> dict:
    """Send the bodies to one URL from `concurrency` keep-alive connections, back to back; time each request."""
    bodies = request_bodies(spec["kind"], spec["requests"], spec.get("per_request", 1), spec.get("offset", 0))
    latencies: list[float] = []
    queue = iter(bodies)
    limits = httpx.Limits(max_connections=spec["concurrency"], max_keepalive_connections=spec["concurrency"])
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            for body in queue:
                start = time.perf_counter()
                if body is None:
                    response = await client.get(spec["url"])
                else:
                    response = await client.post(spec["url"], content=body, headers={"content-type": "application/json"})
                latencies.append(time.perf_counter() - start)
                if response.status_code >= 300:
                    raise RuntimeError(f"{spec['url']} answered {response.status_code}: {response.text[:300]}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "items": len(bodies) * spec.get("per_request", 1), "latencies": latencies}


async def nats_merge_load(spec: dict) -> dict:
    """Batches of merges on crdt.merge (request/reply), `concurrency` requests in flight."""
    import nats

    work = merges(spec["merges"], seed=spec.get("offset", 0))
    batches = [json.dumps({"merges": work[i : i + spec["batch"]], "withState": spec["with_state"]}).encode()
               for i in range(0, len(work), spec["batch"])] * spec.get("times", 1)  # fmt: skip
    queue, latencies, cached = iter(batches), [], [0]
    nc = await nats.connect(spec["nats"], max_outstanding_pings=10)
    try:

        async def worker() -> None:
            for payload in queue:
                start = time.perf_counter()
                reply = await nc.request("crdt.merge", payload, timeout=60)
                latencies.append(time.perf_counter() - start)
                results = orjson.loads(reply.data)["results"]  # (the client's parsing shares the 2 cores)
                errors = [r for r in results if "error" in r]
                if errors:
                    raise RuntimeError(f"crdt.merge refused a merge: {errors[0]}")
                cached[0] += sum(1 for r in results if r["cached"])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
        elapsed = time.perf_counter() - start
    finally:
        await nc.close()
    return {"seconds": elapsed, "items": len(work) * spec.get("times", 1), "cached": cached[0], "latencies": latencies}


async def drain_stream(spec: dict) -> dict:
    """Queue terms on stream-red over HTTP, then poll /status until all are processed: terms/s and the lag seen."""
    queued = await http_load({**spec, "kind": "terms"})
    most_lag, status = 0, {}
    async with httpx.AsyncClient(timeout=10) as client:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = (await client.get(spec["status"])).json()
            most_lag = max(most_lag, status["lag"]["total"])
            if status["processed"] >= spec["expect"] and status["lag"]["total"] == 0:
                break
            await asyncio.sleep(0.02)
    done = time.perf_counter()
    return {**queued, "done_at": done, "most_lag": most_lag, "status": status}


def run_load(spec: dict) -> dict:
    """Run one load spec in a second process; its JSON result."""
    return load_from_second_process("bench.bench_components_engine", spec)


# --- the components -----------------------------------------------------------------------------------------


class Components:
    """crdt-service, egraph-service and stream-red, each an `agentnet component` process on one nats-server."""

    def __init__(self, nats_url: str, directory: Path):
        document = network_document_from({"metadata": {"name": "bench"}, "spec": {"agents": 9, "topology": {"kind": "ramanujan", "degree": 4}}})
        config = directory / "network.json"
        config.write_text(json.dumps(document))
        self.ports = {name: free_port() for name in COMPONENTS}
        self.processes = [
            subprocess.Popen([AGENTNET, "component", name, "--config", str(config), "--nats-url", nats_url,
                              "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=BENCH_ENV)
            for name, port in self.ports.items()
        ]  # fmt: skip
        for name in COMPONENTS:
            wait_for_http(self.url(name, "/health"), 60)

    def cpu_seconds(self, component: str) -> float:
        """CPU time the component's process and its children (stream workers) have used so far."""
        return process_tree_cpu(self.processes[COMPONENTS.index(component)].pid)

    def url(self, component: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[component]}{path}"

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)


# --- figures -------------------------------------------------------------------------------------------------


def latency_entry(name: str, result: dict, target_ms: float, floor: dict | None = None, **details) -> dict:
    """p99 of a load run; `floor` (a run against GET /health of the same process) is the baseline."""
    latencies = result["latencies"]
    baseline = None
    if floor is not None:
        baseline = {"name": "GET /health of the same process, same load (the HTTP floor)", "value": percentile(floor["latencies"], 0.99) * 1000}
    return entry(
        name, percentile(latencies, 0.99) * 1000, "ms", target_ms, higher_is_better=False, baseline=baseline,
        p50_ms=round(statistics.median(latencies) * 1000, 3), max_ms=round(max(latencies) * 1000, 3),
        requests=len(latencies), **details,
    )  # fmt: skip


def health_floor(components: "Components", component: str, quick: bool) -> dict:
    return run_load({"mode": "http", "url": components.url(component, "/health"), "kind": "get",
                     "requests": 500 if quick else 2_000, "concurrency": 2})  # fmt: skip


def bench_crdt(components: Components, nats_url: str, quick: bool) -> list[dict]:
    count, batch = (20_000 if quick else 100_000), 250
    load = {"mode": "nats-merge", "nats": nats_url, "merges": count, "batch": batch, "concurrency": 2, "with_state": True, "offset": 1}
    cpu_before = components.cpu_seconds("crdt-service")
    new = run_load(load)
    cpu_middle = components.cpu_seconds("crdt-service")
    # Merges asked before, as many: 5,000 of them 20 times over (the cache holds 10,000 by default).
    repeated = run_load({**load, "merges": 5_000, "times": count // 5_000})
    cpu_new, cpu_repeated = cpu_middle - cpu_before, components.cpu_seconds("crdt-service") - cpu_middle
    http_run = run_load({"mode": "http", "url": components.url("crdt-service", "/merge"), "kind": "merge",
                         "requests": 2_000 if quick else 5_000, "concurrency": 2, "offset": 2})  # fmt: skip
    state = run_load({"mode": "http", "url": components.url("crdt-service", "/state"), "kind": "get",
                      "requests": 200 if quick else 500, "concurrency": 2})  # fmt: skip
    health = httpx.get(components.url("crdt-service", "/health")).json()
    floor = health_floor(components, "crdt-service", quick)
    how = "merges of two one-event deltas from 9 simulated agents; the reply carries each merged state (wire form)"
    return [
        entry(
            "crdt-service merges/s, NATS crdt.merge batches (new merges)", new["items"] / new["seconds"], "merges/s", 10_000,
            higher_is_better=True, baseline={"name": "merges asked before (merge cache)", "value": repeated["items"] / repeated["seconds"]},
            merges=new["items"], batch=batch, in_flight=2, cache_hits=new["cached"],
            batch_p99_ms=round(percentile(new["latencies"], 0.99) * 1000, 2), how=how,
        ),
        entry(
            "crdt-service merges per CPU-second of its process, NATS batches (new merges)", new["items"] / cpu_new, "merges/s",
            10_000, higher_is_better=True, baseline={"name": "merges asked before (merge cache)", "value": repeated["items"] / cpu_repeated},
            cpu_seconds=round(cpu_new, 2),
            how="what one core given to crdt-service does, whatever else the machine is running (CPU time from /proc)",
        ),
        entry(
            "crdt-service merges/s, NATS, merges asked before (cache hits)", repeated["items"] / repeated["seconds"], "merges/s", 10_000,
            higher_is_better=True, cache_hits=repeated["cached"], merges=repeated["items"],
        ),
        entry(
            "crdt-service merges/s over HTTP (POST /merge, one merge a request)", http_run["items"] / http_run["seconds"],
            "merges/s", None, higher_is_better=True, connections=2,
        ),
        latency_entry("crdt-service POST /merge p99 under load (one merge a request)", http_run, 50, floor, connections=2, how=how),
        latency_entry("crdt-service GET /state p99 under load", state, 50, floor, connections=2,
                      replica_nodes=httpx.get(components.url("crdt-service", "/state")).json()["nodes"], cache=health["cache"]),
    ]  # fmt: skip


def bench_egraph(components: Components, quick: bool) -> list[dict]:
    url = components.url("egraph-service", "/saturate")
    batches, per_request = (40 if quick else 100), 50
    cpu_before = components.cpu_seconds("egraph-service")
    distinct = run_load({"mode": "http", "url": url, "kind": "terms", "requests": batches, "per_request": per_request,
                         "concurrency": 2, "offset": 0})  # fmt: skip
    cpu = components.cpu_seconds("egraph-service") - cpu_before
    repeated = run_load({"mode": "http", "url": url, "kind": "terms", "requests": batches, "per_request": per_request,
                         "concurrency": 2, "offset": 0})  # fmt: skip
    offset = batches * per_request
    single = run_load({"mode": "http", "url": url, "kind": "term", "requests": 1_000 if quick else 3_000,
                       "concurrency": 2, "offset": offset})  # fmt: skip
    extract = run_load({"mode": "http", "url": components.url("egraph-service", "/extract"), "kind": "term",
                        "requests": 1_000 if quick else 3_000, "concurrency": 2, "offset": offset})  # fmt: skip
    floor = health_floor(components, "egraph-service", quick)
    how = "distinct terms of 3..9 nodes over 5 variables, all three families, SATURATION_TIMEOUT_MS 100"
    return [
        entry(
            "egraph-service saturations/s (distinct terms, 50 a request)", distinct["items"] / distinct["seconds"], "saturations/s",
            1_000, higher_is_better=True, baseline={"name": "the same terms again (memo)", "value": repeated["items"] / repeated["seconds"]},
            terms=distinct["items"], connections=2, how=how,
        ),
        entry(
            "egraph-service saturations per CPU-second of its process (distinct terms, 50 a request)", distinct["items"] / cpu,
            "saturations/s", 1_000, higher_is_better=True, cpu_seconds=round(cpu, 2),
            how="what one core given to egraph-service does, whatever else the machine is running (CPU time from /proc)",
        ),
        entry(
            "egraph-service saturations/s (one distinct term a request)", single["items"] / single["seconds"], "saturations/s",
            1_000, higher_is_better=True, terms=single["items"], connections=2,
        ),
        latency_entry("egraph-service POST /saturate p99 under load (one distinct term a request)", single, 200, floor,
                      connections=2, how=how),
        latency_entry("egraph-service POST /extract p99 under load (terms saturated before: memo)", extract, 50, floor, connections=2),
    ]  # fmt: skip


def bench_stream(components: Components, quick: bool) -> list[dict]:
    requests, per_request = (20 if quick else 50), 100
    cpu_before = components.cpu_seconds("stream-red")
    start = time.perf_counter()
    drained = run_load({"mode": "drain", "url": components.url("stream-red", "/terms"), "status": components.url("stream-red", "/status"),
                        "requests": requests, "per_request": per_request, "concurrency": 2, "offset": 50_000,
                        "expect": requests * per_request})  # fmt: skip
    elapsed = time.perf_counter() - start  # includes starting the load process: a lower bound on the rate
    cpu = components.cpu_seconds("stream-red") - cpu_before
    status = run_load({"mode": "http", "url": components.url("stream-red", "/status"), "kind": "get",
                       "requests": 500 if quick else 2_000, "concurrency": 2})  # fmt: skip
    floor = health_floor(components, "stream-red", quick)
    terms_count = requests * per_request
    return [
        entry(
            "stream-red: terms queued over HTTP -> rewritten and handed on", terms_count / elapsed, "terms/s", None,
            higher_is_better=True, terms=terms_count, most_lag_seen=drained["most_lag"], last_batch=drained["status"].get("lastBatch"),
            terms_per_cpu_second=round(terms_count / cpu, 1), cpu_seconds=round(cpu, 2),
            how="RED family (commutativity, associativity) on distinct terms of 3..9 nodes, batches of 128, 100 ms budget a "
                "batch; no agents running (deltas published to no one); wall time including the load process's start",
        ),
        latency_entry("stream-red POST /terms p99 under load (100 terms a request, while it rewrites them)", drained, 50, floor,
                      connections=2),
        latency_entry("stream-red GET /status p99 under load", status, 50, floor, connections=2),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the load-generator process: a JSON spec
    args = parser.parse_args()
    if args.load:
        spec = json.loads(args.load)
        mode = {"http": http_load, "nats-merge": nats_merge_load, "drain": drain_stream}[spec["mode"]]
        print(json.dumps(asyncio.run(mode(spec))))
        return
    entries: list[dict] = []
    with tempfile.TemporaryDirectory() as directory, EmbeddedNats(Path(directory) / "nats") as nats:
        components = Components(nats.url, Path(directory))
        try:
            entries += bench_crdt(components, nats.url, args.quick)
            entries += bench_egraph(components, args.quick)
            entries += bench_stream(components, args.quick)
        finally:
            components.stop()
    report("components_engine", entries, quick=args.quick)


if __name__ == "__main__":
    main()
