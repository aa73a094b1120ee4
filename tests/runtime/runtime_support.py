"""Helpers for the runtime tests: networks built the operator's way, agents on a real
nats-server, and polling with a deadline (every wait is bounded)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
import nats.errors

from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.config import AgentSettings, NetworkConfig, RuntimeConfig, load_config
from agentnet_runtime.core.terms import parse
from agentnet_runtime.local.up import network_document_from

# Short timers: tests wait for convergence, so repairs should come quickly. Each agent holds its own
# replica and they replicate in memory as agents in separate pods do over NATS: these tests are of
# replication (and partition agents of one process); SHARED is how a process runs its agents by default.
FAST = AgentSettings(sync_interval=0.2, heartbeat_interval=0.2, sync_timeout=1.0, batch_delay=0.005, timeline_flush=0.05,
                     share_replica=False)
SHARED = replace(FAST, share_replica=True)


def network_document(agents: int = 9, kind: str = "ramanujan", name: str = "test", **topology: Any) -> dict:
    if kind == "ramanujan":
        topology.setdefault("degree", 4)
    body = {"metadata": {"name": name}, "spec": {"agents": agents, "topology": {"kind": kind, **topology}}}
    return network_document_from(body)


def network(agents: int = 9, kind: str = "ramanujan", **topology: Any) -> NetworkConfig:
    return NetworkConfig.from_json(network_document(agents, kind, **topology))


def runtime_config(net: NetworkConfig, nats_url: str, agent_ids=None, settings: AgentSettings = FAST, **kw) -> RuntimeConfig:
    ids = tuple(range(net.size)) if agent_ids is None else tuple(agent_ids)
    return load_config(env={}, network=net, agent_ids=ids, nats_url=nats_url, agent=settings, **kw)


@asynccontextmanager
async def running(config: RuntimeConfig, timeline=None) -> AsyncIterator[AgentHost]:
    """An AgentHost, started and connected; stopped afterwards whatever happens."""
    host = AgentHost(config, timeline=timeline)
    await host.start()
    try:
        await asyncio.wait_for(host.ready.wait(), 10)
        yield host
    finally:
        await host.stop()


async def eventually(predicate: Callable[[], Any | Awaitable[Any]], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` (sync or async) until truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):  # bounded too (one check may take `timeout`): a hung one fails naming `what`
            try:
                value = await asyncio.wait_for(value, timeout)
            except TimeoutError:
                raise AssertionError(f"timed out after {timeout}s waiting for {what} (its check did not return)") from None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def submit(host: AgentHost, agent: int, text: str) -> None:
    """A term to one hosted agent, as its HTTP route gives it."""
    host.agents[agent].submit(parse(text))
    host.wake(host.agents[agent])


def one_digest(*hosts: AgentHost) -> str | None:
    """The common digest of every agent of the hosts, or None while they differ or have work left."""
    digests = {d for host in hosts for d in host.digests().values()}
    busy = any(agent.dirty for host in hosts for agent in host.agents.values())
    return digests.pop() if len(digests) == 1 and not busy else None


async def subscribed(monitor: str, client: Any, *subjects: str, timeout: float = 10) -> None:
    """Until the server at `monitor` (its monitoring URL) would deliver each of `subjects` to `client`: its
    subscription list (/subsz, what it routes messages by) holds a subscription of the client's connection
    matching it. nats-py's flush() is no such wait: it writes its PING to the socket at once, ahead of the SUBs
    still in the client's buffer (its flusher task writes them later), so the PONG can come before the server
    has them, and a message published meanwhile reaches no one."""

    async def known() -> bool:
        async with httpx.AsyncClient(base_url=monitor, timeout=5) as http:
            for subject in subjects:
                found = (await http.get("/subsz", params={"subs": 1, "test": subject})).json()
                if not any(s["cid"] == client.client_id for s in found.get("subscriptions_list") or []):
                    return False
        return True

    await client.flush()
    await eventually(known, timeout, f"the server to know the subscriptions to {', '.join(subjects)}")


async def server_has_read(client: Any) -> None:
    """Until the server has read what `client` wrote so far, its SUBs included (see `subscribed` for why a
    flush is not that), where the client may publish anywhere: a request to a subject no one serves is
    answered 'no responders' once the server has read it, so after all that came before it."""
    with contextlib.suppress(nats.errors.NoRespondersError):
        await client.request(f"probe.{secrets.token_hex(4)}", b"", timeout=10)
