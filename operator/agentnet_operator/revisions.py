"""Revisions and rollback (pure: decides, the reconcile applies).

A revision is a distinct deployed spec: the spec without what is not deployed content
(`rollbackTo`, `rollout`) and without what the autoscaler owns (the replicas of
autoscaled components). Each is stored once as a ControllerRevision named by its digest
and numbered 1, 2, ... in the order first deployed; numbers never change, so a
`rollbackTo.revision` keeps meaning the same spec.

`plan_rollout` picks what to deploy: the revision `spec.rollbackTo` names; else, when the
spec's own revision failed and autoRollback is on, status.currentRevision (the last one
that ran healthy); else the spec itself. status.history keeps one entry per revision, newest first:
`begin` puts the deployed revision first, `settle` judges it once the status
is known; stored revisions missing from the history are pruned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentnet_operator import names
from agentnet_operator.children import child_metadata, digest
from agentnet_operator.model import AgentNetwork, AgentNetworkSpec, HistoryEntry
from agentnet_operator.status import REASON_REVISION_NOT_FOUND, Problem

REVISION_API_VERSION, REVISION_KIND = "apps/v1", "ControllerRevision"
REASON_AUTO_ROLLBACK = "AutoRollback"
REASON_ROLLBACK_TO = "RollbackTo"


def revision_content(spec: AgentNetworkSpec) -> dict[str, Any]:
    """The part of a spec a revision stores."""
    content = spec.dump()
    content.pop("rollbackTo", None)
    content.pop("rollout", None)
    for component in content.get("components") or ():
        if component.get("autoscaling"):
            component.pop("replicas", None)
    return content


@dataclass(frozen=True)
class StoredRevision:
    number: int
    digest: str
    content: dict[str, Any]
    name: str


def stored_revisions(objects: Iterable[Mapping[str, Any]]) -> dict[int, StoredRevision]:
    """The network's ControllerRevisions (among `objects`), by number."""
    out = {}
    for obj in objects:
        if obj.get("kind") == REVISION_KIND and "spec" in (obj.get("data") or {}):
            content = obj["data"]["spec"]
            out[int(obj["revision"])] = StoredRevision(int(obj["revision"]), digest(content), content, obj["metadata"]["name"])
    return out


def controller_revision(network: AgentNetwork, number: int, content: Mapping[str, Any]) -> dict[str, Any]:
    meta = child_metadata(network, names.revision_name(network.name, digest(content)), names.ROLE_REVISION)
    return {"apiVersion": REVISION_API_VERSION, "kind": REVISION_KIND, "metadata": meta,
            "data": {"spec": dict(content)}, "revision": number}


@dataclass
class Rollout:
    """What to deploy now."""

    spec: AgentNetworkSpec  # the spec to render children from
    content: dict[str, Any]
    digest: str
    revision: int | None  # its stored number; None: a new revision
    rolled_back: Problem | None = None  # why an older revision runs instead of the spec
    problems: list[Problem] = field(default_factory=list)
    failed_revision: int | None = None  # the spec's revision, when it failed and was rolled back

    def network(self, network: AgentNetwork) -> AgentNetwork:
        """`network` with the deployed spec (metadata and status unchanged)."""
        return network.model_copy(update={"spec": self.spec})


def _spec_from(content: Mapping[str, Any], current: AgentNetworkSpec) -> AgentNetworkSpec:
    """A stored revision as a spec; rollout settings are always the current spec's."""
    return AgentNetworkSpec.model_validate({**content, "rollout": current.rollout.dump()})


def _entry(history: Sequence[HistoryEntry], number: int | None) -> HistoryEntry | None:
    return next((h for h in history if h.revision == number), None)


def plan_rollout(network: AgentNetwork, stored: Mapping[int, StoredRevision]) -> Rollout:
    spec = network.spec
    status = network.status
    history = (status.history if status else None) or []
    own = revision_content(spec)
    own_digest = digest(own)
    by_digest = {r.digest: r for r in stored.values()}
    own_number = by_digest[own_digest].number if own_digest in by_digest else None

    def stored_rollout(revision: StoredRevision, **kw: Any) -> Rollout:
        return Rollout(_spec_from(revision.content, spec), revision.content, revision.digest, revision.number, **kw)

    if spec.rollback_to is not None:
        wanted = spec.rollback_to.revision
        if wanted in stored:
            why = Problem(REASON_ROLLBACK_TO, f"running revision {wanted}, as spec.rollbackTo asks")
            return stored_rollout(stored[wanted], rolled_back=why)
        known = ", ".join(map(str, sorted(stored))) or "none"
        problem = Problem(REASON_REVISION_NOT_FOUND, f"rollbackTo.revision {wanted} is not stored (stored: {known}); nothing was changed")
        running = stored.get(status.update_revision) if status and status.update_revision else None
        if running is not None:  # refuse: keep what runs rather than deploy the spec
            return stored_rollout(running, problems=[problem])
        return Rollout(spec, own, own_digest, own_number, problems=[problem])

    own_entry = _entry(history, own_number)
    good = status.current_revision if status else None  # the last revision that was running and healthy
    if (spec.rollout.auto_rollback and own_entry is not None and own_entry.result in ("Failed", "RolledBack")
            and good in stored and good != own_number):
        why = Problem(
            REASON_AUTO_ROLLBACK,
            f"revision {own_number} was not healthy within {spec.rollout.progress_deadline_seconds}s"
            f"{': ' + own_entry.message if own_entry.message else ''}; rolled back to revision {good}",
        )
        return stored_rollout(stored[good], rolled_back=why, failed_revision=own_number)
    return Rollout(spec, own, own_digest, own_number)


def begin(history: Sequence[HistoryEntry], rollout: Rollout, number: int, *, now: datetime) -> list[HistoryEntry]:
    """status.history with revision `number` first, as deployed now unless it already runs."""
    entries = [h.model_copy() for h in history]
    front = _entry(entries, number)
    if front is None or entries[0] is not front or front.result not in ("Deploying", "Deployed", "Failed"):
        for other in entries:
            if other.revision == number:
                continue
            if other.result == "Deployed":
                other.result = "Superseded"
            elif other.result == "Deploying":
                other.result, other.message = "Superseded", "replaced before it became healthy"
        if front is not None:
            entries.remove(front)
        message = rollout.rolled_back.message if rollout.rolled_back is not None else None
        entries.insert(0, HistoryEntry(revision=number, digest=rollout.digest, deployed_at=now, result="Deploying", message=message))
    if rollout.failed_revision is not None:
        failed = _entry(entries, rollout.failed_revision)
        if failed is not None and failed.result == "Failed":
            failed.result = "RolledBack"
    return entries


def settle(entries: list[HistoryEntry], *, ready: bool, failed: str | None, limit: int, keep: Iterable[int] = ()) -> list[HistoryEntry]:
    """The history once the deployed revision (the first entry) is judged: ready, or
    failed (why, when its progress deadline passed). Entries beyond `limit` are
    dropped, except the deployed one and `keep`."""
    front = entries[0]
    if ready and front.result in ("Deploying", "Failed"):
        front.result = "Deployed"
    elif failed and front.result == "Deploying":
        front.result, front.message = "Failed", failed[:4096]
    pinned = {front.revision, *keep}
    return [h for position, h in enumerate(entries) if position < limit or h.revision in pinned]


def next_number(stored: Iterable[int], history: Iterable[HistoryEntry]) -> int:
    return max([0, *stored, *(h.revision for h in history)]) + 1
