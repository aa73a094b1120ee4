"""One level-based reconcile of one network.

1. Which spec to deploy (revisions.py): the spec, the revision `rollbackTo` names,
   or the last healthy revision when the spec's failed; a new one is stored first.
2. Fresh autoscaler readings become decisions (autoscale.py), written to status
   before any workload, so a restart never undoes them.
3. Desired children (pure, children.py) are compared with the cache of what the
   cluster holds; only what differs is applied, children no longer desired are
   deleted.
4. The status (status.py) and the revision history are patched only when they
   changed — so a reconcile with nothing to do sends no request at all.
"""

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from kubernetes.client.exceptions import ApiException

from agentnet_operator import names
from agentnet_operator.autoscale import step as autoscale_step
from agentnet_operator.certmanager import FromCertManager, revision
from agentnet_operator.children import (
    CHILD_KINDS, child_key, desired_children, digest, new_secret_value, obsolete_children, spinapp_components)
from agentnet_operator.cluster import Cluster, api_error_message, needs_apply, replacement, stamp_digest
from agentnet_operator.metric_sources import Reading, current_replicas
from agentnet_operator.model import AgentNetwork, AgentNetworkStatus, ComponentStatus, HistoryEntry
from agentnet_operator.nats_children import certificate_names
from agentnet_operator.revisions import (
    REVISION_API_VERSION, REVISION_KIND, Rollout, begin, controller_revision, next_number, plan_rollout, settle,
    stored_revisions)
from agentnet_operator.status import (
    READY, REASON_DEADLINE, REASON_METRIC_UNAVAILABLE, REASON_REVISION_NOT_FOUND, REASON_SPINKUBE_MISSING, Problem,
    check_network, compute_status, current_scale, stuck_pods)
from agentnet_operator.tls import TlsMaterial, ensure

REASON_APPLY_FAILED = "ApplyFailed"
REASON_CERTIFICATES = "Certificates"  # which path issues a managed NATS cluster's certificates, when it changes


class Notice(NamedTuple):
    """An Event to post about the network."""

    type: str  # Normal | Warning
    reason: str
    message: str
    component: str = ""  # the component a scaling notice is about


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    stuck_pods_deleted: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    written: dict[str, Any] | None = None  # the network as the last status write returned it
    notices: list[Notice] = field(default_factory=list)  # Events to post: scaling, revisions, rollbacks
    requeue_after: float | None = None  # seconds until a rollout's progress deadline

    @property
    def wrote(self) -> bool:
        return bool(self.applied or self.deleted or self.stuck_pods_deleted or self.status_written)

    @property
    def status_written(self) -> bool:
        return self.written is not None


