"""What an agentnet process is told: the network (network.json) and its own place in it.

The operator writes `network.json` (agentnet_operator.children.network_config) into a
ConfigMap and sets the environment below on every pod; `agentnet up` builds the same
JSON from the same YAML. A process reads the environment first, then command-line
flags override it. The runtime must not import the operator (kopf, Kubernetes client),
so the environment variable names are repeated here; a test checks they match
agentnet_operator.names.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from agentnet_runtime.catalogue import HTTP_PORT

# --- environment (the same names as agentnet_operator.names.ENV_*) --------------------
ENV_NETWORK = "AGENTNET_NETWORK"
ENV_POD_NAME = "AGENTNET_POD_NAME"
ENV_POD_INDEX = "AGENTNET_POD_INDEX"
ENV_AGENTS_PER_POD = "AGENTNET_AGENTS_PER_POD"
ENV_CONFIG = "AGENTNET_CONFIG"
ENV_NATS_URL = "AGENTNET_NATS_URL"
ENV_GUIDE_NATS_URL = "NATS_URL"  # the deployment guides' name: read when the operator's is not set
ENV_NATS_CREDENTIALS_DIR = "AGENTNET_NATS_CREDENTIALS_DIR"
ENV_NATS_CA_FILE = "AGENTNET_NATS_CA_FILE"
ENV_HTTP_PORT = "AGENTNET_HTTP_PORT"
ENV_DATA_DIR = "AGENTNET_DATA_DIR"

DEFAULT_CONFIG_PATH = "/etc/agentnet/network.json"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
COLOURS = ("RED", "BLUE", "GREEN")


class ConfigError(ValueError):
    """Configuration that cannot be used; the message names the setting and what is wrong."""


# Defaults of spec.retention (the operator's model has the same; network.json always carries them).
MIN_MAX_NODES = 1_000
DEFAULT_TIMELINE_MAX_AGE_SECONDS = 604_800  # a week
DEFAULT_TIMELINE_MAX_EVENTS = 1_000_000


@dataclass(frozen=True)
class Retention:
    """What a network keeps (network.json "retention"): an e-node budget per replica, and the timeline's."""

    max_nodes: int | None = None  # the most e-nodes one replica keeps; None = no budget
    timeline_max_age_seconds: int = DEFAULT_TIMELINE_MAX_AGE_SECONDS
    timeline_max_events: int = DEFAULT_TIMELINE_MAX_EVENTS

    @classmethod
    def from_json(cls, document: Any, source: str = "network.json") -> "Retention":
        """From the "retention" key; a missing key or member takes its default, a bad one names itself."""
        if document is None:
            return cls()
        if not isinstance(document, dict):
            raise ConfigError(f"{source}: retention must be an object (got {type(document).__name__})")
        timeline = document.get("timeline") or {}
        if not isinstance(timeline, dict):
            raise ConfigError(f"{source}: retention.timeline must be an object (got {type(timeline).__name__})")

        def integer(value: Any, field: str, low: int, default: int | None) -> int | None:
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{source}: {field} must be an integer >= {low} (got {value!r})")
            return value

        return cls(
            max_nodes=integer(document.get("maxNodes"), "retention.maxNodes", MIN_MAX_NODES, None),
            timeline_max_age_seconds=integer(timeline.get("maxAgeSeconds"), "retention.timeline.maxAgeSeconds", 1,
                                             DEFAULT_TIMELINE_MAX_AGE_SECONDS),
            timeline_max_events=integer(timeline.get("maxEvents"), "retention.timeline.maxEvents", 1, DEFAULT_TIMELINE_MAX_EVENTS),
        )  # fmt: skip


MAX_STREAM_REPLICAS = 5  # JetStream's own bound


def _stream_replicas(nats: Any, source: str) -> int:
    value = nats.get("streamReplicas", 1) if isinstance(nats, dict) else 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STREAM_REPLICAS:
        raise ConfigError(f"{source}: nats.streamReplicas must be an integer from 1 to {MAX_STREAM_REPLICAS} (got {value!r})")
    return value


@dataclass(frozen=True)
class NodeConfig:
    """One agent of the topology, as network.json lists it."""

    id: int
    pod: int
    neighbours: tuple[int, ...]
    colour: str  # RED | BLUE | GREEN: the rewrite family the agent applies
    display: str  # display colour (hex)


