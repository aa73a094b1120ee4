"""What watching a large network costs: `python -m bench.bench_scale_views [--quick]` -> bench/results/scale_views.json.

Issue 21 (every part scales): at 1,000 agents (and 10,000, the stretch)
- the dashboard's layout (core/layout.py), by topology kind, against ForceAtlas2 at 256 agents (what
  the dashboard used before, measured in the same run; spring needs scipy from 500 agents on);
- the dashboard's and the orchestrator's work per heartbeat and per interval: a heartbeat taken into the
  membership, an update built and encoded for the pages, the orchestrator's sweep and its network.status
  summary; per interval as a share of one core (the interval is the agents' default, 1 s);
- the timeline's append of one interval's events (one per agent) into a DuckDB log of 100,000 events,
  with retention on, and its retention report (both scan the log: linear in what is kept, not in agents);
- the operator's network.json per topology kind at the resource's limits (1,000 agents; complete 128;
  ramanujan degree 64) and at 10,000 agents (past the resource's limit), and the most agents of a ring
  that fit under the ConfigMap's 1 MiB.

Real parts, in process: the components' own classes and functions on networks the operator's own
network_config renders; DuckDB in a temp dir. No NATS: what is measured is the work a message causes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import networkx as nx

from agentnet_operator.children import CONFIG_MAP_LIMIT, config_size, network_config
from agentnet_operator.model import MAX_COMPLETE_AGENTS, MAX_DEGREE, AgentNetwork
from agentnet_runtime.components import create as create_component
from agentnet_runtime.config import NetworkConfig, load_config
from agentnet_runtime.core.layout import positions
from agentnet_runtime.timeline.events import Event
from agentnet_runtime.timeline.store import Timeline

from .common import entry, measure, report

INTERVAL = 1.0  # seconds: the agents' default heartbeat interval


def spec(agents: int, kind: str, **topology) -> dict:
    if kind == "ramanujan":
        topology.setdefault("degree", 4)
    return {"apiVersion": "agentnet.dev/v1alpha1", "kind": "AgentNetwork", "metadata": {"name": "bench"},
            "spec": {"agents": agents, "topology": {"kind": kind, **topology}}}  # fmt: skip


def layouts(sizes: list[int]) -> list[dict]:
    results = []
    small = nx.random_regular_graph(4, 256, seed=0)
    baseline = measure(lambda: nx.forceatlas2_layout(small, seed=0, strong_gravity=True), repeat=1)
    base = {"name": "forceatlas2, 256 agents", "value": baseline.best * 1000}
    for agents in sizes:
        for kind, topology in (("ring", {}), ("torus", {"dimensions": 2}), ("torus", {"dimensions": 3}),
                               ("ramanujan", {"seed": 0})):  # fmt: skip
            # An expander of this size with degree 4 (a random regular graph: the layout does not check the bound).
            graph = nx.random_regular_graph(4, agents, seed=0) if kind == "ramanujan" else None
            if graph is None:
                from agentnet_runtime.core.topology import build_topology

                graph = build_topology(kind, agents, **topology)
            neighbours = [sorted(graph.neighbors(i)) for i in range(agents)]
            timing = measure(lambda: positions({"kind": kind, **topology}, neighbours), repeat=3)
            label = f"{kind}{'-' + str(topology['dimensions']) + 'd' if kind == 'torus' else ''}"
            results.append(entry(f"layout {label}, {agents} agents", timing.best * 1000, "ms", None,
                                 higher_is_better=False, baseline=base))  # fmt: skip
    return results


def dashboard_and_orchestrator(sizes: list[int]) -> list[dict]:
    results = []
    for agents in sizes:
        network = NetworkConfig.from_json(network_config(_unchecked(agents, "ring")))
        beats = [{"digest": f"{i % 3:064x}", "nodes": 10, "events": 7} for i in range(agents)]
        for name in ("dashboard", "agent-orchestrator"):
            config = load_config(env={}, network=network, agent_ids=(), nats_url="nats://127.0.0.1:1")
            component = create_component(name, config)
            members = component.membership
            now = time.monotonic()

            def all_beats():
                for i, beat in enumerate(beats):
                    members.heartbeat(i, beat, now)

            timing = measure(all_beats, repeat=3)
            results.append(entry(f"{name}: a heartbeat taken in, {agents} agents", timing.best / agents * 1e6, "us",
                                 None, higher_is_better=False))  # fmt: skip
            if name == "dashboard":
                work = lambda: component.update(full=False) and json.dumps(component.update(full=False))  # noqa: E731
                what = "update built and encoded"
                per_interval = 1 / component.update_interval
            else:
                sweeps = 1 / min(component.interval / 10, 0.25)

                def work():
                    asyncio.run(component.sweep())
                    json.dumps(component.status())

                what = "sweep and status summary"
                per_interval = 1.0  # the summary: once an interval; sweeps are counted below
            timing = measure(work, repeat=3)
            results.append(entry(f"{name}: {what}, {agents} agents", timing.best * 1000, "ms", None,
                                 higher_is_better=False))  # fmt: skip
            if name == "agent-orchestrator":
                sweep = measure(lambda: asyncio.run(component.sweep()), repeat=3).best
                share = (timing.best - sweep) * per_interval + sweep * sweeps
            else:
                share = timing.best * per_interval
            heartbeats = measure(all_beats, repeat=3).best  # one interval's heartbeats of every agent
            results.append(entry(f"{name}: share of a core at rest, {agents} agents", (share + heartbeats) / INTERVAL,
                                 "cores", None, higher_is_better=False, heartbeats_per_interval=agents))  # fmt: skip
    return results


def timeline(agents: int, kept: int) -> list[dict]:
    def events(start: int, count: int) -> list[Event]:
        now = time.time()
        return [Event(origin=i % agents, replica=f"agent-{i % agents}", seq=start + i, lamport=start + i,
                      clock={str(i % agents): start + i}, kind="send", colour="RED", subject=f"agent.{i % agents}.state",
                      payload={"to": (i + 1) % agents, "nodes": 3}, time=now + i * 1e-6) for i in range(count)]  # fmt: skip

    with tempfile.TemporaryDirectory() as directory:
        log = Timeline(Path(directory) / "timeline.duckdb", max_events=kept)
        log.append(events(0, kept))
        counter = iter(range(1, 1_000_000))
        append = measure(lambda batch: log.append(batch), setup=lambda: events(kept * next(counter), agents),
                         repeat=5, cpu=False)  # fmt: skip
        retention = measure(log.retention, repeat=5, cpu=False)
        log.close()
    return [
        entry(f"timeline: one interval's events of {agents} agents appended, {kept} kept", append.best * 1000, "ms",
              None, higher_is_better=False),
        entry(f"timeline: retention report, {kept} kept", retention.best * 1000, "ms", None, higher_is_better=False),
    ]  # fmt: skip


def config_sizes(quick: bool) -> list[dict]:
    """network.json at the resource's own limits (1,000 agents; a complete graph 128; degree 64), then past them."""
    results = []
    cases = [(1000, "ring", {}), (1000, "torus", {"dimensions": 2}), (1000, "torus", {"dimensions": 3}),
             (MAX_COMPLETE_AGENTS, "complete", {}), (1000, "ramanujan", {"degree": 4})]  # fmt: skip
    if not quick:
        cases += [(1000, "ramanujan", {"degree": MAX_DEGREE}), (10_000, "ring", {}), (10_000, "torus", {"dimensions": 2}),
                  (10_000, "torus", {"dimensions": 3})]  # fmt: skip
    for agents, kind, topology in cases:
        label = f"{kind}{'-' + str(topology['dimensions']) + 'd' if kind == 'torus' else ''}"
        degree = f" degree {topology['degree']}" if "degree" in topology else ""
        size = config_size(network_config(_unchecked(agents, kind, **topology)))
        results.append(entry(f"network.json, {label}{degree}, {agents} agents", size, "bytes", CONFIG_MAP_LIMIT,
                             higher_is_better=False))  # fmt: skip
    if not quick:
        results.append(entry("network.json: most agents of a ring under 1 MiB", _most_that_fit("ring", 20_000), "agents",
                             None, higher_is_better=True))  # fmt: skip
    return results


def _unchecked(agents: int, kind: str, **topology) -> AgentNetwork:
    """A network of `agents`, past the resource's own limit on agents if need be (the stretch)."""
    network = AgentNetwork.model_validate(spec(min(agents, 100), kind, **topology))
    network.spec = network.spec.model_copy(update={"agents": agents})
    return network


def _most_that_fit(kind: str, top: int) -> int:
    low, high = 1, top  # fits at low; search the largest that fits
    while low < high:
        middle = (low + high + 1) // 2
        size = config_size(network_config(_unchecked(middle, kind)))
        low, high = (middle, high) if size <= CONFIG_MAP_LIMIT else (low, middle - 1)
    return low


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 agents only; no 5,000-agent ramanujan")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [1000, 10_000]
    entries = [*layouts(sizes), *dashboard_and_orchestrator(sizes), *timeline(1000, 100_000), *config_sizes(args.quick)]
    report("scale_views", entries, interval_seconds=INTERVAL)


if __name__ == "__main__":
    main()