def _describe(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def stored_secret(cluster: Cluster, network: AgentNetwork, name: str) -> dict[str, str]:
    """What a Secret of the network holds, decoded ({} when there is none)."""
    secret = (cluster.cached({"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"namespace": network.namespace, "name": name}})
              or cluster.get("v1", "Secret", network.namespace, name))  # cache may be cold after a restart
    return {key: base64.b64decode(value).decode() for key, value in ((secret or {}).get("data") or {}).items()}


def nats_password(cluster: Cluster, network: AgentNetwork) -> str:
    """The managed NATS password: kept from the existing Secret, made once otherwise."""
    stored = stored_secret(cluster, network, names.nats_name(network.name)).get(names.NATS_SECRET_PASSWORD)
    return stored or new_secret_value()


def nats_tls(cluster: Cluster, network: AgentNetwork, now: datetime, *,
             cert_manager: bool = False) -> TlsMaterial | FromCertManager:
    """The managed NATS cluster's CA and certificate: from cert-manager when it is installed (the
    revision it issued, as the cache holds the Certificate), else kept from the Secrets while good,
    renewed once due (tls.ensure), made the first time."""
    if cert_manager:
        certificate = cluster.cached({"apiVersion": names.CERT_MANAGER_API_VERSION, "kind": names.CERTIFICATE_KIND,
                                      "metadata": {"namespace": network.namespace,
                                                   "name": names.nats_tls_name(network.name)}})
        return FromCertManager(revision(certificate))
    ca = stored_secret(cluster, network, names.nats_ca_name(network.name))
    served = stored_secret(cluster, network, names.nats_tls_name(network.name))
    current = None
    if ca.get(names.TLS_CA) and ca.get(names.CA_KEY) and served.get(names.TLS_CERT) and served.get(names.TLS_KEY):
        current = TlsMaterial(ca_cert=ca[names.TLS_CA], ca_key=ca[names.CA_KEY], cert=served[names.TLS_CERT],
                              key=served[names.TLS_KEY])  # fmt: skip
    return ensure(current, f"{network.name}.{network.namespace} NATS CA", certificate_names(network), now)


def api_token(cluster: Cluster, network: AgentNetwork) -> str:
    """The network's API token: kept from its Secret, made once otherwise."""
    return stored_secret(cluster, network, names.api_token_name(network.name)).get(names.API_TOKEN_KEY) or new_secret_value()


def store_revision(cluster: Cluster, network: AgentNetwork, rollout: Rollout, outcome: Outcome) -> int:
    """The number of the rollout's new revision, stored as a ControllerRevision.

    Read from the API server, not the cache: after a restart the cache may not hold
    the revisions yet, and a second number for one spec must never be handed out."""
    live = stored_revisions(cluster.list(REVISION_API_VERSION, REVISION_KIND, network.namespace,
                                         names.selector_string(network.name, names.ROLE_REVISION)))
    for number, revision in live.items():
        if revision.digest == rollout.digest:
            return number
    history = network.status.history if network.status and network.status.history else []
    number = next_number(live, history)
    cluster.apply(controller_revision(network, number, rollout.content))
    outcome.notices.append(Notice("Normal", "RevisionCreated", f"revision {number} stored ({rollout.digest[:10]})"))
    return number


def autoscale(cluster: Cluster, network: AgentNetwork, readings: Mapping[str, Reading], now: datetime,
              outcome: Outcome) -> dict[str, ComponentStatus]:
    """Autoscaler state per component after the fresh `readings`; failed readings become warnings."""
    previous = (network.status.components if network.status else None) or {}
    updated: dict[str, ComponentStatus] = {}
    for component in network.spec.effective_components:
        reading = readings.get(component.name)
        if component.autoscaling is None or reading is None:
            continue
        source = component.autoscaling.metric.source
        if reading.error is not None:
            outcome.warnings.append(Problem(REASON_METRIC_UNAVAILABLE, f"{component.name}: {source} metric: {reading.error}; "
                                            "keeping the current replicas"))
            continue
        current = current_replicas(cluster, network, component)
        before = previous.get(component.name) or ComponentStatus()
        after = autoscale_step(component.autoscaling, before, current, reading.value, now)
        if after != before:
            updated[component.name] = after
        # Against the last decision when it changed, else against the workload: a changed decision is
        # announced even when the workload already runs it (a write before this one got there first).
        decided = before.desired if before.desired is not None else current
        reference = decided if after.desired != decided else current
        if after.desired != reference:
            kind = "ScaleUp" if after.desired > reference else "ScaleDown"
            outcome.notices.append(Notice("Normal", kind, f"{component.name}: {after.message}", component.name))
    return updated


def reconcile(cluster: Cluster, body: Mapping[str, Any], *, now: datetime,
              readings: Mapping[str, Reading] | None = None, cert_manager: bool = False) -> Outcome:
    """readings: the autoscaler's metric reads not yet acted on, by component. cert_manager: whether
    cert-manager is installed (a managed NATS cluster's certificates then come from it)."""
    original = AgentNetwork.from_body(body)
    outcome = Outcome()
    rollout = plan_rollout(original, stored_revisions(cluster.children_of(original.metadata.uid)))
    network = rollout.network(original)  # what is deployed: the spec, or a stored revision
    spec = network.spec
    spinkube = not spinapp_components(network) or cluster.api_group_served(names.SPINAPP_API_VERSION)
    outcome.problems = [*check_network(network, spinkube_installed=spinkube), *rollout.problems]
    renderable = all(p.reason in (REASON_SPINKUBE_MISSING, REASON_REVISION_NOT_FOUND) for p in outcome.problems)

    if readings:
        scaled = autoscale(cluster, network, readings, now, outcome)
        if scaled:
            # Written before the workloads: a restart between the two must not undo a decision.
            status = network.status or AgentNetworkStatus()
            components = {**(status.components or {}), **scaled}
            outcome.written = cluster.patch_status(network.namespace, network.name,
                                                   {"components": {name: c.dump() for name, c in scaled.items()}})
            network.status = status.model_copy(update={"components": components})

    history = network.status.history if network.status and network.status.history else []
    number: int | None = None
    desired: list[dict[str, Any]] | None = None
    if renderable:
        number = rollout.revision if rollout.revision is not None else store_revision(cluster, network, rollout, outcome)
        history = begin(history, rollout, number, now=now)
        network.status = (network.status or AgentNetworkStatus()).model_copy(
            update={"history": history, "update_revision": number})
        password = nats_password(cluster, network) if spec.nats.managed else None
        tls = nats_tls(cluster, network, now, cert_manager=cert_manager) if spec.nats.managed else None
        desired = desired_children(network, nats_password=password, nats_tls=tls, api_token=api_token(cluster, network),
                                   scale=current_scale(network))
        if not spinkube:  # the rest of the network still runs; Degraded says why the components don't
            desired = [obj for obj in desired if obj["kind"] != names.SPINAPP_KIND]

    for obj in desired or ():
        stamp_digest(obj, digest(obj))
        live = cluster.cached(obj)
        if not needs_apply(obj, live):
            continue
        propagation = replacement(obj, live) if live is not None else None
        if propagation is not None:
            # Made again once it is gone (its deletion brings the next reconcile).
            if not live["metadata"].get("deletionTimestamp"):
                cluster.delete(obj, propagation=propagation)
                outcome.deleted.append(_describe(obj))
                outcome.notices.append(Notice("Normal", "Replaced", f"{_describe(obj)}: a field that cannot change "
                                              f"does; deleted ({propagation}) to be made again"))
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

    replace_stuck_pods(cluster, children, outcome)
    status = compute_status(network, children, now=now, problems=outcome.problems, warnings=outcome.warnings,
                            rolled_back=rollout.rolled_back)
    if number is not None:
        settle_revision(cluster, network, status, history, number, now, outcome)
    issuer = (status.get("nats") or {}).get("certificates")
    if issuer and issuer != ((body.get("status") or {}).get("nats") or {}).get("certificates"):
        outcome.notices.append(Notice("Normal", REASON_CERTIFICATES, f"NATS TLS certificates from {issuer}"))
    if status != body.get("status"):
        outcome.written = cluster.patch_status(network.namespace, network.name, status)
    return outcome


def replace_stuck_pods(cluster: Cluster, children: list[dict[str, Any]], outcome: Outcome) -> None:
    """Delete the pods a StatefulSet child waits on forever (status.stuck_pods), so that it
    starts them again from its current template: after a rollback, or a fix, of a revision
    whose pods never became ready. Only StatefulSets with unready pods are looked at, so a
    healthy network costs no request."""
    for sts in children:
        if sts["kind"] != "StatefulSet":
            continue
        status = sts.get("status") or {}
        if int(status.get("readyReplicas") or 0) >= int((sts.get("spec") or {}).get("replicas", 1)):
            continue
        labels = sts["spec"]["selector"]["matchLabels"]
        pods = cluster.list("v1", "Pod", sts["metadata"]["namespace"], ",".join(f"{k}={v}" for k, v in labels.items()))
        for pod in stuck_pods(sts, pods):
            cluster.delete(pod)
            outcome.stuck_pods_deleted.append(_describe(pod))
            outcome.notices.append(Notice(
                "Normal", "StuckPodDeleted",
                f"Pod/{pod['metadata']['name']} of StatefulSet/{sts['metadata']['name']} was not ready on an earlier "
                f"revision ({pod['metadata']['labels']['controller-revision-hash']}); deleted so that it starts on "
                f"{status['updateRevision']}"))


def settle_revision(cluster: Cluster, network: AgentNetwork, status: dict[str, Any], history: list[HistoryEntry],
                    number: int, now: datetime, outcome: Outcome) -> None:
    """Judge the deployed revision, write history into `status`, prune revisions beyond the limit."""
    spec = network.spec
    ready = next(c for c in status["conditions"] if c["type"] == READY)
    failed = ready["message"] if ready["status"] == "False" and ready["reason"] == REASON_DEADLINE else None
    was = history[0].result
    keep = [r for r in (spec.rollback_to.revision if spec.rollback_to else None, status.get("currentRevision")) if r]
    history = settle(history, ready=ready["status"] == "True", failed=failed,
                     limit=spec.rollout.revision_history_limit, keep=keep)
    front = history[0]
    if front.result == "Failed" and was != "Failed":
        outcome.notices.append(Notice("Warning", "RevisionFailed", f"revision {number}: {front.message}"))
    if front.result == "Deployed" and was != "Deployed" and front.message:
        outcome.notices.append(Notice("Normal", "RolledBack", front.message))
    if front.result == "Deploying":
        deadline = front.deployed_at + timedelta(seconds=spec.rollout.progress_deadline_seconds)
        outcome.requeue_after = max(0.0, (deadline - now).total_seconds()) + 0.5
    status["history"] = [h.dump() for h in history]
    status["updateRevision"] = number
    if front.result == "Deployed":
        status["currentRevision"] = number
    kept = {h.revision for h in history}
    for obj in cluster.children_of(network.metadata.uid):
        if obj["kind"] == REVISION_KIND and int(obj.get("revision", 0)) not in kept:
            cluster.delete(obj)
            outcome.deleted.append(_describe(obj))
