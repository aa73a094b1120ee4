"""`agentnet up -f network.yaml`: the whole network on a laptop, like `spin up`.

It reads the AgentNetwork YAML with the operator's own model and builds network.json
with the operator's own `network_config`, so a local run sees exactly what pods see.
Then it starts an embedded nats-server (JetStream on, free loopback port, store in a
temp dir), every agent in this process (one event loop, one NATS connection), and one
HTTP server: the agents' routes at the root and each service component mounted under
its route prefix (catalogue.py), and also at the root of `<component>.localhost`
(`curl http://stream-red.localhost:3000/`), as the deployment guides address each
component by its own host. Ctrl-C or SIGTERM stops everything it started.

Each component is a components.Service, started here with its own NATS connection and
mounted under its prefix; a component whose module is not built is listed as skipped.

With `--data-dir DIR` the run is kept in DIR: the agents' snapshots (DIR/snapshots, written
every snapshot interval and on the way out), the nats-server's JetStream store (DIR/nats) and
the timeline (DIR/timeline.duckdb). Started again on the same DIR, every agent restores its
snapshot before it connects, so it is ready with the state it had. Without it JetStream and
the timeline live in a temp dir, removed on exit, and the agents take no snapshots: nothing
would ever read them (at 1,000 agents a round of them held the event loop for seconds).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from starlette.routing import Host, Mount

from agentnet_runtime import components, logs
from agentnet_runtime.catalogue import BY_NAME
from agentnet_runtime.components import Service
from agentnet_runtime.config import AgentSettings, ConfigError, NetworkConfig, RuntimeConfig, load_config
from agentnet_runtime.guard import Guard
from agentnet_runtime.natsbin import EmbeddedNats
from agentnet_runtime.settings import GuardSettings
from agentnet_runtime.web import HttpServer, run_until_signal

DEFAULT_PORT = 3000
UP_LOG_LEVEL = "warning"  # what it starts is said on stderr; info would repeat it
LOCAL_DOMAIN = "localhost"  # every <name>.localhost is loopback (RFC 6761; curl and browsers resolve it so)
# Local runs sync faster than a cluster's defaults: everything is on loopback.
LOCAL_SETTINGS = AgentSettings(sync_interval=0.5, heartbeat_interval=1.0)


def network_document(path: str | Path) -> dict[str, Any]:
    """network.json for an AgentNetwork YAML file, built exactly as the operator builds it."""
    return network_document_from(network_body(path), source=str(path))


def network_body(path: str | Path) -> Any:
    """The AgentNetwork YAML file's object."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise click.ClickException(f"cannot read {path}: {error}") from None


def network_model(body: Any, source: str = "the network"):
    """The operator's model of an AgentNetwork object (a dict as in YAML); a ClickException says what is wrong."""
    from pydantic import ValidationError

    from agentnet_operator.model import AgentNetwork

    try:
        return AgentNetwork.model_validate(body)
    except ValidationError as error:
        raise click.ClickException(f"{source} is not a valid AgentNetwork:\n{error}") from None


def network_document_from(body: Any, source: str = "the network") -> dict[str, Any]:
    """network.json for an AgentNetwork object (a dict as in YAML), via the operator's model, for one
    embedded nats-server: its streams are kept once, whatever the spec's cluster would keep."""
    from agentnet_operator.children import network_config

    network = network_model(body, source)
    try:
        document = network_config(network)
    except (ValueError, AssertionError) as error:  # e.g. an impossible topology, a missing metadata.name
        raise click.ClickException(f"{source}: {error}") from None
    document["nats"]["streamReplicas"] = 1
    return document


def local_guard(body: Any, require_token: bool, say=lambda text: None) -> Guard:
    """The guard of `agentnet up`: spec.limits' body and term limits always; the API token (AGENTNET_API_TOKEN,
    else a new one, said) and spec.limits.rateLimit only with --require-token. Without it the routes stay open,
    as a developer's loopback server: a token in the environment is then not asked for."""
    limits = network_model(body).spec.limits.guard_settings()
    token_variable = GuardSettings.env_name("api_token")
    if not require_token:
        os.environ.pop(token_variable, None)  # (this process's environment: the components read it too)
        return Guard.from_environment(**{**limits, "rate_limit_requests": 0})
    if not os.environ.get(token_variable):
        os.environ[token_variable] = secrets.token_urlsafe(32)
        say(f"  API token (Authorization: Bearer ...): {os.environ[token_variable]}")
    return Guard.from_environment(**limits)


def component_services(config: RuntimeConfig, say=lambda text: None) -> list[Service]:
    """The Service of every component of the network that is built; others are reported as skipped."""
    services: list[Service] = []
    for name in config.network.components:
        try:
            services.append(components.create(name, config))
        except ModuleNotFoundError as error:
            if error.name not in (components.module_name(name), components.__name__):
                raise
            say(f"  component {name:<22} skipped (not built yet)")
            continue
        say(f"  component {name:<22} {BY_NAME[name].route}")
    return services


