"""Revisions and rollback decisions (pure): what to deploy, and the history kept."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

from conftest import load_example, network_from

from agentnet_operator.children import digest
from agentnet_operator.model import HistoryEntry
from agentnet_operator.revisions import (
    StoredRevision, begin, controller_revision, plan_rollout, revision_content, settle, stored_revisions)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def body(image: str = "agentnet:1", **spec) -> dict:
    example = copy.deepcopy(load_example("autoscaling.yaml"))
    example["spec"].update(image=image, **spec)
    return example


def stored_from(*bodies: dict) -> dict[int, StoredRevision]:
    objects = [controller_revision(network_from(b), number, revision_content(network_from(b).spec))
               for number, b in enumerate(bodies, start=1)]
    return stored_revisions(objects)


def with_history(b: dict, *entries: tuple[int, str, str]) -> dict:
    history = [{"revision": n, "digest": d, "deployedAt": "2026-01-01T00:00:00Z", "result": r} for n, d, r in entries]
    healthy = next((n for n, _, r in entries if r in ("Deployed", "Superseded")), None)
    return {**b, "status": {"history": history, "updateRevision": entries[0][0], "currentRevision": healthy}}


def test_what_the_autoscaler_owns_and_rollout_settings_are_not_part_of_a_revision():
    base = revision_content(network_from(body()).spec)
    scaled = body()
    scaled["spec"]["components"][0]["replicas"] = 7  # stream-red is autoscaled
    scaled["spec"]["rollout"] = {"revisionHistoryLimit": 3, "progressDeadlineSeconds": 30}
    scaled["spec"]["rollbackTo"] = {"revision": 1}
    assert revision_content(network_from(scaled).spec) == base
    assert revision_content(network_from(body(image="agentnet:2")).spec) != base


def test_the_spec_is_deployed_as_a_new_revision_or_its_stored_one():
    fresh = plan_rollout(network_from(body()), {})
    assert fresh.revision is None and fresh.rolled_back is None and fresh.spec.image == "agentnet:1"
    stored = stored_from(body(), body(image="agentnet:2"))
    again = plan_rollout(network_from(body(image="agentnet:2")), stored)
    assert again.revision == 2 and again.digest == stored[2].digest


def test_rollback_to_deploys_a_stored_revision_and_refuses_an_unknown_one():
    stored = stored_from(body(), body(image="agentnet:2"))
    back = plan_rollout(network_from(body(image="agentnet:3", rollbackTo={"revision": 1})), stored)
    assert back.revision == 1 and back.spec.image == "agentnet:1" and back.rolled_back.reason == "RollbackTo"
    running = with_history(body(image="agentnet:2", rollbackTo={"revision": 9}), (2, stored[2].digest, "Deployed"))
    refused = plan_rollout(network_from(running), stored)
    assert refused.revision == 2 and refused.spec.image == "agentnet:2"  # what runs keeps running
    assert refused.problems[0].reason == "RevisionNotFound" and "stored: 1, 2" in refused.problems[0].message


def test_a_failed_revision_is_rolled_back_to_the_last_healthy_one_only_with_auto_rollback():
    stored = stored_from(body(), body(image="agentnet:2"), body(image="agentnet:3"))
    failed = with_history(body(image="agentnet:3"), (3, stored[3].digest, "Failed"), (2, stored[2].digest, "Superseded"),
                          (1, stored[1].digest, "Superseded"))
    plan = plan_rollout(network_from(failed), stored)
    assert plan.revision == 2 and plan.failed_revision == 3 and plan.rolled_back.reason == "AutoRollback"
    assert "revision 3" in plan.rolled_back.message and "rolled back to revision 2" in plan.rolled_back.message
    manual = copy.deepcopy(failed)
    manual["spec"]["rollout"] = {"autoRollback": False}
    assert plan_rollout(network_from(manual), stored).revision == 3


def test_history_one_entry_per_revision_newest_first():
    plan = plan_rollout(network_from(body()), {})
    history = begin([], plan, 1, now=T0)
    history = settle(history, ready=True, failed=None, limit=10)
    assert [(h.revision, h.result) for h in history] == [(1, "Deployed")]
    # a steady state changes nothing
    assert begin(history, plan, 1, now=T0 + timedelta(hours=1)) == history

    second = plan_rollout(network_from(body(image="agentnet:2")), {})
    history = begin(history, second, 2, now=T0 + timedelta(minutes=1))
    assert [(h.revision, h.result) for h in history] == [(2, "Deploying"), (1, "Superseded")]
    history = settle(history, ready=False, failed="not ready 120s after the rollout started", limit=10)
    assert history[0].result == "Failed" and "120s" in history[0].message


def test_a_rollback_marks_the_failed_revision_and_redeploys_the_old_one():
    stored = stored_from(body(), body(image="agentnet:2"))
    history = [HistoryEntry(revision=2, digest=stored[2].digest, deployed_at=T0, result="Failed", message="stuck"),
               HistoryEntry(revision=1, digest=stored[1].digest, deployed_at=T0, result="Superseded")]
    plan = plan_rollout(network_from(with_history(body(image="agentnet:2"), (2, stored[2].digest, "Failed"),
                                                  (1, stored[1].digest, "Superseded"))), stored)
    later = T0 + timedelta(minutes=5)
    entries = begin(history, plan, plan.revision, now=later)
    assert [(h.revision, h.result) for h in entries] == [(1, "Deploying"), (2, "RolledBack")]
    assert entries[0].deployed_at == later and "rolled back to revision 1" in entries[0].message
    assert settle(entries, ready=True, failed=None, limit=10)[0].result == "Deployed"


def test_history_is_pruned_at_the_limit_but_keeps_what_is_pinned():
    entries = [HistoryEntry(revision=n, digest=digest(n), deployed_at=T0, result="Superseded") for n in range(5, 0, -1)]
    entries[0].result = "Deploying"
    kept = settle(entries, ready=True, failed=None, limit=2, keep=[1])
    assert [h.revision for h in kept] == [5, 4, 1]


def test_a_revision_read_back_from_the_api_server_is_the_same_revision():
    """The API server stores a whole float as an int (`target: 100.0` comes back as 100): the spec that made
    the revision must still find it, or every reconcile would number the same spec anew."""
    network = network_from(body())
    content = revision_content(network.spec)
    assert 100.0 in [m["target"] for m in _metrics(content)]  # (the example's target, a float in the model)
    stored_object = controller_revision(network, 1, content)
    stored_object["data"] = json.loads(json.dumps(stored_object["data"]), parse_float=lambda text: _as_stored(float(text)))
    assert 100 in [m["target"] for m in _metrics(stored_object["data"]["spec"])]
    assert all(type(m["target"]) is int for m in _metrics(stored_object["data"]["spec"]) if m["target"] == 100)
    again = plan_rollout(network, stored_revisions([stored_object]))
    assert again.revision == 1


def _as_stored(number: float) -> float | int:
    return int(number) if number.is_integer() else number


def _metrics(content: dict) -> list[dict]:
    return [c["autoscaling"]["metric"] for c in content["components"] if c.get("autoscaling")]
