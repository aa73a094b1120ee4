"""`agentnet agent`: run a block of agents (what one pod of the agents StatefulSet runs).

Reads network.json and the pod's environment (see config.py, and settings.AgentEnvironment for
guide 001's AGENT_ID, SYNC_INTERVAL and MAX_BUFFER_SIZE); flags override. HTTP is
served first, so the process answers /health quickly; NATS is connected in the
background and agents catch up from their neighbours once it is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

import click

from agentnet_runtime import logs
from agentnet_runtime.config import AgentSettings, ConfigError, NetworkConfig, RuntimeConfig, load_config
from agentnet_runtime.guard import Guard
from agentnet_runtime.settings import AgentEnvironment
from agentnet_runtime.web import HttpServer, create_app, run_until_signal

from .host import AgentHost
from .http import agent_routes, agents_health, agents_metadata

TIMELINE_FILE = "timeline.duckdb"
TIMELINE_COMPONENT = "interaction-timeline"


def agent_app(host: AgentHost, name: str = "agent", extra_routes=(), ready: Callable[[], list[str]] | None = None,
              guard: Guard | None = None):
    """The agents' routes (plus `extra_routes`, e.g. mounted components), /health, /ready and /metrics;
    `ready` replaces the agents' own readiness (`agentnet up` adds its components'); `guard` (default:
    from the environment) is web.create_app's."""
    return create_app(
        name,
        [*agent_routes(host), *extra_routes],
        health=lambda: agents_health(host),
        ready=ready or host.not_ready,
        about=lambda request: agents_metadata(host),
        settings=host.settings,
        guard=guard,
    )


def timeline_at(path, network: NetworkConfig):
    """The DuckDB timeline at `path` (":memory:": kept nowhere) with the network's retention."""
    from agentnet_runtime.timeline.store import Timeline  # loads duckdb only when there is a timeline to keep

    retention = network.retention
    return Timeline(path, max_age=retention.timeline_max_age_seconds, max_events=retention.timeline_max_events)


def open_timeline(config: RuntimeConfig):
    """The DuckDB timeline in the data directory, or None without one (events then go to the timeline's stream)."""
    return None if config.data_dir is None else timeline_at(config.data_dir / TIMELINE_FILE, config.network)


async def run_agents(config: RuntimeConfig, stop: asyncio.Event) -> None:
    host = AgentHost(config)
    http = await HttpServer(agent_app(host), config.http_host, config.http_port).start()
    logging.getLogger("agentnet").info(
        "agents %s of network %s serving on port %d", list(config.agent_ids), config.network.name, http.port
    )
    if TIMELINE_COMPONENT not in config.network.components:
        # With the component (every pod of a cluster network), events go to its JetStream stream:
        # a DuckDB file beside the snapshots would keep them from it.
        host.timeline = await asyncio.to_thread(open_timeline, config)
    await host.start()
    try:
        await stop.wait()
    finally:
        await http.stop()
        await host.stop()
        if host.timeline is not None:
            host.timeline.close()


def _span(ids: tuple[int, ...]) -> str:
    """The agents a process hosts, as `--agents` takes them: "4-7" for a block, else "1,5"."""
    if ids and list(ids) == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}-{ids[-1]}" if len(ids) > 1 else str(ids[0])
    return ",".join(map(str, ids))


def _ids(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        ids: list[int] = []
        for part in text.split(","):
            low, _, high = part.partition("-")
            ids.extend(range(int(low), int(high or low) + 1))
        return tuple(ids)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a list of agent ids such as 0,1,2 or 0-3") from None


@click.command("agent")
@click.option("--config", "config_path", help="network.json (default: $AGENTNET_CONFIG, then /etc/agentnet/network.json)")
@click.option("--agents", "agent_ids", help="agent ids to host, e.g. 0-3 or 1,5 (default: $AGENT_ID, then the pod's block)")
@click.option("--pod-index", type=int, help="StatefulSet ordinal (default: $AGENTNET_POD_INDEX)")
@click.option("--agents-per-pod", type=int, help="default: $AGENTNET_AGENTS_PER_POD, then network.json")
@click.option("--nats-url", help="default: $AGENTNET_NATS_URL, then $NATS_URL (the guides' name)")
@click.option("--nats-credentials-dir", help="default: $AGENTNET_NATS_CREDENTIALS_DIR")
@click.option("--host", "http_host", help="HTTP listen address (default 0.0.0.0)")
@click.option("--port", "http_port", type=int, help="HTTP port (default: $AGENTNET_HTTP_PORT, then 8080)")
@click.option("--data-dir", help="timeline DuckDB file and snapshots (default: $AGENTNET_DATA_DIR; none = no local files)")
@click.option("--sync-interval", type=float, help=f"seconds between anti-entropy rounds (default: $SYNC_INTERVAL ms, then {AgentSettings.sync_interval:g})")
@click.option("--heartbeat-interval", type=float, default=AgentSettings.heartbeat_interval, show_default=True)
@click.option("--snapshot-interval", type=float, default=AgentSettings.snapshot_interval, show_default=True, help="seconds between snapshots to the data dir; 0 = none")
@logs.options()
def agent_command(agent_ids, sync_interval, heartbeat_interval, snapshot_interval, log_level, log_format, **flags) -> None:
    """Run agents: sync their CRDT e-graphs with their neighbours over NATS and serve HTTP."""
    log_settings = logs.from_flags(log_level, log_format)
    try:
        environment = AgentEnvironment.read()
        settings = environment.agent_settings(AgentSettings(), sync_interval=sync_interval, heartbeat_interval=heartbeat_interval,
                                              snapshot_interval=snapshot_interval)  # fmt: skip
        ids = _ids(agent_ids) or ((environment.agent_id,) if environment.agent_id is not None else None)
        config = load_config(agent_ids=ids, agent=settings, **flags)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    logs.setup(log_settings, network=config.network.name, agents=_span(config.agent_ids))
    run_until_signal(lambda stop: run_agents(config, stop))
