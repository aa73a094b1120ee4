"""Connecting to NATS, the same way in every agentnet process, and the JetStream work queue.

Agents (agent/transport.py) and service components both connect through `connect`:
retry until the server answers (it may start after us), then reconnect forever.
nats-py is imported in a worker thread, so a process answers HTTP while it loads.

The work queue is one JetStream stream with work-queue retention; each stream-{colour}
component pulls from its own durable consumer, whose pending count is the lag the
operator's autoscaler reads (agentnet_operator reads the same names from here).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from agentnet_runtime.config import NatsAuth

log = logging.getLogger("agentnet.nats")

WORK_STREAM = "AGENTNET_WORK"
WORK_SUBJECTS = "work.*"


def work_subject(colour: str) -> str:
    """Subject a term for the `colour` (RED | BLUE | GREEN) stream component is published on."""
    return f"work.{colour.lower()}"


def component_work_subject(component: str) -> str:
    """Subject of a work-queue component's queue: stream-red reads work.red."""
    return work_subject(component.removeprefix("stream-"))


def work_consumer(component: str) -> str:
    """Durable consumer of a work-queue component, e.g. "stream-red"."""
    return component


async def connect(url: str, auth: NatsAuth = NatsAuth(), name: str = "agentnet", *, retry_every: float = 0.25, **callbacks: Any):
    """A connected nats-py client; waits (retrying) until the server answers."""
    nats = await asyncio.to_thread(importlib.import_module, "nats")
    while True:
        try:
            return await nats.connect(
                url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=retry_every,
                connect_timeout=2, ping_interval=5, max_outstanding_pings=2,
                **callbacks, **auth.connect_options(),
            )  # fmt: skip
        except Exception as error:  # OSError, timeouts, nats' NoServersError
            log.info("NATS at %s not reachable yet (%s); retrying", url, error)
            await asyncio.sleep(retry_every)


async def ensure_work_stream(js) -> None:
    """Create the work-queue stream; the server accepts the same config again, so every component may call it."""
    from nats.js.api import RetentionPolicy, StreamConfig

    await js.add_stream(StreamConfig(name=WORK_STREAM, subjects=[WORK_SUBJECTS], retention=RetentionPolicy.WORK_QUEUE))


async def work_lag(js, component: str) -> int:
    """Messages waiting for a work-queue component: its consumer's pending plus unacknowledged;
    before the consumer exists, what waits on its subject; 0 before the stream exists."""
    from nats.js.errors import NotFoundError

    try:
        info = await js.consumer_info(WORK_STREAM, work_consumer(component))
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    except NotFoundError:
        pass
    subject = component_work_subject(component)
    try:
        stream = await js.stream_info(WORK_STREAM, subjects_filter=subject)
    except NotFoundError:
        return 0
    return int((stream.state.subjects or {}).get(subject, 0))
