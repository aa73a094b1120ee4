"""`agentnet operator`: run the kopf operator."""

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import click
from pydantic import ValidationError

from agentnet_runtime import logs
from agentnet_runtime.catalogue import HTTP_PORT

from agentnet_operator import names
from agentnet_operator.settings import LeaseSettings

# Where a pod finds its own namespace (the Lease's default place in a cluster).
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Between kopf's exit on a vanished kind and its next start: no hot loop should discovery lag the removal.
RESTART_PAUSE_SECONDS = 1.0

log = logging.getLogger("agentnet.operator")


def run_until_stopped(serve_once: Callable[[], None], pause: float = RESTART_PAUSE_SECONDS) -> None:
    """Run `serve_once` (kopf, with a fresh controller) until it returns (a signal stopped it); run it
    again when it exited because a kind it watched vanished. kopf stops watching a kind once it sees the
    kind's CRD deleted, but a watch that reconnects before that meets a 404, and kopf 1.45 exits on it:
    deleting cert-manager's or SpinKube's CRDs must not stop the operator. Any other error stops it."""
    while True:
        try:
            serve_once()
            return
        except Exception as error:
            if getattr(error, "status", None) != 404:  # kopf's APINotFoundError (its module is private)
                raise
            log.warning("a watched kind vanished under its watch (%s): watching again", error)
            time.sleep(pause)


def _lease_default(field: str) -> object:
    return LeaseSettings.model_fields[field].default


def lease_settings(namespace: str | None, **timing: object) -> LeaseSettings:
    """The Lease's settings from the flags; a bad value is refused naming its flag and the rule."""
    if namespace is None:
        if not IN_CLUSTER_NAMESPACE.exists():
            raise click.UsageError("--lease-namespace is required with --leader-elect outside a pod")
        namespace = IN_CLUSTER_NAMESPACE.read_text().strip()
    try:
        return LeaseSettings(namespace=namespace, **timing)
    except ValidationError as error:
        raise click.UsageError("; ".join(
            (f"--lease-{e['loc'][0].replace('_', '-')}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in error.errors())) from None


@click.command("operator")
@click.option("--namespace", "-n", "namespaces", multiple=True,
              help="Watch only this namespace (repeatable). Default: every namespace.")
@click.option("--liveness-port", type=int, default=HTTP_PORT, show_default=True,
              help="Serve the liveness probe at http://0.0.0.0:PORT/healthz.")
@click.option("--metrics-port", type=int, default=HTTP_PORT + 1, show_default=True,
              help="Serve Prometheus metrics at http://0.0.0.0:PORT/metrics.")
@click.option("--resync-seconds", type=float, default=60.0, show_default=True,
              help="Reconcile every network at least this often, events or not.")
@click.option("--autoscale-seconds", type=float, default=1.0, show_default=True,
              help="Read the metrics of autoscaled components this often.")
@click.option("--cert-manager/--no-cert-manager", "cert_manager", default=True, show_default=True,
              help="Take a managed NATS cluster's certificates from cert-manager while its Certificate CRD is "
                   "served; without it (or --no-cert-manager) the operator makes its own CA.")
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Kubeconfig to use. Default: in-cluster credentials, else $KUBECONFIG or ~/.kube/config.")
@click.option("--leader-elect/--no-leader-elect", default=False, show_default=True,
              help="Reconcile only while holding a coordination.k8s.io Lease, so replicas can run side by side.")
@click.option("--lease-namespace", default=None,
              help="Namespace of the Lease. Default: the pod's own (required outside a pod).")
@click.option("--lease-name", default=names.FIELD_MANAGER, show_default=True, help="Name of the Lease.")
@click.option("--lease-duration-seconds", "duration_seconds", type=int, show_default=True,
              default=_lease_default("duration_seconds"),
              help="A standby takes the Lease over once it has not been renewed for this long.")
@click.option("--lease-renew-deadline-seconds", "renew_deadline_seconds", type=float, show_default=True,
              default=_lease_default("renew_deadline_seconds"),
              help="The leader stops reconciling at once when it could not renew for this long.")
@click.option("--lease-retry-period-seconds", "retry_period_seconds", type=float, show_default=True,
              default=_lease_default("retry_period_seconds"),
              help="How often the leader renews and a standby reads the Lease.")
@logs.options()
def operator_command(namespaces: tuple[str, ...], liveness_port: int, metrics_port: int,
                     resync_seconds: float, autoscale_seconds: float, cert_manager: bool, kubeconfig: str | None,
                     leader_elect: bool, lease_namespace: str | None, lease_name: str, duration_seconds: int,
                     renew_deadline_seconds: float, retry_period_seconds: float,
                     log_level: str | None, log_format: str | None) -> None:
    """Reconcile AgentNetworks into Kubernetes objects."""
    lease = lease_settings(lease_namespace, name=lease_name, duration_seconds=duration_seconds,
                           renew_deadline_seconds=renew_deadline_seconds,
                           retry_period_seconds=retry_period_seconds) if leader_elect else None
    # kopf's loggers (kopf.objects carries the object each record is about) go through the same formatter;
    # kopf.run, unlike `kopf run`, configures no logging of its own.
    logs.setup(logs.from_flags(log_level, log_format), component="operator")
    if logging.getLogger().level > logging.DEBUG:
        # kopf says "Handler 'child-deployments' succeeded." at info for every watch event of every child;
        # the operator's own records say what it decided. Its warnings and errors stay, and all of it at debug.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if kubeconfig:  # before importing the client: it reads $KUBECONFIG at import; kopf's login uses it too
        os.environ["KUBECONFIG"] = kubeconfig
    import kopf
    from kubernetes import client, config
    from prometheus_client import start_http_server

    from agentnet_operator.cluster import Cluster
    from agentnet_operator.handlers import Controller
    from agentnet_operator.leader import LeaderElector

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = client.ApiClient()
    api.user_agent = names.USER_AGENT

    def serve_once() -> None:
        """kopf with a controller of its own: its caches fill again from kopf's first lists."""
        controller = Controller(Cluster(api), resync_seconds=resync_seconds, autoscale_seconds=autoscale_seconds,
                                use_cert_manager=cert_manager,
                                elector=LeaderElector(api, lease) if lease else None)
        registry = controller.registry()
        kopf.on.login(registry=registry)(kopf.login_via_client)
        kopf.run(registry=registry, standalone=True, namespaces=list(namespaces), clusterwide=not namespaces,
                 liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz")

    start_http_server(metrics_port)
    run_until_stopped(serve_once)

