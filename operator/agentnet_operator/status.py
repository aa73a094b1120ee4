"""The network's status as a pure function of what the operator observed.

`check_network()` lists what only the operator can judge (the schema cannot):
each finding becomes a Degraded condition, never a crash or a retry loop.
`compute_status()` turns the observed children (plain dicts as the API server
returns them, camelCase) into the status to patch: conditions Ready,
Progressing, Degraded and RolledBack, readiness of agents, components and
NATS, and the label selector of the scale subresource. Revision bookkeeping
(currentRevision, updateRevision, history) and the autoscaler's fields are
carried over from the previous status: other code owns them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agentnet_operator import certmanager, names
from agentnet_operator.children import (
    CONFIG_MAP_LIMIT, component_replicas, component_workload_kind, config_size, nats_url, network_config,
    spinapp_components, topology_plan,
)
from agentnet_operator.model import (
    AgentNetwork,
    AgentNetworkStatus,
    AgentsStatus,
    ComponentStatus,
    Condition,
    NatsStatus,
)

READY, PROGRESSING, DEGRADED, ROLLED_BACK = "Ready", "Progressing", "Degraded", "RolledBack"

# Reasons (CamelCase, as conditions want them).
REASON_READY = "Ready"
REASON_PROGRESSING = "Progressing"
REASON_ROLLOUT_COMPLETE = "RolloutComplete"
REASON_DEADLINE = "ProgressDeadlineExceeded"
REASON_AS_EXPECTED = "AsExpected"
REASON_NOT_ROLLED_BACK = "NotRolledBack"
REASON_TOPOLOGY = "TopologyImpossible"
REASON_CONFIG_TOO_LARGE = "ConfigTooLarge"
REASON_SPINKUBE_MISSING = "SpinKubeMissing"
REASON_REVISION_NOT_FOUND = "RevisionNotFound"
REASON_METRIC_UNAVAILABLE = "MetricUnavailable"

MAX_MESSAGE_ITEMS = 5


@dataclass(frozen=True)
class Problem:
    """Something only the operator can judge; reported as Degraded."""

    reason: str
    message: str


def check_network(
    network: AgentNetwork,
    *,
    spinkube_installed: bool = True,
) -> list[Problem]:
    """What is wrong with a schema-valid network that the operator must report."""
    from agentnet_runtime.core.topology import check_topology

    spec = network.spec
    problems: list[Problem] = []
    t = spec.topology
    reason = check_topology(t.kind, spec.agents, degree=t.degree, dimensions=t.dimensions)
    if reason:
        problems.append(Problem(REASON_TOPOLOGY, f"{t.kind} topology with {spec.agents} agents: {reason}"))
    else:
        size = config_size(network_config(network))
        if size > CONFIG_MAP_LIMIT:
            problems.append(Problem(
                REASON_CONFIG_TOO_LARGE,
                f"the network config of {spec.agents} agents ({t.kind} topology) is {size} bytes, over the "
                f"ConfigMap limit of {CONFIG_MAP_LIMIT} bytes (1 MiB): use fewer agents or a sparser topology",
            ))  # fmt: skip
    spinapps = spinapp_components(network)
    if spinapps and not spinkube_installed:
        problems.append(
            Problem(
                REASON_SPINKUBE_MISSING,
                f"workload SpinApp runs {', '.join(spinapps)} as SpinApps, which needs SpinKube: the "
                f"{names.SPINAPP_KIND} kind ({names.SPINAPP_API_VERSION}) is not served by this cluster",
            )
        )
    return problems


# ------------------------------------------------------------------------------------
# readiness of one workload
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadState:
    exists: bool
    ready: bool
    replicas: int  # replicas the object asks for
    ready_replicas: int
    message: str  # why not ready ("" when ready)
    failed: bool = False  # its controller gave up (progress deadline exceeded)


def _get(obj: Mapping[str, Any], *path: str, default: Any = None) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value


def workload_state(obj: Mapping[str, Any] | None, desired_replicas: int, *, what: str,
                   deadline_counts: bool = True) -> WorkloadState:
    """Readiness of a StatefulSet, Deployment or SpinApp, like `kubectl rollout status`.
    `what` names it in messages, e.g. "StatefulSet demo-agents". deadline_counts: False
    while the deployed revision is younger than its progress deadline, when a Deployment's
    ProgressDeadlineExceeded can only be left over from the revision before it."""
    if obj is None:
        return WorkloadState(False, False, 0, 0, f"{what}: not created yet")
    kind = obj.get("kind", "")
    replicas = int(_get(obj, "spec", "replicas", default=1) or 0)
    ready = int(_get(obj, "status", "readyReplicas", default=0) or 0)

    def waiting(message: str, failed: bool = False) -> WorkloadState:
        return WorkloadState(True, False, replicas, ready, f"{what}: {message}", failed)

    if kind in ("StatefulSet", "Deployment"):
        generation = _get(obj, "metadata", "generation")
        observed = _get(obj, "status", "observedGeneration")
        if generation is not None and (observed is None or observed < generation):
            return waiting("waiting for its controller to observe the latest spec")
    if kind == "Deployment":
        for condition in _get(obj, "status", "conditions", default=[]) or []:
            if condition.get("type") == "Progressing" and condition.get("reason") == REASON_DEADLINE:
                return waiting(f"progress deadline exceeded: {condition.get('message', '')}".rstrip(": "),
                               deadline_counts)
    if replicas != desired_replicas:
        return waiting(f"{replicas} replicas requested, {desired_replicas} desired")
    if kind in ("StatefulSet", "Deployment"):
        updated = int(_get(obj, "status", "updatedReplicas", default=0) or 0)
        if updated < replicas:
            return waiting(f"{updated} of {replicas} pods updated")
        total = int(_get(obj, "status", "replicas", default=0) or 0)
        if kind == "Deployment" and total > updated:
            return waiting(f"{total - updated} old pods terminating")
        if kind == "StatefulSet":
            current, update = _get(obj, "status", "currentRevision"), _get(obj, "status", "updateRevision")
            if replicas and update and current != update:
                return waiting("rolling out a new revision")
    if kind == "Deployment":
        available = int(_get(obj, "status", "availableReplicas", default=0) or 0)
        if available < replicas:
            return waiting(f"{available} of {replicas} pods available")
    if ready < replicas:
        return waiting(f"{ready} of {replicas} pods ready")
    return WorkloadState(True, True, replicas, ready, "")


def pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in _get(pod, "status", "conditions", default=[]) or [])


def stuck_pods(statefulset: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The StatefulSet's pods that it will never replace by itself: not Ready and on another
    revision than its updateRevision. Its rolling update waits for such a pod to become Ready
    before replacing it, which the pod of a broken revision never does, so reverting the
    template alone leaves it broken (Kubernetes documents this as "forced rollback": delete
    the pods the bad revision made)."""
    update = _get(statefulset, "status", "updateRevision")
    generation = _get(statefulset, "metadata", "generation")
    if not update or _get(statefulset, "status", "observedGeneration") != generation:
        return []
    return [pod for pod in pods
            if _get(pod, "metadata", "labels", "controller-revision-hash") not in (None, update)
            and not _get(pod, "metadata", "deletionTimestamp") and not pod_ready(pod)]