@dataclass(frozen=True)
class NetworkConfig:
    """The parts of network.json the runtime uses; `raw` keeps the whole document."""

    name: str
    agents_per_pod: int
    nodes: tuple[NodeConfig, ...]
    components: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)
    retention: Retention = Retention()
    stream_replicas: int = 1  # copies JetStream keeps of the streams a process creates (nats.streamReplicas)

    @classmethod
    def from_json(cls, document: Mapping[str, Any], source: str = "network.json") -> "NetworkConfig":
        try:
            nodes = tuple(
                NodeConfig(
                    id=int(n["id"]),
                    pod=int(n["pod"]),
                    neighbours=tuple(int(m) for m in n["neighbours"]),
                    colour=str(n["colour"]),
                    display=str(n.get("display", "#888888")),
                )
                for n in document["nodes"]
            )
            network = cls(
                name=str(document["network"]),
                agents_per_pod=int(document.get("agentsPerPod", 1)),
                nodes=nodes,
                components=dict(document.get("components") or {}),
                raw=dict(document),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{source}: malformed network config ({type(error).__name__}: {error})") from None
        network = replace(network, retention=Retention.from_json(document.get("retention"), source),
                          stream_replicas=_stream_replicas(document.get("nats"), source))
        for position, node in enumerate(nodes):
            if node.id != position:
                raise ConfigError(f"{source}: nodes[{position}].id must be {position} (got {node.id})")
            if node.colour not in COLOURS:
                raise ConfigError(f"{source}: nodes[{position}].colour must be one of {', '.join(COLOURS)}")
            if any(not 0 <= m < len(nodes) or m == node.id for m in node.neighbours):
                raise ConfigError(f"{source}: nodes[{position}].neighbours must be other agent ids 0..{len(nodes) - 1}")
        return network

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NetworkConfig":
        try:
            return cls.from_json(json.loads(Path(path).read_text()), source=str(path))
        except OSError as error:
            raise ConfigError(f"cannot read the network config {path}: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not JSON: {error}") from None

    @property
    def size(self) -> int:
        return len(self.nodes)

    def block(self, pod_index: int, agents_per_pod: int | None = None) -> tuple[int, ...]:
        """Agent ids a pod hosts: [index*agentsPerPod, (index+1)*agentsPerPod), clipped to the network."""
        per_pod = agents_per_pod or self.agents_per_pod
        return tuple(range(pod_index * per_pod, min((pod_index + 1) * per_pod, self.size)))


@dataclass(frozen=True)
class NatsAuth:
    """Credentials from AGENTNET_NATS_CREDENTIALS_DIR: a file named by the process's identity (managed NATS:
    its password, the identity being its user), else files `user`+`password`, or `token`, or `creds`;
    and the CA (PEM) that signed the servers' certificates, from AGENTNET_NATS_CA_FILE."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds_file: str | None = None
    tls_ca: str | None = field(default=None, repr=False)
    inbox_prefix: str | None = None  # where replies to our requests come (permissions.inbox_prefix); None: nats-py's

    @classmethod
    def from_dir(cls, directory: str | None, identity: str | None = None, inbox_prefix: str | None = None) -> "NatsAuth":
        if not directory:
            return cls()
        base = Path(directory)

        def read(name: str) -> str | None:
            path = base / name
            return path.read_text().strip() if path.is_file() else None

        if identity is not None and (base / identity).is_file():  # an agent pod finds every pod's: it takes its own
            return cls(user=identity, password=read(identity), inbox_prefix=inbox_prefix)
        creds = base / "creds"
        return cls(
            user=read("user"),
            password=read("password"),
            token=read("token"),
            creds_file=str(creds) if creds.is_file() else None,
        )

    def with_ca_file(self, path: str | None) -> "NatsAuth":
        """These credentials, verifying servers with the CA in `path` (none: as before)."""
        if not path:
            return self
        try:
            return replace(self, tls_ca=Path(path).read_text())
        except OSError as error:
            raise ConfigError(f"{ENV_NATS_CA_FILE}: cannot read the NATS CA {path}: {error.strerror}") from None

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for nats.connect(): credentials, the inbox prefix, and TLS verified against the CA
        if one is given."""
        return {**self._credentials(), **({"inbox_prefix": self.inbox_prefix} if self.inbox_prefix else {}),
                **({"tls": self._tls_context()} if self.tls_ca else {})}

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cadata=self.tls_ca)
        except ssl.SSLError as error:
            raise ConfigError(f"{ENV_NATS_CA_FILE}: the NATS CA is not a PEM certificate ({error.reason})") from None

    def _credentials(self) -> dict[str, Any]:
        if self.creds_file:
            return {"user_credentials": self.creds_file}
        if self.token:
            return {"token": self.token}
        if self.user:
            return {"user": self.user, "password": self.password or ""}
        return {}


