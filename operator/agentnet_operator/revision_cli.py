"""`agentnet history NAME` and `agentnet rollback NAME --to N`: the CLI around revisions.

Both talk to the API server like kubectl (kubeconfig, current context's namespace).
`rollback` only sets `spec.rollbackTo` (declarative, so GitOps tools see it); the
operator does the rest. `rollback NAME --undo` removes it: back to the spec.
"""

from __future__ import annotations

from typing import Any

import click

from agentnet_operator import names

COLUMNS = ("REVISION", "RESULT", "DEPLOYED", "DIGEST", "MESSAGE")


def _client(kubeconfig: str | None, namespace: str | None):
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=kubeconfig)
        if namespace is None:
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            namespace = active.get("context", {}).get("namespace") or "default"
    except config.ConfigException as error:
        raise click.ClickException(f"no usable kubeconfig: {error}") from None
    return client.CustomObjectsApi(api), namespace


def _network(api, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    try:
        return api.get_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, name)
    except ApiException as error:
        if error.status == 404:
            raise click.ClickException(f"AgentNetwork {namespace}/{name} not found") from None
        raise click.ClickException(f"reading AgentNetwork {namespace}/{name}: {error.status} {error.reason}") from None


def history_table(status: dict[str, Any]) -> str:
    """status.history as a table, newest first; `*` marks the revision currently running."""
    running = status.get("updateRevision")
    rows = [COLUMNS] + [
        (f"{entry['revision']}{'*' if entry['revision'] == running else ''}", entry["result"], entry["deployedAt"],
         entry["digest"][:12], entry.get("message", ""))
        for entry in status.get("history") or ()
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join([*(str(v).ljust(w) for v, w in zip(row, widths)), str(row[-1])]).rstrip() for row in rows)


options = [
    click.argument("name"),
    click.option("-n", "--namespace", help="default: the current context's namespace"),
    click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), help="default: $KUBECONFIG, ~/.kube/config"),
]


def with_options(command):
    for option in reversed(options):
        command = option(command)
    return command


@click.command("history")
@with_options
def history_command(name: str, namespace: str | None, kubeconfig: str | None) -> None:
    """Show the revisions of an AgentNetwork (newest first; * = running)."""
    api, namespace = _client(kubeconfig, namespace)
    status = _network(api, namespace, name).get("status") or {}
    if not status.get("history"):
        raise click.ClickException(f"AgentNetwork {namespace}/{name} has no revisions yet")
    click.echo(history_table(status))


@click.command("rollback")
@with_options
@click.option("--to", "revision", type=int, help="the revision to run (see `agentnet history NAME`)")
@click.option("--undo", is_flag=True, help="remove spec.rollbackTo: run the spec again")
def rollback_command(name: str, namespace: str | None, kubeconfig: str | None, revision: int | None, undo: bool) -> None:
    """Roll an AgentNetwork back to a stored revision by setting spec.rollbackTo."""
    if (revision is None) == (not undo):
        raise click.UsageError("give exactly one of --to N and --undo")
    api, namespace = _client(kubeconfig, namespace)
    status = _network(api, namespace, name).get("status") or {}
    known = sorted(entry["revision"] for entry in status.get("history") or ())
    if revision is not None and revision not in known:
        raise click.ClickException(f"revision {revision} is not stored for {namespace}/{name} "
                                   f"(stored: {', '.join(map(str, known)) or 'none'})")
    patch = {"spec": {"rollbackTo": None if undo else {"revision": revision}}}
    api.patch_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, name, patch,
                                       _content_type="application/merge-patch+json")
    click.echo(f"{namespace}/{name}: " + ("spec.rollbackTo removed" if undo else f"spec.rollbackTo.revision = {revision}"))
