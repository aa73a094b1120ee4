"""The service components (catalogue.py names them): how one is built and run.

A component is module `agentnet_runtime.components.<name with underscores>` with
`create(config: RuntimeConfig) -> Service`. A Service has HTTP routes (relative to its
catalogue prefix), optional NATS work started in `start()`, facts for /health, and its
readiness for /ready: the base checks its NATS connection and the JetStream objects it
declares (`jetstream()`, kept in existence while it runs), a subclass may add checks.
Settings (settings.py: the environment over network.json over the defaults) are read in the
constructor into the frozen `service.settings`, so a refused one stops the process before it serves.
The same Service runs alone (`agentnet component NAME`, main.py: its routes at the
root of its own port) or inside `agentnet up` (mounted under its prefix next to the
agents and the other components), so nothing in a component knows which.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import BaseRoute

from agentnet_runtime import natsclient
from agentnet_runtime.catalogue import BY_NAME
from agentnet_runtime.config import ConfigError, RuntimeConfig
from agentnet_runtime.settings import ComponentSettings
from agentnet_runtime.settings import load as load_settings
from agentnet_runtime.web import create_app


class Service:
    """Base of every component; subclasses set `name` and override what they need."""

    name: str = ""

    def __init__(self, config: RuntimeConfig):
        self.config = config
        self.settings: Any = load_settings(self.settings_model, self.name, config)  # first: a refused setting stops the process before anything starts
        self.nc = None  # nats-py client, connected by start() when `uses_nats`
        self.nats = natsclient.NatsState()
        self.keeper: natsclient.JetStreamKeeper | None = None  # made by start() when jetstream() names objects
        self.started = False
        self._keeping: asyncio.Task | None = None

    # What a subclass provides ----------------------------------------------------------

    uses_nats: bool = False
    catch_all: bool = False  # any GET/POST to a path of no route answers GET / (web.create_app)

    def routes(self) -> list[BaseRoute]:
        return []

    async def describe(self, request: Request) -> dict[str, Any]:
        """Facts added to GET / (the service metadata), e.g. a stream's colour and polarity."""
        return {}

    def health(self) -> dict[str, Any]:
        """Facts added to GET /health."""
        return {}

    def jetstream(self) -> list[natsclient.JetStreamNeed]:
        """JetStream objects the component needs (when `uses_nats`); re-created whenever found missing."""
        return []

    def readiness(self) -> list[str]:
        """Why the component cannot do its work now (GET /ready: 503 listing them); empty when ready.
        A subclass with checks of its own adds them to these."""
        reasons = self.nats_readiness()
        if not reasons and not self.started:
            reasons.append(f"{self.name} starting")
        return reasons

    def nats_readiness(self) -> list[str]:
        """NATS connected, and every JetStream object the component needs present."""
        if not self.uses_nats:
            return []
        return self.nats.not_ready() or (self.keeper.not_ready() if self.keeper is not None else [])

    async def on_start(self) -> None:
        """Subscriptions, consumers and timers; called once NATS is connected (if used)."""

    async def on_stop(self) -> None:
        """Undo on_start; NATS is closed afterwards by stop()."""

    # Settings ------------------------------------------------------------------------------

    settings_model: type[ComponentSettings] = ComponentSettings  # the model of `self.settings` (settings.py)

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.uses_nats:
            self.nc = await natsclient.connect(
                self.config.nats_url, self.config.nats_auth, f"agentnet-{self.config.network.name}-{self.name}",
                state=self.nats,
            )  # fmt: skip
            needs = self.jetstream()
            if needs:
                self.keeper = natsclient.JetStreamKeeper(needs, self.nats)
                js = self.nc.jetstream()
                await self.keeper.check(js)  # now, so the work can begin at once
                self._keeping = asyncio.create_task(self.keeper.run(js), name=f"{self.name}-jetstream")
        await self.on_start()
        self.started = True

    async def stop(self) -> None:
        if self._keeping is not None:
            self.keeper.stop()
            self._keeping.cancel()
            await asyncio.gather(self._keeping, return_exceptions=True)
        await self.on_stop()
        if self.nc is not None and not self.nc.is_closed:
            try:
                await self.nc.close()
            except OSError:  # the server is away: there is nothing left to flush
                pass

    def app(self) -> Starlette:
        return create_app(self.name, self.routes(), health=self.health, ready=self.readiness, about=self.describe,
                          settings=self.settings, catch_all=self.catch_all)


def module_name(component: str) -> str:
    return f"{__name__}.{component.replace('-', '_')}"


def create(component: str, config: RuntimeConfig) -> Service:
    """The Service of `component`; ModuleNotFoundError if it is not built."""
    if component not in BY_NAME:
        raise ConfigError(f"unknown component {component!r} (known: {', '.join(BY_NAME)})")
    service = importlib.import_module(module_name(component)).create(config)
    assert service.name == component, f"{module_name(component)}.create() built {service.name!r}"
    return service
