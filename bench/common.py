"""Shared benchmark plumbing: machine description, timing, result entries, JSON output.

Timings are the best of several repeats (the least disturbed run), on CPU time for
single-threaded work ("per core" targets) or wall time where threads or I/O count.
"""

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import httpx

from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.config import AgentSettings
from agentnet_runtime.core import compiled_modules
from agentnet_runtime.core.terms import Term

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
AGENTNET = str(Path(sys.executable).with_name("agentnet"))  # the console script of this environment


def machine_info() -> dict:
    """What the numbers were measured on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": [round(load, 2) for load in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def engine_build() -> str:
    """How the engine ran: which of its modules were compiled (setup.py)."""
    compiled = sorted(compiled_modules())
    return f"compiled by mypyc: {', '.join(compiled)}" if compiled else "pure Python (AGENTNET_PURE_PYTHON=1)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Timing:
    best: float  # seconds
    median: float
    runs: int


def measure(
    run: Callable[..., object], *, repeat: int = 5, setup: Callable[[], object] | None = None, cpu: bool = True
) -> Timing:
    """Time `run()` `repeat` times; `setup()` (untimed) runs before each and its result is passed in."""
    clock = time.process_time if cpu else time.perf_counter
    samples = []
    for _ in range(repeat):
        argument = setup() if setup is not None else None
        start = clock()
        run(argument) if setup is not None else run()
        samples.append(clock() - start)
    return Timing(best=min(samples), median=statistics.median(samples), runs=repeat)


def entry(
    name: str,
    value: float,
    unit: str,
    target: float | None,
    *,
    higher_is_better: bool,
    baseline: dict | None = None,
    **details,
) -> dict:
    """One result: value against its target, and against a baseline measured in the same run.

    `baseline` is {"name": ..., "value": ...} in the same unit; the ratio is value / baseline.
    """
    met = None if target is None else (value >= target if higher_is_better else value <= target)
    result = {
        "name": name,
        "value": significant(value),
        "unit": unit,
        "target": target,
        "higher_is_better": higher_is_better,
        "met": met,
    }
    if baseline is not None:
        result["baseline"] = {**baseline, "value": significant(baseline["value"])}
        result["ratio_to_baseline"] = significant(value / baseline["value"]) if baseline["value"] else None
    result.update(details)
    return result


def significant(value: float) -> float:
    """Four significant figures, as every figure in the results is written."""
    return float(f"{value:.4g}")


def report(name: str, entries: list[dict], **extra) -> Path:
    """Write bench/results/<name>.json, print a summary of it on stdout, and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {"benchmark": name, "machine": machine_info(), "engine": engine_build(), "argv": sys.argv[1:], **extra,
                "entries": entries}
    path.write_text(json.dumps(document, indent=2) + "\n")
    _print_table(entries)
    print(f"wrote {path}")
    return path


def _print_table(entries: list[dict]) -> None:
    for result in entries:
        mark = {True: "ok  ", False: "MISS", None: "    "}[result["met"]]
        sense = ">=" if result["higher_is_better"] else "<="
        target = "" if result["target"] is None else f" (target {sense} {result['target']:,})"
        ratio = f"  x{result['ratio_to_baseline']} vs {result['baseline']['name']}" if "baseline" in result else ""
        print(f"{mark} {result['name']}: {result['value']:,} {result['unit']}{target}{ratio}")


def percentile(samples: list[float], share: float) -> float:
    """The sample at `share` (0.99 = p99) of the sorted samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * share) - 1))]


def arguments_or_load(doc: str, loads: dict[str, Callable[[dict], Awaitable[dict]]]) -> argparse.Namespace | None:
    """A benchmark's command line: `--quick`, and `--load SPEC` for its load-generator process, which runs
    loads[spec["mode"]](spec), prints the JSON result and gets None back (nothing else to do)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the load-generator process: a JSON spec
    args = parser.parse_args()
    if args.load is None:
        return args
    spec = json.loads(args.load)
    print(json.dumps(asyncio.run(loads[spec["mode"]](spec))))
    return None


def load_from_second_process(module: str, spec: dict, timeout: float = 900, from_source: bool = False) -> dict:
    """Run `python -m <module> --load <spec>` (a load generator in a process of its own) and return its JSON.

    `from_source`: that process imports the engine from its Python source, not compiled (bench/from_source.py).
    """
    command = [sys.executable, "-m", *(["bench.from_source"] if from_source else []), module, "--load", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            cwd=Path(__file__).resolve().parent.parent)
    if result.returncode != 0:
        raise RuntimeError(f"load generator {module} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def wait_for_http(url: str, timeout: float) -> float:
    """Seconds until `url` answers 200 (polling every 2 ms)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            time.sleep(0.002)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


async def get_latencies(url: str, requests: int, concurrency: int, seconds: float) -> list[float]:
    """Issue GETs against `url` from `concurrency` keep-alive connections, back to back, for at most
    `seconds`; each request's latency in seconds (a non-2xx answer raises)."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=5) as client:

        async def worker(count: int) -> None:
            for _ in range(count):
                if time.monotonic() > deadline:
                    return
                start = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()

        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return latencies


def process_tree_cpu(root: int) -> float:
    """User + system CPU seconds of a process and its live descendants (from /proc)."""
    stats = {}
    for entry_dir in Path("/proc").iterdir():
        if entry_dir.name.isdigit():
            try:
                fields = (entry_dir / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry_dir.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime + stime
    tree, total = {root}, 0
    for _ in range(3):  # the component, its worker, any grandchild
        tree |= {pid for pid, (parent, _) in stats.items() if parent in tree}
    total = sum(stats[pid][1] for pid in tree if pid in stats)
    return total / os.sysconf("SC_CLK_TCK")


# --- workloads shared by the runtime benchmarks ---------------------------------------------------------

# Each agent its own replica: the runtime benchmarks measure replication between agents, as in pods of their own
# (by default the agents of a process share one e-graph and send each other nothing).
FAST = AgentSettings(sync_interval=0.25, heartbeat_interval=0.5, batch_delay=0.005, share_replica=False)


def random_term(rng: random.Random, leaves: int, names: list[str]) -> Term:
    if leaves == 1:
        return Term(rng.choice(names))
    left = rng.randint(1, leaves - 1)
    return Term(rng.choice("+*"), (random_term(rng, left, names), random_term(rng, leaves - left, names)))


def burst(count: int, seed: int) -> list[Term]:
    """`count` random sums and products of 2 or 3 variables out of 30, e.g. v3 * (v17 + v4)."""
    rng, names = random.Random(seed), [f"v{i}" for i in range(30)]
    return [random_term(rng, rng.randint(2, 3), names) for _ in range(count)]


def converged(host: AgentHost) -> bool:
    return len(set(host.digests().values())) == 1 and not any(a.dirty for a in host.agents.values())
