"""transduction-2tdx benchmark: `python -m bench.bench_components_transduction [--quick]`
-> bench/results/components_transduction.json.

Two 9-agent ramanujan networks, each on its own nats-server, joined by transduction-2tdx
over loopback HTTP with INTERVAL_MS 500 (the default) and MAX_LATENCY_MS 1000 (set: the measurements before
the guides' default of 100 ms were made with 1000):
  - "east" runs in this process (agents, its nats-server, its service on an HttpServer),
    so a burst of terms can be submitted straight to its agents;
  - "west" is `agentnet up` in a second process, its service mounted at /sync and set to
    exchange with east through the AgentNetwork's components[].settings.VERS_ENDPOINT.
Measured: time from the first term of a burst on east to one digest on all 18 agents
(against the same burst on east alone), how long a restarted (empty) west takes to catch
up, and, with east stopped, the round trip of POST /sync/exchange and GET /sync/status on
west from this process ("p99 under 50 ms for simple routes").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from agentnet_runtime import components
from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.config import NetworkConfig, load_config
from agentnet_runtime.core.terms import Term
from agentnet_runtime.local.up import LOCAL_SETTINGS, network_document_from
from agentnet_runtime.natsbin import EmbeddedNats, free_port
from agentnet_runtime.web import HttpServer, tune_collector

from .bench_runtime import burst_convergence
from .common import burst, converged
from .common import entry, percentile, report, wait_for_http

AGENTNET = str(Path(sys.executable).with_name("agentnet"))
NAME = "transduction-2tdx"
TOPOLOGY = {"kind": "ramanujan", "degree": 4}
# East's agents run with the timers `agentnet up` gives west, so the two sides match.
SETTINGS = LOCAL_SETTINGS


def agent_network(name: str, peer: str) -> dict:
    """An AgentNetwork object (as in YAML) of 9 agents whose transduction-2tdx exchanges with `peer`."""
    return {
        "apiVersion": "agentnet.dev/v1alpha1", "kind": "AgentNetwork", "metadata": {"name": name},
        "spec": {"agents": 9, "topology": TOPOLOGY, "components": [{"name": NAME, "settings": {"VERS_ENDPOINT": peer, "MAX_LATENCY_MS": "1000"}}]},
    }  # fmt: skip


class West:
    """`agentnet up` of the west network in its own process; restartable on the same port."""

    def __init__(self, directory: Path, east_url: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.file = directory / "west.yaml"
        self.file.write_text(yaml.safe_dump(agent_network("west", east_url)))
        self.log = directory / "west.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Start it; seconds until its /sync/status answers."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([AGENTNET, "up", "-f", str(self.file), "--port", str(self.port)],
                                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        return wait_for_http(f"{self.url}/sync/status", 60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    async def digests(self, client: httpx.AsyncClient) -> set[str]:
        try:
            status = (await client.get(f"{self.url}/status")).json()
        except httpx.HTTPError:
            return set()
        return {agent["digest"] for agent in status["agents"].values()}


async def one_digest(east: AgentHost, west: West, client: httpx.AsyncClient, timeout: float) -> float:
    """Seconds until every east agent is settled and every west agent holds east's digest."""
    start, deadline = time.perf_counter(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        if converged(east) and await west.digests(client) == {next(iter(east.digests().values()))}:
            return time.perf_counter() - start
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the two networks did not reach one digest within {timeout}s")


async def catch_up(east: AgentHost, west: West, client: httpx.AsyncClient, timeout: float) -> tuple[float, float]:
    """Seconds until west's 2tdx replica holds east's digest, and until all west's agents and east's hold one digest.

    East's digest as it is then, not as it was at the restart: agents rewriting a state that
    arrives piecemeal can make e-nodes congruent to ones they have not received yet (their ids
    name other children), and those flow back to east.
    """
    start, deadline, replica = time.perf_counter(), time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        digests = set(east.digests().values())
        if len(digests) == 1:
            if replica is None and (await client.get(f"{west.url}/sync/status")).json()["replica"]["digest"] in digests:
                replica = time.perf_counter() - start
            if replica is not None and converged(east) and await west.digests(client) == digests:
                return replica, time.perf_counter() - start
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the restarted west did not catch up within {timeout}s")


async def bridged_burst(nats_url: str, port: int, west: West, terms: list[Term]) -> dict:
    """The bridged run, east served on `port`: burst on east, one digest; then west restarted empty, one digest again."""
    east_url = f"http://127.0.0.1:{port}"
    network = NetworkConfig.from_json(network_document_from(agent_network("east", f"{west.url}/sync")))
    config = load_config(env={}, network=network, agent_ids=tuple(range(9)), nats_url=nats_url, agent=SETTINGS)
    host, service = AgentHost(config), components.create(NAME, config.with_(agent_ids=()))
    http = HttpServer(service.app(), "127.0.0.1", port)
    await asyncio.to_thread(west.start)
    try:
        await host.start()
        await asyncio.wait_for(host.ready.wait(), 30)
        await service.start()
        await http.start()
        async with httpx.AsyncClient(timeout=5) as client:
            await one_digest(host, west, client, 30)  # both empty: the bridge is up
            start = time.perf_counter()
            for index, term in enumerate(terms):  # round-robin over east's agents, as fast as possible
                agent = host.agents[index % 9]
                agent.submit(term)
                host.wake(agent)
            await one_digest(host, west, client, 300)
            converge = time.perf_counter() - start
            loop_trips = (await client.get(f"{east_url}/status")).json()["roundTripMs"]
            nodes = len(host.agents[0].egraph)

            await asyncio.to_thread(west.stop)
            ready = await asyncio.to_thread(west.start)
            replica_caught_up, agents_caught_up = await catch_up(host, west, client, 120)
    finally:
        await http.stop()
        await service.stop()
        await host.stop()
    return {"converge": converge, "nodes": nodes, "loop_round_trip_ms": loop_trips, "restart_ready": ready,
            "replica_caught_up": replica_caught_up, "catch_up": agents_caught_up}  # fmt: skip


def round_trips(west: West, requests: int) -> dict:
    """With east gone, sequential requests to west from this process; seconds per request."""
    status = httpx.get(f"{west.url}/sync/status", timeout=5).json()
    noop = {"network": "bench", "clock": {}, "digest": status["replica"]["digest"]}  # equal digest: nothing to send
    full = {"network": "bench", "clock": {}, "digest": "", "limit": 20_000}  # everything, up to 20,000 rows
    samples: dict[str, list[float]] = {"noop": [], "status": [], "full": []}
    with httpx.Client(base_url=f"{west.url}/sync", timeout=10) as client:
        for _ in range(requests):
            for kind, send in (("noop", lambda: client.post("/exchange", json=noop)), ("status", lambda: client.get("/status"))):
                start = time.perf_counter()
                send().raise_for_status()
                samples[kind].append(time.perf_counter() - start)
        for _ in range(max(3, requests // 100)):
            start = time.perf_counter()
            reply = client.post("/exchange", json=full)
            samples["full"].append(time.perf_counter() - start)
            rows = sum(len(b[2]) + len(b[3]) + len(b[4]) for b in reply.json()["delta"]["batches"])
    return {**samples, "full_rows": rows, "full_bytes": len(reply.content)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller burst and fewer requests")
    args = parser.parse_args()
    terms, requests = burst(200 if args.quick else 1000, seed=1), (300 if args.quick else 1000)
    tune_collector()  # east's agents run in this process: set the collector as their own process would
    with tempfile.TemporaryDirectory() as directory, EmbeddedNats() as nats:
        alone = asyncio.run(burst_convergence(nats.url, terms, SETTINGS))
        east_port = free_port()
        west = West(Path(directory), f"http://127.0.0.1:{east_port}")
        try:
            bridged = asyncio.run(bridged_burst(nats.url, east_port, west, terms))
            trips = round_trips(west, requests)
        finally:
            west.stop()
    ms = {kind: [s * 1000 for s in trips[kind]] for kind in ("noop", "status", "full")}
    how = "east in this process, west `agentnet up` in another, each with its own nats-server; 2tdx INTERVAL_MS 500, MAX_LATENCY_MS 1000"
    entries = [
        entry(
            f"two 9-agent networks reach one digest after {len(terms):,} terms on one side", bridged["converge"], "s", None,
            higher_is_better=False, baseline={"name": "the same burst on east alone (no bridge)", "value": alone["seconds"]},
            nodes=bridged["nodes"], loop_exchange_round_trip_ms=bridged["loop_round_trip_ms"],
            how=f"{how}; from the first submit on east to all 18 agents on one digest with east's agents settled",
        ),
        entry(
            "restarted (empty) west network catches up to east", bridged["catch_up"], "s", None, higher_is_better=False,
            process_start_to_ready_s=round(bridged["restart_ready"], 3), nodes=bridged["nodes"],
            west_2tdx_replica_caught_up_s=round(bridged["replica_caught_up"], 3),
            how="west's `agentnet up` stopped and started again (fresh agents, fresh 2tdx replica); "
                "from its /sync/status answering to its 9 agents on east's digest (and, before that, its 2tdx replica)",
        ),  # fmt: skip
        entry(
            "POST /sync/exchange round trip p99 (digests equal, no delta)", percentile(ms["noop"], 0.99), "ms", 50,
            higher_is_better=False, p50_ms=round(statistics.median(ms["noop"]), 3), requests=len(ms["noop"]),
            how="sequential requests from this process (a second process to west's `agentnet up`), east stopped",
        ),
        entry(
            "GET /sync/status p99", percentile(ms["status"], 0.99), "ms", 50, higher_is_better=False,
            p50_ms=round(statistics.median(ms["status"]), 3), requests=len(ms["status"]),
            how="interleaved with the exchanges above",
        ),
        entry(
            "POST /sync/exchange round trip, full state answer", statistics.median(ms["full"]), "ms", None,
            higher_is_better=False, best_ms=round(min(ms["full"]), 3), rows=trips["full_rows"], bytes=trips["full_bytes"],
            requests=len(ms["full"]), how="clock {} and limit 20,000 rows: west answers with its state, cut at 20,000 rows",
        ),
    ]
    report("components_transduction", entries, quick=args.quick, terms=len(terms))


if __name__ == "__main__":
    main()
