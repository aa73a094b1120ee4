"""One level-based reconcile of one network.

Desired children (pure, from children.py) are compared with the cache of what
the cluster holds; only what differs is applied, children no longer desired are
deleted, and the status is patched only when it changed — so a reconcile with
nothing to do sends no request at all.
"""

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from agentnet_operator import names
from agentnet_operator.children import (
    CHILD_KINDS, child_key, desired_children, digest, new_nats_password, obsolete_children)
from agentnet_operator.cluster import Cluster, api_error_message, needs_apply, stamp_digest
from agentnet_operator.model import AgentNetwork
from agentnet_operator.status import (
    REASON_SPINKUBE_MISSING, Problem, check_network, compute_status, current_scale)

REASON_APPLY_FAILED = "ApplyFailed"


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    status_written: bool = False

    @property
    def wrote(self) -> bool:
        return bool(self.applied or self.deleted or self.status_written)


def _describe(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def nats_password(cluster: Cluster, network: AgentNetwork) -> str:
    """The managed NATS password: kept from the existing Secret, made once otherwise."""
    name = names.nats_name(network.name)
    secret = (cluster.cached({"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"namespace": network.namespace, "name": name}})
              or cluster.get("v1", "Secret", network.namespace, name))  # cache may be cold after a restart
    stored = (secret or {}).get("data", {}).get(names.NATS_SECRET_PASSWORD)
    return base64.b64decode(stored).decode() if stored else new_nats_password()


def reconcile(cluster: Cluster, body: Mapping[str, Any], *, now: datetime) -> Outcome:
    network = AgentNetwork.from_body(body)
    spec = network.spec
    outcome = Outcome()
    spinkube = spec.workload != "SpinApp" or cluster.api_group_served(names.SPINAPP_API_VERSION)
    outcome.problems = check_network(network, spinkube_installed=spinkube)

    desired: list[dict[str, Any]] | None = None
    if all(p.reason == REASON_SPINKUBE_MISSING for p in outcome.problems):  # that one only skips SpinApps
        password = nats_password(cluster, network) if spec.nats.managed else None
        desired = desired_children(network, nats_password=password, scale=current_scale(network))
        if not spinkube:  # the rest of the network still runs; Degraded says why the components don't
            desired = [obj for obj in desired if obj["kind"] != names.SPINAPP_KIND]

    for obj in desired or ():
        stamp_digest(obj, digest(obj))
        if not needs_apply(obj, cluster.cached(obj)):
            continue
        try:
            cluster.apply(obj)
            outcome.applied.append(_describe(obj))
        except ApiException as error:
            if error.status is None or error.status >= 500:
                raise  # the API server's trouble, not the spec's: retried
            outcome.problems.append(Problem(REASON_APPLY_FAILED, f"{_describe(obj)}: {api_error_message(error)}"))

    children = cluster.children_of(network.metadata.uid)
    if desired is not None:  # never prune on a spec the operator could not render
        by_key = {child_key(c): c for c in children if (c["apiVersion"], c["kind"]) in CHILD_KINDS}
        for key in obsolete_children(network, desired, list(by_key.values())):
            cluster.delete(by_key[key])
            outcome.deleted.append(_describe(by_key[key]))
        children = cluster.children_of(network.metadata.uid)

    status = compute_status(network, children, now=now, problems=outcome.problems)
    if status != body.get("status"):
        cluster.patch_status(network.namespace, network.name, status)
        outcome.status_written = True
    return outcome
