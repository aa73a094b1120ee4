"""`agentnet component NAME`: one service component in its own process (what a component pod runs).

Reads network.json and the pod's environment like an agent (config.py); flags override.
A setting the component refuses ends the process at once (exit status 1, one line naming
the setting and the rule). HTTP is served at once, so /health answers while NATS is still
being connected (/ready says so); a start that fails ends the process too.
"""

from __future__ import annotations

import asyncio
import logging

import click

from agentnet_runtime import logs, natsclient
from agentnet_runtime.catalogue import COMPONENT_NAMES
from agentnet_runtime.components import Service, create
from agentnet_runtime.config import ConfigError, load_config
from agentnet_runtime.web import HttpServer, run_until_signal

log = logging.getLogger("agentnet.component")


async def run_component(service: Service, stop: asyncio.Event) -> None:
    config = service.config
    http = await HttpServer(service.app(), config.http_host, config.http_port).start()
    log.info("component %s of network %s serving on port %d", service.name, config.network.name, http.port)
    starting = asyncio.create_task(service.start(), name=f"{service.name}-start")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and starting.exception() is not None:
            raise starting.exception()  # e.g. its data file cannot be opened: a crash, not a pod forever unready
        await stopping
    finally:
        stopping.cancel()
        await http.stop()
        await natsclient.cancel_until_done([starting])  # if still waiting for NATS
        await service.stop()


@click.command("component")
@click.argument("name", type=click.Choice(COMPONENT_NAMES))
@click.option("--config", "config_path", help="network.json (default: $AGENTNET_CONFIG, then /etc/agentnet/network.json)")
@click.option("--nats-url", help="default: $AGENTNET_NATS_URL, then $NATS_URL (the guides' name)")
@click.option("--nats-credentials-dir", help="default: $AGENTNET_NATS_CREDENTIALS_DIR")
@click.option("--host", "http_host", help="HTTP listen address (default 0.0.0.0)")
@click.option("--port", "http_port", type=int, help="HTTP port (default: $AGENTNET_HTTP_PORT, then 8080)")
@click.option("--data-dir", help="DuckDB files (default: $AGENTNET_DATA_DIR)")
@logs.options()
def component_command(name: str, log_level: str | None, log_format: str | None, **flags) -> None:
    """Run one service component: its routes, NATS work and /metrics."""
    log_settings = logs.from_flags(log_level, log_format)
    try:
        config = load_config(agent_ids=(), component=name, **flags)
        logs.setup(log_settings, network=config.network.name, component=name)
        service = create(name, config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    except ModuleNotFoundError as error:
        raise click.ClickException(f"component {name} is not part of this build ({error.name})") from None
    try:
        run_until_signal(lambda stop: run_component(service, stop))
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
