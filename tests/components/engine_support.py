"""Helpers for the engine component tests (streams, crdt-service, egraph-service)."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import REGISTRY
from runtime_support import FAST, network, runtime_config

from agentnet_runtime import natsclient
from agentnet_runtime.config import RuntimeConfig


def metric(name: str, **labels: str) -> float:
    """A sample of the process's Prometheus registry (0 when it has not been set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def quiet_agents(nats_url: str) -> RuntimeConfig:
    """All 9 agents of the components' test network, with rewriting off: they only replicate,
    so an equality they hold must have been derived by someone else (a stream)."""
    return runtime_config(network(9), nats_url, settings=replace(FAST, node_cap=0))


async def consumer_lag(nats_url: str, consumer: str) -> int:
    """Pending + unacknowledged messages of a work-queue consumer, read from NATS."""
    nc = await natsclient.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info(natsclient.WORK_STREAM, consumer)
        return info.num_pending + info.num_ack_pending
    finally:
        await nc.close()


async def publish_work(nats_url: str, colour: str, payloads: list[bytes]) -> None:
    """Put messages on a colour's work queue (as any producer would), creating the stream if needed."""
    nc = await natsclient.connect(nats_url)
    try:
        js = nc.jetstream()
        await natsclient.ensure_work_stream(js)
        for payload in payloads:
            await js.publish(natsclient.work_subject(colour), payload)
    finally:
        await nc.close()