# ------------------------------------------------------------------------------------
# the status
# ------------------------------------------------------------------------------------


def current_scale(network: AgentNetwork) -> dict[str, int]:
    """The autoscaler's replicas per component, as recorded in status (pass it
    to desired_children as `scale`)."""
    status = network.status
    if status is None or not status.components:
        return {}
    return {name: c.desired for name, c in sorted(status.components.items()) if c.desired is not None}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _index(observed: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(o.get("kind", ""), _get(o, "metadata", "name", default="")): o for o in observed}


def workloads_summary(components: Mapping[str, ComponentStatus]) -> str:
    """How many components run as SpinApps and as Deployments ("3 SpinApp, 8 Deployment"): the
    printer column that tells which ran how."""
    counts = {kind: sum(c.workload == kind for c in components.values()) for kind in (names.SPINAPP_KIND, "Deployment")}
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no components"


def _summary(messages: Sequence[str]) -> str:
    shown = list(messages[:MAX_MESSAGE_ITEMS])
    if len(messages) > MAX_MESSAGE_ITEMS:
        shown.append(f"and {len(messages) - MAX_MESSAGE_ITEMS} more")
    return "; ".join(shown)


def _deployed_at(network: AgentNetwork) -> datetime | None:
    """When the deployed revision (updateRevision) was last applied: at its rollout, or at
    the rollback that brought it back."""
    status = network.status
    if status is None or status.update_revision is None:
        return None
    entry = next((h for h in status.history or () if h.revision == status.update_revision), None)
    return entry.deployed_at if entry is not None else None


def _rollout_started(network: AgentNetwork) -> datetime | None:
    """When the revision being rolled out started; None when none is (it already ran healthy)."""
    status = network.status
    if status is None or status.update_revision == status.current_revision:
        return None
    return _deployed_at(network)


