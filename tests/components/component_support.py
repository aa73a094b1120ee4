"""Helpers for the component tests: a Service started for real (NATS, DuckDB) and an
HTTP client on its app, in the test's own event loop."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator

import httpx

from agentnet_runtime import components
from agentnet_runtime.config import RuntimeConfig
from runtime_support import network_document, runtime_config

STOP_SECONDS = 30.0  # a component's stop: its own bounded waits (the timeline's last fetch) take seconds


def component_config(name: str, nats_url: str = "nats://127.0.0.1:1", agents: int = 9, settings: dict | None = None,
                     **kw) -> RuntimeConfig:
    """A component's config for a `agents`-agent ramanujan network, with `settings` for it."""
    from agentnet_runtime.config import NetworkConfig

    document = network_document(agents)
    if settings is not None:
        document["components"].setdefault(name, {})["settings"] = settings
    return runtime_config(NetworkConfig.from_json(document), nats_url, agent_ids=(), **kw)


@asynccontextmanager
async def serving(name: str, config: RuntimeConfig) -> AsyncIterator[tuple[components.Service, httpx.AsyncClient]]:
    """The started Service and a client on its routes (as `agentnet component NAME` serves them)."""
    service = components.create(name, config)
    await service.start()
    try:
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://component") as client:
            yield service, client
    finally:
        try:  # bounded: a stop that hangs fails naming the component (not the test's whole timeout, unnamed)
            await asyncio.wait_for(service.stop(), STOP_SECONDS)
        except TimeoutError:
            raise AssertionError(f"{name} did not stop within {STOP_SECONDS:.0f} s") from None
