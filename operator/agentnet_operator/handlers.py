"""The kopf wiring: watch events in, reconciles out, through one `Controller`.

Only event handlers are registered — no create/update handlers, no timers — so
kopf keeps no progress, diff-base or finalizer on the user's objects. Events for
a network and for its children land in one work queue that coalesces bursts
(applying 26 children raises 26 watch events, not 26 reconciles) and never runs
two reconciles of one network at once. A loop reads the metrics of autoscaled
components and queues a reconcile, which decides; another resyncs every network.
With leader election (leader.py) only the process holding the Lease does either.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import kopf
from prometheus_client import Counter, Gauge, Histogram

from agentnet_operator import certmanager, names
from agentnet_operator.children import CHILD_KINDS
from agentnet_operator.cluster import RESOURCES, Cluster, resource_version
from agentnet_operator.leader import LeaderElector
from agentnet_operator.metric_sources import MetricReader, Reading
from agentnet_operator.model import AgentNetwork
from agentnet_operator.reconcile import Outcome, reconcile
from agentnet_operator.revisions import REVISION_API_VERSION, REVISION_KIND

log = logging.getLogger("agentnet.operator")

RECONCILES = Counter("agentnet_operator_reconciles_total", "Reconciles by result", ["result"])
RECONCILE_SECONDS = Histogram("agentnet_operator_reconcile_seconds", "Duration of one reconcile")
NETWORKS = Gauge("agentnet_operator_networks", "AgentNetworks the operator watches")
SCALINGS = Counter("agentnet_operator_scalings_total", "Replica changes made by the autoscaler",
                   ["namespace", "network", "component", "direction"])
METRIC_VALUE = Gauge("agentnet_operator_autoscale_metric", "Last autoscaling metric value per replica",
                     ["namespace", "network", "component"])
METRIC_ERRORS = Counter("agentnet_operator_autoscale_metric_errors_total", "Metric reads that failed",
                        ["namespace", "network", "component"])
ROLLBACKS = Counter("agentnet_operator_rollbacks_total", "Revisions rolled back", ["namespace", "network"])

COALESCE_SECONDS = 0.05
MAX_RETRY_SECONDS = 30.0

NetworkKey = tuple[str, str]  # namespace, name
K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Per-key serialised, coalescing, retrying execution of a blocking function.

    A key enqueued while it waits runs once; enqueued while it runs, it runs
    once more afterwards. Failures are retried with exponential backoff. The work
    may return seconds after which the key should run again (e.g. a deadline)."""

    def __init__(self, work: Callable[[K], float | None], delay: float = COALESCE_SECONDS):
        self.work, self.delay = work, delay
        self.waiting: set[K] = set()
        self.running: set[K] = set()
        self.again: set[K] = set()
        self.failures: dict[K, int] = {}
        self.tasks: set[asyncio.Task] = set()  # the loop holds tasks weakly: keep them alive
        self.closed = False

    def _start(self, key: K) -> None:
        if self.closed:
            return
        task = asyncio.create_task(self._run(key))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def enqueue(self, key: K, delay: float | None = None) -> None:
        if self.closed:
            return
        if key in self.running:
            self.again.add(key)
        elif key not in self.waiting:
            self.waiting.add(key)
            asyncio.get_running_loop().call_later(self.delay if delay is None else delay, self._start, key)

    async def close(self) -> None:
        """Start nothing more (on shutdown the loop's executor goes next); wait for the work under way."""
        self.closed = True
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _run(self, key: K) -> None:
        self.waiting.discard(key)
        self.running.add(key)
        try:
            again_after = await asyncio.to_thread(self.work, key)
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
        elif again_after is not None:
            asyncio.get_running_loop().call_later(again_after, self.enqueue, key)


def _post_events(body: Mapping[str, Any], outcome: Outcome) -> None:
    """Events for what changed; a reconcile that wrote nothing posts nothing."""
    meta = body["metadata"]
    for notice in outcome.notices:
        log.info("%s/%s: %s: %s", meta["namespace"], meta["name"], notice.reason, notice.message)
        kopf.event(body, type=notice.type, reason=notice.reason, message=notice.message)
    if outcome.applied:
        kopf.event(body, type="Normal", reason="Applied", message=_list(outcome.applied))
    if outcome.deleted:
        kopf.event(body, type="Normal", reason="Pruned", message=_list(outcome.deleted))
    if outcome.status_written:
        for problem in (*outcome.problems, *outcome.warnings):
            kopf.event(body, type="Warning", reason=problem.reason, message=problem.message)