@dataclass(frozen=True)
class AgentSettings:
    """How agents behave; defaults suit a cluster, tests and `up` shorten the timers.
    `agentnet agent` sets them from its flags, else guide 001's variables (settings.AgentEnvironment)."""

    sync_interval: float = 5.0  # seconds between anti-entropy rounds (digest exchange with each neighbour); guide 001's 5000 ms
    heartbeat_interval: float = 2.0  # seconds between heartbeats
    sync_timeout: float = 2.0  # seconds to wait for a neighbour's sync reply
    eager: bool = True  # push deltas to neighbours as soon as something changes (else only on sync rounds)
    batch_delay: float = 0.02  # seconds an agent lets messages pile up before it pushes; and of quiet before it rewrites
    rewrite_gap: float = 0.5  # seconds after which it rewrites even if messages keep coming
    rewrite_seconds: float = 0.25  # time slice of one rewrite pass (a slice restarts its search: not too short)
    rewrite_iterations: int = 30  # iterations of one rewrite pass
    node_cap: int = 50_000  # an agent stops rewriting once its e-graph holds this many e-nodes
    snapshot_interval: float = 30.0  # seconds between snapshots, taken whenever there is a data dir (0 = none)
    timeline_flush: float = 0.2  # seconds between timeline batch flushes
    max_buffered_events: int = 200_000  # events kept while no sink can take them; older ones are dropped
    # The agents of a process hold one e-graph (agent.py, shared replicas); off, each holds its own and they
    # replicate in memory as agents in different pods would (tests that partition agents of one process).
    share_replica: bool = True


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything one agentnet process needs to know, read once at start."""

    network: NetworkConfig
    agent_ids: tuple[int, ...]
    nats_url: str = DEFAULT_NATS_URL
    nats_auth: NatsAuth = NatsAuth()
    http_host: str = "0.0.0.0"
    http_port: int = HTTP_PORT
    data_dir: Path | None = None
    pod_name: str = field(default_factory=socket.gethostname)
    agent: AgentSettings = AgentSettings()

    def with_(self, **changes: Any) -> "RuntimeConfig":
        return replace(self, **changes)


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    config_path: str | None = None,
    network: NetworkConfig | None = None,
    agent_ids: tuple[int, ...] | None = None,
    pod_index: int | None = None,
    agents_per_pod: int | None = None,
    nats_url: str | None = None,
    nats_credentials_dir: str | None = None,
    http_host: str | None = None,
    http_port: int | None = None,
    data_dir: str | None = None,
    agent: AgentSettings | None = None,
    component: str | None = None,
) -> RuntimeConfig:
    """Environment first, then the keyword arguments (command-line flags) override it.

    `agent_ids=()` is a process that hosts no agents: a service component, named by `component`
    (its NATS identity; an agent process's is its pod's, permissions.agent_pod)."""
    from agentnet_runtime import permissions  # here: it imports natsclient, which imports this module

    env = os.environ if env is None else env
    if network is None:
        network = NetworkConfig.load(config_path or env.get(ENV_CONFIG) or DEFAULT_CONFIG_PATH)
    index = _int(pod_index, env, ENV_POD_INDEX, 0)
    if agent_ids is None:
        per_pod = _int(agents_per_pod, env, ENV_AGENTS_PER_POD, network.agents_per_pod)
        if index < 0 or per_pod < 1:
            raise ConfigError(f"{ENV_POD_INDEX} must be >= 0 and {ENV_AGENTS_PER_POD} >= 1 (got {index}, {per_pod})")
        agent_ids = network.block(index, per_pod)
        if not agent_ids:
            raise ConfigError(f"this process hosts no agents (the network has {network.size})")
    unknown = [i for i in agent_ids if not 0 <= i < network.size]
    if unknown:
        raise ConfigError(f"agent ids {unknown} are not in the network (ids 0..{network.size - 1})")
    directory = data_dir or env.get(ENV_DATA_DIR)
    identity = component if not agent_ids else permissions.agent_pod(index)
    inbox = permissions.inbox_prefix(identity) if identity else None
    return RuntimeConfig(
        network=network,
        agent_ids=tuple(agent_ids),
        nats_url=nats_url or env.get(ENV_NATS_URL) or env.get(ENV_GUIDE_NATS_URL) or DEFAULT_NATS_URL,
        nats_auth=NatsAuth.from_dir(nats_credentials_dir or env.get(ENV_NATS_CREDENTIALS_DIR), identity,
                                    inbox).with_ca_file(env.get(ENV_NATS_CA_FILE)),
        http_host=http_host or "0.0.0.0",
        http_port=_int(http_port, env, ENV_HTTP_PORT, HTTP_PORT),
        data_dir=Path(directory) if directory else None,
        pod_name=env.get(ENV_POD_NAME) or socket.gethostname(),
        agent=agent or AgentSettings(),
    )


def _int(flag: int | None, env: Mapping[str, str], name: str, default: int) -> int:
    if flag is not None:
        return flag
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer (got {text!r})") from None
