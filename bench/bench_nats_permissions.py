"""What per-identity NATS users cost: `python -m bench.bench_nats_permissions [--quick]`
-> bench/results/nats_permissions.json.

Two nats-servers in the same run, both the managed network's generated configuration with TLS
(rig/natscluster.py, one server, a 9-agent network): one with every identity a user with its
grant (permissions.py), the other with the users left out (the baseline). On each, agent pod 0
publishes state to agent 1 (a subject its grant allows; pod 1 subscribes) and sends sync
requests that pod 1 answers (its reply goes through allow_responses, to pod 0's own inbox):
publish throughput, request/reply latency, and the time to connect (TLS handshake and login).
Rounds alternate between the servers; the best round of each counts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from agentnet_operator import nats_auth
from agentnet_runtime import natsclient, permissions
from bench.common import REPO, entry, percentile, report

sys.path.insert(0, str(REPO / "tests"))
from rig.natscluster import LoopbackCluster  # noqa: E402  (the operator's config on loopback)

PAYLOAD = b"x" * 256  # a small delta
AGENTS = {"agents": 9, "topology": {"kind": "ramanujan", "degree": 4}}
STATE, SYNC = "agent.1.state", "agent.1.sync"  # agent pod 0 may send both; pod 1 reads them


async def one_round(cluster: LoopbackCluster, messages: int, requests: int) -> dict:
    began = time.perf_counter()
    sender = await natsclient.connect(cluster.url, cluster.auth(permissions.agent_pod(0)), "bench-0")
    connect = time.perf_counter() - began
    receiver = await natsclient.connect(cluster.url, cluster.auth(permissions.agent_pod(1)), "bench-1")
    arrived = asyncio.Event()
    count = 0

    async def on_state(message) -> None:
        nonlocal count
        count += 1
        if count == messages:
            arrived.set()

    async def on_sync(message) -> None:
        await message.respond(PAYLOAD)

    await receiver.subscribe(STATE, cb=on_state)
    await receiver.subscribe(SYNC, cb=on_sync)
    await receiver.flush()
    start = time.perf_counter()
    for _ in range(messages):
        await sender.publish(STATE, PAYLOAD)
    await sender.flush()
    await asyncio.wait_for(arrived.wait(), 120)
    throughput = messages / (time.perf_counter() - start)
    latencies = []
    for _ in range(requests):
        sent = time.perf_counter()
        await sender.request(SYNC, PAYLOAD, timeout=5)
        latencies.append(time.perf_counter() - sent)
    await sender.close()
    await receiver.close()
    return {"throughput": throughput, "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "connect": connect}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    args = parser.parse_args()
    messages, requests, rounds = (5_000, 200, 2) if args.quick else (50_000, 2_000, 3)
    with LoopbackCluster(1, AGENTS) as secured, LoopbackCluster(1, AGENTS, users=False) as open_:
        results: dict[bool, list[dict]] = {True: [], False: []}
        for _ in range(rounds):
            for users, cluster in ((True, secured), (False, open_)):
                results[users].append(asyncio.run(one_round(cluster, messages, requests)))
        identities = len(nats_auth.network_grants(secured.network))
    best = {users: {"throughput": max(r["throughput"] for r in runs), "p50": min(r["p50"] for r in runs),
                    "p99": min(r["p99"] for r in runs), "connect": min(r["connect"] for r in runs)}
            for users, runs in results.items()}  # fmt: skip
    baseline = "the same TLS server without users"
    entries = [
        entry("publish throughput, agent pod user with its grant", best[True]["throughput"], "msg/s", None,
              higher_is_better=True, baseline={"name": baseline, "value": best[False]["throughput"]},
              messages=messages, payload_bytes=len(PAYLOAD)),
        entry("request/reply p50, agent pod users (reply via allow_responses)", best[True]["p50"] * 1e3, "ms", None,
              higher_is_better=False, baseline={"name": baseline, "value": best[False]["p50"] * 1e3}, requests=requests),
        entry("request/reply p99, agent pod users", best[True]["p99"] * 1e3, "ms", None,
              higher_is_better=False, baseline={"name": baseline, "value": best[False]["p99"] * 1e3}, requests=requests),
        entry("connect (TLS and login), agent pod user", best[True]["connect"] * 1e3, "ms", None,
              higher_is_better=False, baseline={"name": baseline, "value": best[False]["connect"] * 1e3}),
    ]  # fmt: skip
    report("nats_permissions", entries, quick=args.quick, rounds=rounds, users=identities,
           setup={"where": "loopback", "servers": 1, "tls": True})


if __name__ == "__main__":
    main()
