"""Helpers for the transduction-2tdx tests: a whole network (agents on their own
nats-server) with its transduction service served over real HTTP on loopback."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

from runtime_support import network_document, running, runtime_config

from agentnet_runtime import components
from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.config import NetworkConfig
from agentnet_runtime.core.terms import parse
from agentnet_runtime.web import HttpServer

NAME = "transduction-2tdx"


@dataclass
class Network:
    host: AgentHost
    service: components.Service
    url: str  # the service's /sync base, as a peer reaches it

    def submit(self, agent: int, text: str) -> None:
        self.host.agents[agent].submit(parse(text))
        self.host.wake(self.host.agents[agent])

    def has(self, text: str) -> bool:
        """Every agent of the network holds the term."""
        term = parse(text)
        return all(agent.egraph.lookup(term) is not None for agent in self.host.agents.values())


@asynccontextmanager
async def bridged_network(name: str, nats_url: str, port: int, agents: int = 9, kind: str = "ramanujan",
                          **settings: str) -> AsyncIterator[Network]:
    """Network `name` (all agents in one host) with transduction-2tdx on http://127.0.0.1:`port`."""
    document = network_document(agents, kind, name=name)
    document["components"][NAME]["settings"] = settings
    config = runtime_config(NetworkConfig.from_json(document), nats_url)
    async with running(config) as host:
        service = components.create(NAME, config.with_(agent_ids=()))
        await service.start()
        http = await HttpServer(service.app(), "127.0.0.1", port).start()
        try:
            yield Network(host, service, f"http://127.0.0.1:{port}")
        finally:
            await http.stop()
            await service.stop()