def compute_status(
    network: AgentNetwork,
    observed: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    problems: Sequence[Problem] = (),
    warnings: Sequence[Problem] = (),
    nats_ready: bool | None = None,
    rolled_back: Problem | None = None,
    rollout_started: datetime | None = None,
) -> dict[str, Any]:
    """The status to write, from the observed children.

    observed: the children as read from the API server (plain dicts).
    problems: from check_network() and from failed applies.
    warnings: Degraded without making the network unready (e.g. a metric source failing).
    nats_ready: result of probing an external NATS server (None = not probed);
      a managed one is judged from its StatefulSet.
    rolled_back: set when the operator re-applied an older revision.
    rollout_started: when the revision in progress started; by default taken
      from status.history (the entry of updateRevision).
    """
    spec = network.spec
    now = _utc(now)
    previous = network.status or AgentNetworkStatus()
    index = _index(observed)
    scale = current_scale(network)
    waiting: list[str] = []
    failed: list[str] = []

    deployed = _deployed_at(network)
    deadline = timedelta(seconds=spec.rollout.progress_deadline_seconds)
    # A Deployment's own deadline is the spec's, so before that much time has passed since this
    # revision was applied, its ProgressDeadlineExceeded belongs to the revision rolled back from.
    deadline_counts = deployed is None or now - _utc(deployed) >= deadline

    def track(state: WorkloadState) -> None:
        if not state.ready:
            (failed if state.failed else waiting).append(state.message)

    # agents
    agents_sts = names.agents_name(network.name)
    agents = workload_state(index.get(("StatefulSet", agents_sts)), spec.pods, what=f"StatefulSet {agents_sts}")
    track(agents)
    ready_agents = spec.agents if agents.ready else min(spec.agents, agents.ready_replicas * spec.agents_per_pod)
    try:
        colors: dict[str, int] | None = topology_plan(spec).colour_counts()
    except ValueError:  # TopologyError: reported by check_network
        colors = None

    # components
    components: dict[str, ComponentStatus] = {}
    for component in spec.effective_components:
        name = names.component_name(network.name, component.name)
        kind = component_workload_kind(network, component.name)
        desired = component_replicas(component, scale)
        state = workload_state(index.get((kind, name)), desired, what=f"{kind} {name}", deadline_counts=deadline_counts)
        track(state)
        before = (previous.components or {}).get(component.name) or ComponentStatus()
        if component.autoscaling is None:  # nothing of the autoscaler's to carry over
            before = ComponentStatus()
        components[component.name] = before.model_copy(
            update={"workload": kind, "replicas": state.replicas if state.exists else desired,
                    "ready_replicas": state.ready_replicas}
        )

    # NATS
    if spec.nats.managed:
        nats_sts = names.nats_name(network.name)
        nats_state = workload_state(index.get(("StatefulSet", nats_sts)), spec.nats.replicas, what=f"StatefulSet {nats_sts}")
        track(nats_state)
        # cert-manager's servers' Certificate, when it issues them: the servers wait for its Secret.
        certificate = index.get((names.CERTIFICATE_KIND, names.nats_tls_name(network.name)))
        issued, why = certmanager.ready(certificate) if certificate is not None else (True, "")
        if not issued:
            waiting.append(f"Certificate {names.nats_tls_name(network.name)}: {why}")
        nats = NatsStatus(url=nats_url(network), ready=nats_state.ready and issued,
                          certificates="cert-manager" if certificate is not None else "operator")
    else:
        nats = NatsStatus(url=nats_url(network), ready=nats_ready)
        if nats_ready is False:
            waiting.append(f"NATS at {nats_url(network)} is not reachable")

    # progress deadline
    started = rollout_started if rollout_started is not None else _rollout_started(network)
    if waiting and started is not None and now - _utc(started) > deadline:
        failed.append(f"not ready {spec.rollout.progress_deadline_seconds}s after the rollout started")

    ready = not waiting and not failed and not problems
    if problems:
        blocked = Problem(problems[0].reason, _summary([p.message for p in problems]))
    elif failed:
        blocked = Problem(REASON_DEADLINE, _summary(failed + waiting))
    else:
        blocked = None

    generation = network.metadata.generation

    def condition(type_: str, status: bool, reason: str, message: str) -> Condition:
        value = "True" if status else "False"
        before = previous.condition(type_)
        since = before.last_transition_time if before is not None and before.status == value else now
        return Condition(
            type=type_,
            status=value,
            reason=reason,
            message=message,
            last_transition_time=since,
            observed_generation=generation,
        )

    summary = f"{spec.agents} agents, {len(components)} components and NATS are ready"
    if ready:
        ready_c = condition(READY, True, REASON_READY, summary)
        progressing_c = condition(PROGRESSING, False, REASON_ROLLOUT_COMPLETE, "all children are up to date and ready")
    elif blocked is not None:
        ready_c = condition(READY, False, blocked.reason, blocked.message)
        progressing_c = condition(PROGRESSING, False, blocked.reason, blocked.message)
    else:
        ready_c = condition(READY, False, REASON_PROGRESSING, _summary(waiting))
        progressing_c = condition(PROGRESSING, True, REASON_PROGRESSING, _summary(waiting))
    if blocked is not None:
        degraded_c = condition(DEGRADED, True, blocked.reason, blocked.message)
    elif warnings:
        degraded_c = condition(DEGRADED, True, warnings[0].reason, _summary([w.message for w in warnings]))
    else:
        degraded_c = condition(DEGRADED, False, REASON_AS_EXPECTED, "no problem found")
    if rolled_back is not None:
        rolled_back_c = condition(ROLLED_BACK, True, rolled_back.reason, rolled_back.message)
    else:
        rolled_back_c = condition(ROLLED_BACK, False, REASON_NOT_ROLLED_BACK, "running the spec's revision")

    status = AgentNetworkStatus(
        observed_generation=generation,
        conditions=[ready_c, progressing_c, degraded_c, rolled_back_c],
        current_revision=previous.current_revision,
        update_revision=previous.update_revision,
        history=previous.history,
        agents=AgentsStatus(desired=spec.agents, ready=ready_agents, colors=colors),
        components=components,
        nats=nats,
        workloads=workloads_summary(components),
        selector=names.selector_string(network.name, names.ROLE_AGENT),
    )
    return status.dump()