def _list(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class Controller:
    """The operator's state and what it does with each watch event.

    It keeps the latest body of every network, the latest metric reads of their
    autoscaled components and the time of the read each decision acted on; one work
    queue runs the reconciles. With an elector it acts only while it leads: a standby
    keeps its caches warm from the same watches and takes over with a full resync."""

    def __init__(self, cluster: Cluster, *, resync_seconds: float = 60.0, autoscale_seconds: float = 1.0,
                 elector: LeaderElector | None = None, use_cert_manager: bool = True):
        self.cluster, self.elector = cluster, elector
        self.resync_seconds, self.autoscale_seconds = resync_seconds, autoscale_seconds
        self.networks: dict[NetworkKey, dict[str, Any]] = {}
        self.networks_lock = threading.Lock()  # watch events on the loop, status writes from reconcile threads
        self.readings: dict[NetworkKey, dict[str, Reading]] = {}  # latest read per component
        self.decided: dict[tuple[NetworkKey, str], datetime] = {}  # time of the read last acted on
        self.reader = MetricReader(cluster)
        self.queue: WorkQueue[NetworkKey] = WorkQueue(self.reconcile_network)
        # Whether cert-manager's Certificate CRD is served: asked once before the first reconcile,
        # then kept by the CRD's watch events (installed or removed while the operator runs).
        self.use_cert_manager = use_cert_manager
        self.cert_manager: bool | None = None if use_cert_manager else False
        self.loops: list[asyncio.Task] = []

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading

    def registry(self) -> kopf.OperatorRegistry:
        """The kopf wiring: one line per handler. Only event handlers, no create/update
        handlers or timers, so kopf keeps no progress, diff-base or finalizer on anything."""
        registry = kopf.OperatorRegistry()
        kopf.on.startup(registry=registry)(configure)
        kopf.on.event(names.GROUP, names.VERSION, names.PLURAL, registry=registry)(self.on_network)
        for group, version, plural in _child_resources():
            child = kopf.on.event(group, version, plural, labels=MANAGED, registry=registry, id=f"child-{plural}")
            child(self.on_child)
        kopf.on.event(*CRD_RESOURCE, field="metadata.name", value=_watched_crd, registry=registry,
                      id="crd")(self.on_crd)
        kopf.on.cleanup(registry=registry)(self.close)
        return registry

    # --- watch events ----------------------------------------------------------------

    async def on_network(self, type: str | None, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
        self._start_loops()
        key = (namespace, name)
        if type == "DELETED":
            self._forget(key)
        else:
            self._keep_newest(key, body)
            self._enqueue(key)
            NETWORKS.set(len(self.networks))

    def _forget(self, key: NetworkKey) -> None:
        with self.networks_lock:
            self.networks.pop(key, None)
        self.readings.pop(key, None)
        for decided in list(self.decided):  # a copy: reconcile threads write it meanwhile
            if decided[0] == key:
                self.decided.pop(decided, None)
        NETWORKS.set(len(self.networks))

    async def on_child(self, type: str | None, body: kopf.Body, namespace: str, **_: Any) -> None:
        self._start_loops()
        self.cluster.observe(body, deleted=type == "DELETED")
        for ref in body.get("metadata", {}).get("ownerReferences", []):
            if ref.get("kind") == names.KIND and ref.get("controller") and (namespace, ref["name"]) in self.networks:
                self._enqueue((namespace, ref["name"]))

    async def on_crd(self, type: str | None, body: kopf.Body, name: str, **_: Any) -> None:
        """Our own CRD's event comes as soon as kopf watches (it is always there), so the loops, leader
        election included, start on an empty cluster too; the Certificate CRD's say whether cert-manager is."""
        self._start_loops()
        if name != names.CERTIFICATE_CRD or not self.use_cert_manager:
            return
        served = type != "DELETED" and certmanager.crd_served(body)
        if served != self.cert_manager:
            log.info("cert-manager's Certificate CRD is %s: certificates now come from %s",
                     "served" if served else "gone", "cert-manager" if served else "the operator")
            self.cert_manager = served
            await self.resync()

    def _keep_newest(self, key: NetworkKey, body: Mapping[str, Any], *, known: bool = False) -> None:
        """A reconcile's own status write and the watch event that follows it race: a reconcile that
        ran on the older body would act on a decision twice (an Event posted again, a scale repeated).
        known: only replace a kept body (a network deleted meanwhile stays gone)."""
        with self.networks_lock:
            kept = self.networks.get(key)
            if kept is None and known:
                return
            if kept is None or resource_version(body) >= resource_version(kept):
                self.networks[key] = dict(body)

    def _enqueue(self, key: NetworkKey) -> None:
        if self.leading:
            self.queue.enqueue(key)

    # --- the reconcile -----------------------------------------------------------------

    def fresh_readings(self, key: NetworkKey) -> dict[str, Reading]:
        """Reads not acted on yet, and every failed one (its warning stands until a read succeeds)."""
        latest = dict(self.readings.get(key, {}))
        return {c: r for c, r in latest.items() if r.error is not None or self.decided.get((key, c)) != r.time}

    def reconcile_network(self, key: NetworkKey) -> float | None:
        body = self.networks.get(key)
        if body is None or not self.leading:
            return None  # deleted meanwhile (garbage collection removes the children), or no longer the leader
        if self.cert_manager is None:
            self.cert_manager = self.cluster.api_group_served(names.CERT_MANAGER_API_VERSION)
        fresh = self.fresh_readings(key)
        started = time.perf_counter()
        try:
            outcome = reconcile(self.cluster, body, now=datetime.now(UTC), readings=fresh,
                                cert_manager=self.cert_manager)
        except Exception:
            RECONCILES.labels("error").inc()
            if self._forget_if_deleted(key):
                return None
            raise
        finally:
            RECONCILE_SECONDS.observe(time.perf_counter() - started)
        for component, reading in fresh.items():
            self.decided[(key, component)] = reading.time
        if outcome.written is not None:
            self._keep_newest(key, outcome.written, known=True)
        _count(key, outcome)  # before the reconcile is counted: once it is, its scalings are
        RECONCILES.labels("changed" if outcome.wrote else "unchanged").inc()
        _post_events(body, outcome)
        return outcome.requeue_after

    def _forget_if_deleted(self, key: NetworkKey) -> bool:
        """After a failed reconcile: whether the network is gone from the API server, forgotten if so.
        A watch that reconnects lists what exists and never says what was deleted in the gap, so
        a network whose DELETED event was lost would otherwise be retried for ever."""
        try:
            gone = self.cluster.get(names.API_VERSION, names.KIND, *key) is None
        except Exception:  # the API server does not answer: the reconcile's own error says enough
            return False
        if gone:
            log.info("%s/%s: deleted while the watch was away; forgotten", *key)
            self._forget(key)
        return gone

    # --- the loops ---------------------------------------------------------------------

    def _start_loops(self) -> None:
        """Plain tasks, not kopf timers: a kopf timer puts a finalizer on every network, and nothing
        here needs one (children go with their owner by garbage collection). Started from the first
        watch event, so they run in the context kopf.event() needs (a startup handler's lacks it)."""
        if self.loops:
            return
        self.loops.append(asyncio.create_task(_every(self.resync_seconds, self.resync)))
        self.loops.append(asyncio.create_task(_every(self.autoscale_seconds, self.read_metrics)))
        if self.elector is not None:
            self.loops.append(asyncio.create_task(self.elector.run(on_started=self.resync)))

    async def resync(self) -> None:
        """Level-based safety net: repairs anything a missed watch event hid; and a new leader's first act."""
        for key in list(self.networks):
            self._enqueue(key)

    async def read_metrics(self) -> None:
        if not self.leading:
            return
        autoscaled = {}
        for key, body in list(self.networks.items()):
            network = AgentNetwork.from_body(body)
            if any(c.autoscaling for c in network.spec.effective_components):
                autoscaled[key] = network
        results = await asyncio.gather(*(self.reader.read(n) for n in autoscaled.values()))
        for (namespace, name), read in zip(autoscaled, results):
            self.readings[(namespace, name)] = read
            for component, reading in read.items():
                if reading.error is None:
                    METRIC_VALUE.labels(namespace, name, component).set(reading.value)
                else:
                    METRIC_ERRORS.labels(namespace, name, component).inc()
            self._enqueue((namespace, name))

    async def close(self, **_: Any) -> None:
        """On shutdown: stop campaigning, finish the reconciles under way, then release the Lease
        so a standby need not wait for it to expire."""
        for task in self.loops:
            task.cancel()
        await asyncio.gather(*self.loops, return_exceptions=True)
        if self.elector is not None:
            self.elector.stop("shutting down")
        await self.queue.close()
        if self.elector is not None:
            await self.elector.release()
        await self.reader.close()


def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # our own Events say what happened
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


MANAGED = {names.LABEL_MANAGED_BY: names.MANAGED_BY}
CRD_RESOURCE = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")  # kopf's observe grant covers it


def _watched_crd(value: str | None, **_: Any) -> bool:
    """The CRDs (by metadata.name) on_crd is called for: kopf neither calls nor logs a handler for the others."""
    return value in (names.CRD_NAME, names.CERTIFICATE_CRD)


def _child_resources() -> list[tuple[str, str, str]]:
    """(group, version, plural) of every watched child kind. SpinApps are watched once SpinKube's
    CRD exists; revisions are watched but never pruned as children."""
    out = []
    for api_version, kind in (*CHILD_KINDS, (REVISION_API_VERSION, REVISION_KIND)):
        group, _, version = api_version.rpartition("/")
        out.append((group, version, RESOURCES[(api_version, kind)][1]))
    return out


async def _every(seconds: float, action: Callable[[], Awaitable[None]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await action()
        except Exception:
            log.exception("periodic %s failed", action.__name__)


def _count(key: NetworkKey, outcome: Outcome) -> None:
    namespace, name = key
    for notice in outcome.notices:
        if notice.reason in ("ScaleUp", "ScaleDown"):
            SCALINGS.labels(namespace, name, notice.component, notice.reason.removeprefix("Scale").lower()).inc()
        elif notice.reason == "RolledBack":
            ROLLBACKS.labels(namespace, name).inc()
