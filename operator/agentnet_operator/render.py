"""`agentnet render -f network.yaml`: every object the operator would create for a network, without a
cluster, so it can be reviewed and diffed before it is applied (as `helm template` does for a chart).

The objects come from the operator's own pure builders (children.desired_children and the first
revision) for a network that is new. What only a cluster knows differs:

- the owner references carry no `uid` (the API server gives the network one when it is created), and
  so the objects carry no applied-digest annotation (the operator's digest covers the uid);
- the managed NATS Secret holds RENDER_PASSWORD, not the random password the operator makes once, and
  its TLS Secrets RENDER_TLS, not the CA and certificate the operator makes;
- replicas are the spec's (an autoscaler's decisions live in the network's status);
- `spec.rollbackTo` is not followed (the revisions it names are stored on the cluster);
- SpinApps are rendered whether or not SpinKube is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from agentnet_operator.children import desired_children
from agentnet_operator.crdgen import PlainDumper
from agentnet_operator.model import AgentNetwork, field_errors
from agentnet_operator.revisions import controller_revision, revision_content
from agentnet_operator.status import check_network
from agentnet_operator.tls import TlsMaterial

# Stands in for the managed NATS password: fixed, so that two renders of one file are identical.
RENDER_PASSWORD = "rendered-placeholder-not-the-operators-password"
RENDER_API_TOKEN = "rendered-placeholder-not-the-networks-api-token"  # likewise for the API token
RENDER_TLS = TlsMaterial(*(f"rendered placeholder, not the operator's {what}" for what in
                           ("CA certificate", "CA key", "certificate", "key")))
DEFAULT_NAMESPACE = "default"  # what kubectl uses when neither the file nor the context names one
FIRST_REVISION = 1


def render_secrets() -> dict[str, Any]:
    """desired_children's secrets of a managed NATS cluster, as rendered."""
    return {"nats_password": RENDER_PASSWORD, "nats_tls": RENDER_TLS}


class RenderError(ValueError):
    """The file cannot become a network: the message names the document and the fields."""


def render_network(body: Any, *, namespace: str | None = None, source: str = "the network") -> list[dict[str, Any]]:
    """The objects the operator would create for the AgentNetwork `body` (a dict as in YAML).

    namespace: where it would be applied when the body names none (default: DEFAULT_NAMESPACE)."""
    if isinstance(body, dict) and namespace and not (body.get("metadata") or {}).get("namespace"):
        body = {**body, "metadata": {**(body.get("metadata") or {}), "namespace": namespace}}
    try:
        network = AgentNetwork.model_validate(body)
    except ValidationError as error:
        raise RenderError(f"{source} is not a valid AgentNetwork:\n  " + "\n  ".join(field_errors(error))) from None
    if network.metadata.name is None:
        raise RenderError(f"{source}: metadata.name: Required value")
    if network.metadata.namespace is None:
        network.metadata.namespace = DEFAULT_NAMESPACE
    problems = check_network(network)
    if problems:
        raise RenderError(f"{source}: " + "; ".join(f"{p.reason}: {p.message}" for p in problems))
    network.metadata.uid = "render"  # the builders need one; dropped below, the cluster gives the real one
    objects = [
        controller_revision(network, FIRST_REVISION, revision_content(network.spec)),
        *desired_children(network, api_token=RENDER_API_TOKEN, **(render_secrets() if network.spec.nats.managed else {})),
    ]
    for obj in objects:
        for owner in obj["metadata"].get("ownerReferences", ()):
            del owner["uid"]
    return objects


def render_file(path: Path, *, namespace: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every object of every AgentNetwork in a YAML file (several documents allowed), and notes on
    what the render could not follow."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as error:
        raise RenderError(f"cannot read {path}: {error}") from None
    if not documents:
        raise RenderError(f"{path} holds no AgentNetwork")
    objects: list[dict[str, Any]] = []
    notes: list[str] = []
    for i, body in enumerate(documents):
        source = f"{path} (document {i + 1})" if len(documents) > 1 else str(path)
        objects += render_network(body, namespace=namespace, source=source)
        if isinstance(body, dict) and (body.get("spec") or {}).get("rollbackTo"):
            notes.append(f"{source}: spec.rollbackTo is not followed: the revisions it names are on the cluster")
    return objects, notes


def to_yaml_stream(objects: list[dict[str, Any]]) -> str:
    """The objects as one YAML stream, for review and diff: not to apply by hand (the operator applies
    them, and the API server refuses an owner reference without a uid)."""
    return yaml.dump_all(objects, Dumper=PlainDumper, sort_keys=True, width=100, allow_unicode=True, explicit_start=True)


@click.command("render")
@click.option(
    "-f",
    "--filename",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file with one or more AgentNetworks.",
)
@click.option("-n", "--namespace", help=f"Namespace of networks that name none (default: {DEFAULT_NAMESPACE}).")
def render_command(path: Path, namespace: str | None) -> None:
    """Print every object the operator would create for the networks in a file, as YAML, without a
    cluster: owner references without a uid, a placeholder NATS password, the spec's replicas."""
    try:
        objects, notes = render_file(path, namespace=namespace)
    except RenderError as error:
        raise click.ClickException(str(error)) from None
    for note in notes:
        click.echo(f"note: {note}", err=True)
    sys.stdout.write(to_yaml_stream(objects))
