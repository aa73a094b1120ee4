"""The operator's managed NATS cluster on loopback: real nats-servers run the configuration
nats_children.nats_server_config writes for a network, with a CA and certificate from the
operator's tls module, so tests and benchmarks exercise that very file (TLS for clients and
routes, routes between every server, JetStream clustered) without a Kubernetes node.

What only a cluster has is replaced in the text, nothing else: the servers' DNS names become
`localhost` (which the certificate also names) with a port per server, and the file paths
(certificates, JetStream's store) become a temp dir's. Every identity of the network is a user
with its grant (nats_auth.py): a client connects as one of them, `auth(identity)`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agentnet_operator import names, nats_auth
from agentnet_operator.model import AgentNetwork
from agentnet_operator.nats_children import certificate_names, nats_server_config, server_hosts
from agentnet_operator.tls import TlsMaterial, issue_ca, issue_server
from agentnet_runtime import permissions
from agentnet_runtime.config import NatsAuth
from agentnet_runtime.natsbin import EmbeddedNats, PortTaken, free_port

PASSWORD = "loopback-cluster-password"
NAMESPACE = "loop"


def cluster_network(size: int, name: str = "loop", **spec: object) -> AgentNetwork:
    """A network whose NATS is `size` servers; `spec` overrides its agents, topology, components, ..."""
    return AgentNetwork.model_validate({
        "apiVersion": names.API_VERSION, "kind": names.KIND,
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": "loopback"},
        "spec": {"agents": 3, "topology": {"kind": "ring"}, **spec, "nats": {"managed": True, "replicas": size}},
    })  # fmt: skip


def loopback_material(network: AgentNetwork) -> TlsMaterial:
    now = datetime.now(UTC)
    ca_cert, ca_key = issue_ca("loopback NATS CA", now)
    return TlsMaterial(ca_cert, ca_key, *issue_server(ca_cert, ca_key, [*certificate_names(network), "localhost"], now))


@dataclass
class LoopbackCluster:
    """`size` servers of one network's cluster; `with LoopbackCluster(3) as cluster:`. `spec`: the
    network's (agents, topology, components: who the users are), cluster_network's by default.
    `users=False` leaves the users out (anyone may connect and do anything): a baseline of what they cost."""

    size: int
    spec: dict = field(default_factory=dict)
    users: bool = True
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="agentnet-natscluster-")))
    servers: list[EmbeddedNats] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.network = cluster_network(self.size, **self.spec)
        self.tls = loopback_material(self.network)
        tls_dir = self.directory / "tls"
        tls_dir.mkdir(parents=True, exist_ok=True)
        for key, text in ((names.TLS_CERT, self.tls.cert), (names.TLS_KEY, self.tls.key), (names.TLS_CA, self.tls.ca_cert)):
            (tls_dir / key).write_text(text)
        self._configure()

    def _configure(self) -> None:
        """The servers, each with its own ports (fresh ones on every call)."""
        tls_dir = self.directory / "tls"
        routes = [free_port() for _ in range(self.size)]
        config = nats_server_config(self.network, PASSWORD).replace(names.NATS_TLS_DIR, str(tls_dir))
        if not self.users:
            config = config.replace(nats_auth.authorization(self.network, PASSWORD), "")
        for k, host in enumerate(server_hosts(self.network)):
            config = config.replace(f"{host}:{names.NATS_CLUSTER_PORT}", f"localhost:{routes[k]}")
        self.servers = []
        for k in range(self.size):
            mine = re.sub(rf"(?m)^  port: {names.NATS_CLUSTER_PORT}$", f"  port: {routes[k]}", config)
            mine = re.sub(rf"(?m)^http_port: {names.NATS_MONITOR_PORT}$", f"http_port: {free_port()}", mine)
            store = self.directory / f"server-{k}"
            mine = mine.replace(f'"{names.NATS_DATA_DIR}/', f'"{store}/')
            self.servers.append(EmbeddedNats(self.directory / f"server-{k}", host="localhost", config=mine,
                                             env={names.ENV_NATS_SERVER_NAME: f"loop-nats-{k}"}))

    @property
    def url(self) -> str:
        """Every server's URL, as the operator gives them to clients."""
        return ",".join(f"tls://localhost:{server.port}" for server in self.servers)

    def monitor_url(self, server: int = 0) -> str:
        """Server `server`'s monitoring endpoint (/subsz, /connz...), on the port its configuration got."""
        port = re.search(r"(?m)^http_port: (\d+)$", self.servers[server].config)
        assert port, "no http_port in the server's configuration"
        return f"http://localhost:{port[1]}"

    def auth(self, identity: str) -> NatsAuth:
        """The credentials and CA the process of `identity` (permissions.py) gets."""
        return NatsAuth(user=identity, password=nats_auth.password(PASSWORD, identity),
                        inbox_prefix=permissions.inbox_prefix(identity), tls_ca=self.tls.ca_cert)

    def start(self, attempts: int = 3) -> "LoopbackCluster":
        """Start every server. A route or monitoring port in the configuration can be taken before its
        server binds it (free_port's race): then every server starts again on fresh ports."""
        for attempt in range(1, attempts + 1):
            try:
                for server in self.servers:
                    server.start()
                return self
            except PortTaken:
                for server in self.servers:
                    server.stop()
                if attempt == attempts:
                    raise
                self._configure()
        raise AssertionError("unreachable")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "LoopbackCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
