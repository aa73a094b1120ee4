"""`agentnet operator`: run the kopf operator."""

import os

import click

from agentnet_runtime import logs
from agentnet_runtime.catalogue import HTTP_PORT

from agentnet_operator import names


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
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Kubeconfig to use. Default: in-cluster credentials, else $KUBECONFIG or ~/.kube/config.")
@logs.options()
def operator_command(namespaces: tuple[str, ...], liveness_port: int, metrics_port: int,
                     resync_seconds: float, autoscale_seconds: float, kubeconfig: str | None,
                     log_level: str | None, log_format: str | None) -> None:
    """Reconcile AgentNetworks into Kubernetes objects."""
    # kopf's loggers (kopf.objects carries the object each record is about) go through the same formatter;
    # kopf.run, unlike `kopf run`, configures no logging of its own.
    logs.setup(logs.from_flags(log_level, log_format), component="operator")
    if kubeconfig:  # before importing the client: it reads $KUBECONFIG at import; kopf's login uses it too
        os.environ["KUBECONFIG"] = kubeconfig
    import kopf
    from kubernetes import client, config
    from prometheus_client import start_http_server

    from agentnet_operator.cluster import Cluster
    from agentnet_operator.handlers import build_registry

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = client.ApiClient()
    api.user_agent = names.USER_AGENT
    registry = build_registry(Cluster(api), resync_seconds, autoscale_seconds)
    kopf.on.login(registry=registry)(kopf.login_via_client)

    start_http_server(metrics_port)
    kopf.run(registry=registry, standalone=True, namespaces=list(namespaces), clusterwide=not namespaces,
             liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz")