async def run_network(
    config: RuntimeConfig,
    stop: asyncio.Event,
    *,
    say=lambda text: None,
    started: asyncio.Event | None = None,
    guard: Guard | None = None,
) -> None:
    """Run every agent of `config` and the components behind one HTTP server until `stop` is set, behind
    `guard` (default: from the environment)."""
    from agentnet_runtime.agent.host import AgentHost
    from agentnet_runtime.agent.main import agent_app, open_timeline

    host = AgentHost(config)
    host.timeline = await asyncio.to_thread(open_timeline, config)
    services = component_services(config.with_(agent_ids=()), say)
    apps = {service.name: service.app() for service in services}
    # Hosts first: a request to stream-red.localhost is the component's whatever its path.
    mounts = [*(Host(f"{name}.{LOCAL_DOMAIN}", app=app) for name, app in apps.items()),
              *(Mount(BY_NAME[name].route, app=app) for name, app in apps.items())]  # fmt: skip

    def whole_process_ready() -> list[str]:  # GET /ready at the root: the agents and every component
        return host.not_ready() + [f"{service.name}: {reason}" for service in services for reason in service.readiness()]

    http = HttpServer(agent_app(host, "agentnet-up", mounts, whole_process_ready, guard), config.http_host, config.http_port)
    try:
        await host.start()
        await asyncio.wait_for(host.ready.wait(), 30)
        say(f"  agents 0..{len(host.agents) - 1} connected to NATS")
        await asyncio.gather(*(service.start() for service in services))
        await http.start()
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        say("stopping ...")
        await http.stop()
        await asyncio.gather(*(service.stop() for service in services), return_exceptions=True)
        await host.stop()
        if host.timeline is not None:
            host.timeline.close()


@click.command("up")
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False), help="AgentNetwork YAML")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="HTTP port for agents and components")
@click.option("--host", "http_host", default="127.0.0.1", show_default=True, help="HTTP listen address")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="keep agents' snapshots, JetStream and the timeline here, to start again where it stopped (default: a temp dir, removed on exit)")
@click.option("--sync-interval", type=float, default=LOCAL_SETTINGS.sync_interval, show_default=True, help="seconds between anti-entropy rounds")
@click.option("--snapshot-interval", type=float, default=AgentSettings.snapshot_interval, show_default=True,
              help="seconds between the agents' snapshots to --data-dir (and one on the way out); 0 = none")
@click.option("--replica-per-agent", is_flag=True,
              help="each agent holds its own e-graph and they replicate in memory, as agents in pods of their own "
                   "(to watch or measure replication); default: the agents share one, which costs a burst once, not per agent")
@click.option("--nats-monitor-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="serve nats-server's monitoring endpoints (/varz, /connz) on this loopback port; 0 = none")
@click.option("--require-token", is_flag=True,
              help="require the API token on the mutating routes (AGENTNET_API_TOKEN, else a new one, printed) and "
                   "apply spec.limits.rateLimit; default: open, as a loopback server")
@logs.options(default_level=UP_LOG_LEVEL)
def up_command(path: str, port: int, http_host: str, data_dir: str | None, sync_interval: float, snapshot_interval: float,
               replica_per_agent: bool, nats_monitor_port: int, require_token: bool, log_level: str | None, log_format: str | None) -> None:
    """Run a whole AgentNetwork locally: embedded NATS, every agent, all routes on one port."""
    began = time.perf_counter()
    log_settings = logs.from_flags(log_level, log_format, UP_LOG_LEVEL)

    def say(text: str) -> None:
        click.echo(text, err=True)

    body = network_body(path)
    document = network_document_from(body, source=path)
    network = NetworkConfig.from_json(document, source=path)
    logs.setup(log_settings, network=network.name, component="agentnet-up")
    say(f"agentnet up: network {network.name}, {network.size} agents, {document['topology']['kind']} topology")
    try:
        guard = local_guard(body, require_token, say)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    scratch = Path(tempfile.mkdtemp(prefix="agentnet-up-"))
    directory = Path(data_dir) if data_dir else scratch / "data"
    nats = EmbeddedNats(directory / "nats", args=("-m", str(nats_monitor_port)) if nats_monitor_port else ())
    try:
        nats.start()
        say(f"  nats-server (JetStream) {nats.url}, store {nats.store_dir}")
        config = load_config(
            env={}, network=network, agent_ids=tuple(range(network.size)), nats_url=nats.url,
            http_host=http_host, http_port=port, data_dir=str(directory),
            agent=AgentSettings(sync_interval=sync_interval, heartbeat_interval=LOCAL_SETTINGS.heartbeat_interval,
                                snapshot_interval=snapshot_interval if data_dir else 0, share_replica=not replica_per_agent),
        )  # fmt: skip
        from agentnet_runtime.agent import snapshots
        from agentnet_runtime.agent.main import TIMELINE_FILE

        kept = f", snapshots {directory / snapshots.DIRECTORY}" if data_dir else " (no snapshots without --data-dir)"
        say(f"  timeline {directory / TIMELINE_FILE}{kept}")

        async def main(stop: asyncio.Event) -> None:
            started = asyncio.Event()
            task = asyncio.create_task(run_network(config, stop, say=say, started=started, guard=guard))
            done, _ = await asyncio.wait({task, asyncio.create_task(started.wait())}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            say(f"ready in {time.perf_counter() - began:.2f}s: http://{http_host}:{port}/status  (Ctrl-C to stop)")
            await task

        run_until_signal(main)
    except (OSError, ConfigError) as error:  # ConfigError: a component setting it refuses
        raise click.ClickException(str(error)) from None
    finally:
        nats.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        say("stopped")
