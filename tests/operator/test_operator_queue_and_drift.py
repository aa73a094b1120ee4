"""Pure parts of the reconcile loop: telling drift from defaulting, and the
work queue's coalescing, serialisation and retries."""

import asyncio
import threading

from agentnet_operator.cluster import ANNOTATION_APPLIED, covers, needs_apply, stamp_digest
from agentnet_operator.handlers import WorkQueue


def desired() -> dict:
    return stamp_digest({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"a": "1"}},
                         "spec": {"ports": [{"port": 80}]}}, "d1")


def live(**spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "labels": {"a": "1"}, "annotations": {ANNOTATION_APPLIED: "d1"},
                         "resourceVersion": "7", "uid": "u"},
            "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "clusterIP": "10.96.0.9", **spec}}


def test_fields_the_api_server_defaults_are_not_drift():
    assert covers(desired(), live())
    assert not needs_apply(desired(), live())


def test_a_changed_or_missing_field_is_drift():
    changed = live()
    changed["spec"]["ports"][0]["port"] = 81
    assert needs_apply(desired(), changed)
    extra_port = live()
    extra_port["spec"]["ports"].append({"port": 90})
    assert needs_apply(desired(), extra_port)
    relabelled = live()
    relabelled["metadata"]["labels"] = {}
    assert needs_apply(desired(), relabelled)


async def drained(queue: WorkQueue, timeout: float = 10) -> None:
    """Poll until no key waits (a retry's backoff included) or runs: then no run can start any more
    (the works here never ask to run again later), so what ran is all that will."""
    deadline = asyncio.get_running_loop().time() + timeout
    while queue.waiting or queue.running or queue.tasks:
        assert asyncio.get_running_loop().time() < deadline, "the queue did not drain"
        await asyncio.sleep(0.01)


def test_a_missing_child_or_a_new_digest_needs_apply():
    assert needs_apply(desired(), None)
    assert needs_apply(stamp_digest(desired(), "d2"), live())


async def test_a_burst_of_events_is_one_reconcile():
    runs: list[str] = []
    queue = WorkQueue(runs.append, delay=0.01)
    for _ in range(20):
        queue.enqueue("a")
    queue.enqueue("b")
    await drained(queue)
    assert sorted(runs) == ["a", "b"]


async def test_an_event_during_a_reconcile_runs_it_once_more_never_concurrently():
    release, started = threading.Event(), threading.Event()
    active, overlaps, runs = [0], [], []

    def work(key):
        active[0] += 1
        overlaps.append(active[0] > 1)
        runs.append(key)
        started.set()
        release.wait(2)
        active[0] -= 1

    queue = WorkQueue(work, delay=0.01)
    queue.enqueue("a")
    await asyncio.to_thread(started.wait, 2)
    for _ in range(5):
        queue.enqueue("a")
    release.set()
    await drained(queue)
    assert runs == ["a", "a"] and not any(overlaps)


async def test_a_failed_reconcile_is_retried():
    attempts: list[int] = []

    def flaky(key):
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("API server restarting")

    queue = WorkQueue(flaky, delay=0.01)
    queue.enqueue("a")
    await drained(queue)
    assert len(attempts) == 2 and not queue.failures


async def test_a_closed_queue_finishes_the_work_under_way_and_starts_no_more():
    """On shutdown: a reconcile started after the loop's executor went would fail ('Executor shutdown has
    been called', logged as a failed reconcile)."""
    release, started = threading.Event(), threading.Event()
    runs: list[str] = []

    def work(key):
        started.set()
        release.wait(2)
        runs.append(key)

    queue = WorkQueue(work, delay=0.01)
    queue.enqueue("a")
    await asyncio.to_thread(started.wait, 2)
    queue.enqueue("a")  # would run again after this run
    queue.enqueue("b", delay=0.05)  # waiting when the queue closes
    closing = asyncio.create_task(queue.close())
    release.set()
    await closing
    queue.enqueue("c")
    await asyncio.sleep(0.2)
    assert runs == ["a"] and not queue.tasks


def test_the_cache_keeps_the_newest_version_when_an_event_overtakes_an_apply_response():
    from agentnet_operator.cluster import Cluster

    cluster = Cluster(api=None)
    newer = {**live(), "metadata": {**live()["metadata"], "resourceVersion": "9", "namespace": "n"}}
    older = {**live(), "metadata": {**live()["metadata"], "resourceVersion": "8", "namespace": "n"}}
    cluster.observe(newer)  # the watch event arrived first
    cluster.observe(older)  # then the apply response it followed
    assert cluster.cached(newer)["metadata"]["resourceVersion"] == "9"
    cluster.observe(older, deleted=True)
    assert cluster.cached(newer) is None
