"""The service components (catalogue.py names them): how one is built and run.

A component is module `agentnet_runtime.components.<name with underscores>` with
`create(config: RuntimeConfig) -> Service`. A Service has HTTP routes (relative to its
catalogue prefix), optional NATS work started in `start()`, facts for /health, and its
readiness for /ready: the base checks its NATS connection and the JetStream objects it
declares (`jetstream()`, kept in existence while it runs), a subclass may add checks.
Settings are read in the constructor, so a refused one stops the process before it serves.
The same Service runs alone (`agentnet component NAME`, main.py: its routes at the
root of its own port) or inside `agentnet up` (mounted under its prefix next to the
agents and the other components), so nothing in a component knows which.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import os
from typing import Any, Callable, Mapping, TypeVar

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from agentnet_runtime import natsclient
from agentnet_runtime.catalogue import BY_NAME
from agentnet_runtime.config import ConfigError, RuntimeConfig
from agentnet_runtime.web import create_app

T = TypeVar("T")


class Service:
    """Base of every component; subclasses set `name` and override what they need."""

    name: str = ""

    def __init__(self, config: RuntimeConfig):
        self.config = config
        self.nc = None  # nats-py client, connected by start() when `uses_nats`
        self.nats = natsclient.NatsState()
        self.keeper: natsclient.JetStreamKeeper | None = None  # made by start() when jetstream() names objects
        self.started = False
        self._keeping: asyncio.Task | None = None

    # What a subclass provides ----------------------------------------------------------

    uses_nats: bool = False

    def routes(self) -> list[BaseRoute]:
        return []

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

    # Settings from the network's ConfigMap (spec.components[].settings) ----------------

    @property
    def settings(self) -> Mapping[str, str]:
        return (self.config.network.components.get(self.name) or {}).get("settings") or {}

    def setting(self, key: str, default: T, parse: Callable[[str], T] = int, rule: str = "must be a number") -> T:
        """A setting parsed with `parse`, or `default`; a bad value names the setting and the rule."""
        if key not in self.settings:
            return default
        try:
            return parse(self.settings[key])
        except (TypeError, ValueError):  # TypeError: a hand-written network.json with a list or an object
            raise ConfigError(f"components[{self.name}].settings.{key} {rule} (got {self.settings[key]!r})") from None

    def number(self, key: str, default: float, *, low: float = -math.inf, high: float = math.inf,
               above: bool = False, integer: bool = False, env: bool = False) -> float:
        """A numeric setting in [low, high] (`above`: more than low), or `default`.

        With `env`, the environment variable `key` wins over the setting: it is the more
        local of the two, as flags win over the environment. A bad value is refused
        naming where it came from and the rule."""
        text = os.environ.get(key) if env else None
        if text:
            source = key
        elif key in self.settings:
            text, source = self.settings[key], f"components[{self.name}].settings.{key}"
        else:
            return default
        kind = "an integer" if integer else "a number"
        try:
            value = int(text) if integer else float(text)
        except (TypeError, ValueError):
            raise ConfigError(f"{source} must be {kind} (got {text!r})") from None
        if above:
            bound, ok = f"more than {low:g}", value > low
        elif math.isinf(high):
            bound, ok = f"at least {low:g}", value >= low
        else:
            bound, ok = f"{low:g}..{high:g}", low <= value <= high
        if not (ok and value <= high and math.isfinite(value)):
            raise ConfigError(f"{source} must be {bound} (got {text!r})")
        return value

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
        return create_app(self.name, self.routes(), health=self.health, ready=self.readiness)


def module_name(component: str) -> str:
    return f"{__name__}.{component.replace('-', '_')}"


def create(component: str, config: RuntimeConfig) -> Service:
    """The Service of `component`; ModuleNotFoundError if it is not built."""
    if component not in BY_NAME:
        raise ConfigError(f"unknown component {component!r} (known: {', '.join(BY_NAME)})")
    service = importlib.import_module(module_name(component)).create(config)
    assert service.name == component, f"{module_name(component)}.create() built {service.name!r}"
    return service
