"""Every metric the chart's alert rules and Grafana panels read is exported by a real process:
the operator reconciling a network on the rig's API server, and `agentnet up` (every agent and
component of the example network in one process, each agent with a replica of its own) under traffic,
each scraped at its /metrics."""

import asyncio
import time
import urllib.request

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_chart import options, queried_metrics, render
from test_runtime_up import LOOK, start_up, stop

from agentnet_runtime.agent import subjects
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse
from cluster_support import apply, small_network
from rig import wait_for

pytestmark = pytest.mark.cluster


def scraped(url: str) -> set[str]:
    """The sample names a /metrics page carries now (families declared without samples do not count)."""
    with urllib.request.urlopen(url, timeout=LOOK) as response:
        text = response.read().decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def nats_url(log) -> str:
    """The embedded nats-server's URL, as `agentnet up` logs it."""
    return next(line.split()[2].rstrip(",") for line in log.read_text().splitlines() if "nats-server (JetStream)" in line)


async def publish_garbage(url: str) -> None:
    """A heartbeat that is not JSON (refused: agentnet_messages_refused_total) and a retention report the
    dashboard cannot read (an error: agentnet_errors_total); a panel reads both."""
    client = await nats.connect(url)
    try:
        await client.publish(subjects.for_agent(subjects.HEARTBEAT, 0), b"not json")
        await client.publish(subjects.TIMELINE_RETENTION, b"not json")
        await client.flush()
    finally:
        await client.close()


def traffic(base: str, log) -> None:
    """What a network under use does: terms submitted, merges and saturations asked twice (a cache
    miss, then a hit), a request with no route, a malformed NATS message."""
    with httpx.Client(base_url=base, timeout=LOOK) as http:
        assert http.post("/agent/0/message", json={"term": "x*(y+z)"}).status_code == 202
        wire = EGraph("scrape")
        wire.add_term(parse("f(x, 2)"))
        states = {"states": [wire.to_wire()]}
        assert [http.post("/crdt/merge", json=states).json()["cached"] for _ in range(2)] == [False, True]
        assert [http.post("/egraph/saturate", json={"term": "x*1"}).json()["memoised"] for _ in range(2)] == [False, True]
        assert http.get("/no/such/route").status_code == 404
    asyncio.run(publish_garbage(nats_url(log)))


def test_every_metric_of_the_alerts_and_panels_is_exported_by_a_running_process(
        operator, kubectl, namespace, rig_bin, tmp_path):
    queried = queried_metrics(render(rig_bin, *options("monitoring", "demo")))
    apply(kubectl, namespace, small_network())
    wait_for(lambda: operator.metric("agentnet_operator_reconciles_total") > 0, 60, "the operator to reconcile")
    operator_metrics = f"http://127.0.0.1:{operator.metrics_port}/metrics"

    # Each agent its own replica, as in a cluster of one agent per pod: agents that share an e-graph (up's
    # default) never sync with each other, and the panels describe the syncs between pods.
    process, base, log = start_up(tmp_path, tmp_path / "data", "up.log", "--replica-per-agent")
    try:
        traffic(base, log)
        missing = queried
        deadline = time.monotonic() + 60  # syncs and convergence ratios come with the agents' first rounds
        while missing and time.monotonic() < deadline:
            missing = queried - scraped(operator_metrics) - scraped(f"{base}/metrics")
            time.sleep(0.5)
        assert missing == set(), f"the chart reads metrics no process exports: {sorted(missing)}"
    finally:
        stop(process, log)
