"""Dashboard benchmark: `python -m bench.bench_dashboard [--quick]` -> bench/results/dashboard.json.

Target (issue 9): with 256 agents the page loads in under 1 s, measured in the browser from
navigation start to the first frame with every agent drawn (the page's performance mark
`agentnet-graph-drawn`, set two animation frames after the first update was applied); and
updates arrive at least once a second.

Everything runs for real, as a cluster would run it: a 256-agent ramanujan network (degree 4)
in one `agentnet agent --agents 0-255` process, the dashboard as `agentnet component dashboard`
(both on an embedded nats-server; the agents publish their timeline on NATS, which the
dashboard reads), and Debian's headless Chromium driven by Playwright, a fresh browser
context (cold cache) per load. Also measured: the same under `agentnet up` (all in one process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from agentnet_runtime.local.up import network_document_from
from agentnet_runtime.natsbin import EmbeddedNats, free_port

from .common import entry, report

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "components")]  # the browser helpers of the tests
from dashboard_support import CHROMIUM, CHROMIUM_ARGS, Processes  # noqa: E402

AGENTS = 256
HEARTBEAT, SYNC = 1.0, 0.5  # `agentnet up`'s local timers
TARGET_LOAD_MS = 1000
TARGET_UPDATES_PER_S = 1.0

NETWORK = {
    "apiVersion": "agentnet.dev/v1alpha1", "kind": "AgentNetwork", "metadata": {"name": "bench"},
    "spec": {"agents": AGENTS, "topology": {"kind": "ramanujan", "degree": 4, "seed": 0},
             "components": [{"name": "dashboard", "settings": {"heartbeat_interval": str(HEARTBEAT)}}]},
}  # fmt: skip

# Read in the page once the graph is drawn: the mark, navigation timing, what was drawn, the JS heap.
READ_PAGE = """() => {
    const navigation = performance.getEntriesByType('navigation')[0];
    return {
        drawn_ms: performance.getEntriesByName('agentnet-graph-drawn')[0].startTime,
        response_end_ms: navigation.responseEnd,
        dom_content_loaded_ms: navigation.domContentLoadedEventEnd,
        agents_drawn: document.querySelectorAll('#nodes g.agent').length,
        alive_drawn: document.querySelectorAll('#nodes g.agent[data-state=alive]').length,
        js_heap_bytes: performance.memory ? performance.memory.usedJSHeapSize : null,
        steps_ms: Object.fromEntries(performance.getEntriesByType('mark')
            .filter(mark => mark.name.startsWith('agentnet-')).map(mark => [mark.name.slice(9), mark.startTime])),
    };
}"""


def wait_alive(state_url: str, timeout: float = 120) -> None:
    """Until the dashboard has heard every agent (so a load draws 256 live agents)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(state_url, timeout=5).json()["counts"]["alive"] == AGENTS:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the dashboard did not see {AGENTS} alive agents within {timeout}s")


def page_loads(url: str, loads: int) -> tuple[list[dict], float]:
    """`loads` cold loads of the page (a fresh context each), then updates per second on the last one."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--enable-precise-memory-info"]
        )
        try:
            for index in range(loads):
                context = chromium.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                page.goto(url)
                page.wait_for_function(
                    "window.agentnetDashboard && window.agentnetDashboard.graphDrawnAt !== null", timeout=30_000
                )
                results.append(page.evaluate(READ_PAGE))
                if index < loads - 1:
                    context.close()
            before, start = page.evaluate("window.agentnetDashboard.updates"), time.perf_counter()
            time.sleep(5)
            rate = (page.evaluate("window.agentnetDashboard.updates") - before) / (time.perf_counter() - start)
        finally:
            chromium.close()
    return results, rate


def update_size(events_url: str) -> int:
    """Bytes of one `update` event (the shared one, after the first full one)."""
    updates = []
    with httpx.stream("GET", events_url, timeout=10) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                updates.append(len(line))
                if len(updates) == 3:  # topology, the full update, one shared update
                    return updates[-1]
    raise RuntimeError("the event stream ended early")


def measure(label: str, page_url: str, base: str, loads: int) -> list[dict]:
    wait_alive(f"{base}/state")
    results, rate = page_loads(page_url, loads)
    assert all(r["agents_drawn"] == AGENTS for r in results), results
    drawn = [r["drawn_ms"] for r in results]
    heap = results[-1]["js_heap_bytes"]

    def median_ms(values) -> float:
        return round(statistics.median(values), 1)

    details = {
        "loads": loads,
        "samples_ms": [round(d, 1) for d in drawn],
        "best_ms": round(min(drawn), 1),
        "response_end_ms": median_ms(r["response_end_ms"] for r in results),
        "dom_content_loaded_ms": median_ms(r["dom_content_loaded_ms"] for r in results),
        # when each step of drawing happened (the page's marks), median over the loads
        "steps_ms": {step: median_ms(r["steps_ms"][step] for r in results) for step in results[0]["steps_ms"]},
        "alive_drawn": results[-1]["alive_drawn"],
        "js_heap_mb": round(heap / 2**20, 2) if heap else None,
        "update_bytes": update_size(f"{base}/events"),
    }
    load_name = f"{label}: page load to graph drawn, {AGENTS} agents (median)"
    rate_name = f"{label}: updates received per second, {AGENTS} agents"
    return [
        entry(load_name, statistics.median(drawn), "ms", TARGET_LOAD_MS, higher_is_better=False, **details),
        entry(rate_name, rate, "1/s", TARGET_UPDATES_PER_S, higher_is_better=True),
    ]


def bench_processes(work: Path, loads: int) -> list[dict]:
    """Agents and dashboard as separate processes (a cluster's shape), timeline over NATS."""
    (work / "network.json").write_text(json.dumps(network_document_from(NETWORK)))
    nats = EmbeddedNats(work / "nats").start()
    processes, port = Processes(work), free_port()
    common = ["--config", str(work / "network.json"), "--nats-url", nats.url, "--host", "127.0.0.1"]
    try:
        timers = ["--heartbeat-interval", str(HEARTBEAT), "--sync-interval", str(SYNC)]
        agents = ["--agents", f"0-{AGENTS - 1}", "--port", str(free_port()), *timers, "--log-level", "warning"]
        processes.start("agents", "agent", *common, *agents)
        processes.start("dashboard", "component", "dashboard", *common, "--port", str(port), "--log-level", "warning")
        processes.wait_healthy("dashboard", port)
        base = f"http://127.0.0.1:{port}"
        return measure("agents + dashboard processes", f"{base}/", base, loads)
    finally:
        processes.stop_all()
        nats.stop()


def bench_up(work: Path, loads: int) -> list[dict]:
    """`agentnet up`: agents and dashboard in one process, timeline in DuckDB."""
    import yaml

    (work / "network.yaml").write_text(yaml.safe_dump(NETWORK))
    processes, port = Processes(work), free_port()
    try:
        processes.start("up", "up", "-f", "network.yaml", "--port", str(port), "--data-dir", str(work / "data"))
        processes.wait_healthy("up", port, timeout=120)
        base = f"http://127.0.0.1:{port}/dashboard"
        return measure("agentnet up", f"{base}/", base, loads)
    finally:
        processes.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer loads")
    args = parser.parse_args()
    loads = 3 if args.quick else 7
    entries = []
    for bench in (bench_processes, bench_up):
        with tempfile.TemporaryDirectory(prefix="agentnet-bench-dashboard-") as work:
            entries += bench(Path(work), loads)
    report("dashboard", entries)


if __name__ == "__main__":
    main()
