"""The kopf wiring: watch events in, reconciles out.

Only event handlers and a resync timer are registered — no create/update
handlers — so kopf keeps no progress or diff-base bookkeeping on the user's
objects. Events for a network and for its children land in one work queue that
coalesces bursts (applying 26 children raises 26 watch events, not 26
reconciles) and never runs two reconciles of one network at once.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from prometheus_client import Counter, Gauge, Histogram

from agentnet_operator import names
from agentnet_operator.children import CHILD_KINDS
from agentnet_operator.cluster import RESOURCES, Cluster
from agentnet_operator.reconcile import Outcome, reconcile

log = logging.getLogger("agentnet.operator")

RECONCILES = Counter("agentnet_operator_reconciles_total", "Reconciles by result", ["result"])
RECONCILE_SECONDS = Histogram("agentnet_operator_reconcile_seconds", "Duration of one reconcile")
NETWORKS = Gauge("agentnet_operator_networks", "AgentNetworks the operator watches")

COALESCE_SECONDS = 0.05
MAX_RETRY_SECONDS = 30.0

NetworkKey = tuple[str, str]  # namespace, name


class WorkQueue:
    """Per-key serialised, coalescing, retrying execution of a blocking function.

    A key enqueued while it waits runs once; enqueued while it runs, it runs
    once more afterwards. Failures are retried with exponential backoff."""

    def __init__(self, work: Callable[[Hashable], None], delay: float = COALESCE_SECONDS):
        self.work, self.delay = work, delay
        self.waiting: set[Hashable] = set()
        self.running: set[Hashable] = set()
        self.again: set[Hashable] = set()
        self.failures: dict[Hashable, int] = {}
        self.tasks: set[asyncio.Task] = set()  # the loop holds tasks weakly: keep them alive

    def _start(self, key: Hashable) -> None:
        task = asyncio.create_task(self._run(key))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def enqueue(self, key: Hashable, delay: float | None = None) -> None:
        if key in self.running:
            self.again.add(key)
        elif key not in self.waiting:
            self.waiting.add(key)
            asyncio.get_running_loop().call_later(self.delay if delay is None else delay, self._start, key)

    async def _run(self, key: Hashable) -> None:
        self.waiting.discard(key)
        self.running.add(key)
        try:
            await asyncio.to_thread(self.work, key)
            self.failures.pop(key, None)
        except Exception:
            attempt = self.failures[key] = self.failures.get(key, 0) + 1
            backoff = min(MAX_RETRY_SECONDS, 0.5 * 2 ** attempt)
            log.exception("reconcile of %s failed (attempt %d); retrying in %.1fs", key, attempt, backoff)
            self.again.discard(key)
            self.running.discard(key)
            self.enqueue(key, delay=backoff)
            return
        self.running.discard(key)
        if key in self.again:
            self.again.discard(key)
            self.enqueue(key)


def _post_events(body: Mapping[str, Any], outcome: Outcome) -> None:
    """Events for what changed; a reconcile that wrote nothing posts nothing."""
    if outcome.applied:
        kopf.event(body, type="Normal", reason="Applied", message=_list(outcome.applied))
    if outcome.deleted:
        kopf.event(body, type="Normal", reason="Pruned", message=_list(outcome.deleted))
    if outcome.status_written:
        for problem in outcome.problems:
            kopf.event(body, type="Warning", reason=problem.reason, message=problem.message)


def _list(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def build_registry(cluster: Cluster, resync_seconds: float = 60.0) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    networks: dict[NetworkKey, dict[str, Any]] = {}

    def reconcile_network(key: Hashable) -> None:
        body = networks.get(key)  # type: ignore[arg-type]
        if body is None:
            return  # deleted meanwhile: garbage collection removes the children
        started = time.perf_counter()
        try:
            outcome = reconcile(cluster, body, now=datetime.now(UTC))
        except Exception:
            RECONCILES.labels("error").inc()
            raise
        finally:
            RECONCILE_SECONDS.observe(time.perf_counter() - started)
        RECONCILES.labels("changed" if outcome.wrote else "unchanged").inc()
        _post_events(body, outcome)

    queue = WorkQueue(reconcile_network)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING  # our own Events say what happened
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    @kopf.on.event(names.GROUP, names.VERSION, names.PLURAL, registry=registry)
    async def network_event(type: str | None, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
        key = (namespace, name)
        if type == "DELETED":
            networks.pop(key, None)
        else:
            networks[key] = dict(body)
            queue.enqueue(key)
        NETWORKS.set(len(networks))

    async def child_event(type: str | None, body: kopf.Body, namespace: str, **_: Any) -> None:
        cluster.observe(body, deleted=type == "DELETED")
        for ref in body.get("metadata", {}).get("ownerReferences", []):
            if ref.get("kind") == names.KIND and ref.get("controller") and (namespace, ref["name"]) in networks:
                queue.enqueue((namespace, ref["name"]))

    managed = {names.LABEL_MANAGED_BY: names.MANAGED_BY}
    for api_version, kind in CHILD_KINDS:  # SpinApps are watched once SpinKube's CRD exists
        group, _, version = api_version.rpartition("/")
        plural = RESOURCES[(api_version, kind)][1]
        kopf.on.event(group, version, plural, labels=managed, registry=registry, id=f"child-{plural}")(child_event)

    @kopf.timer(names.GROUP, names.VERSION, names.PLURAL, interval=resync_seconds,
                initial_delay=resync_seconds, registry=registry)
    async def resync(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
        # Level-based safety net: repairs anything a missed watch event hid.
        networks[(namespace, name)] = dict(body)
        queue.enqueue((namespace, name))

    return registry
