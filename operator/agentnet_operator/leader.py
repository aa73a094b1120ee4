"""Leader election over a coordination.k8s.io/v1 Lease, with client-go's semantics.

One candidate holds the Lease (`spec.holderIdentity`) and renews it (`renewTime`) every
retry period. The others read it as often and take it over only once its record has
not changed for its `leaseDurationSeconds`, timed by their own clock from when they
saw it change (clocks of two machines are never compared). A holder that cannot renew
within the renew deadline stops leading at once; since the deadline is shorter than
the duration, it stops before any standby may take over. `acquireTime` is when the
holder took the Lease, `leaseTransitions` counts changes of holder. Writes carry the
read's resourceVersion, so of two candidates racing for an expired Lease one wins and
the other gets a conflict. On a clean stop the holder releases the Lease (holder
emptied, duration 1 s), so a standby need not wait out the duration.

`next_record` decides (pure); `LeaderElector` reads and writes the Lease.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter, Gauge

from agentnet_operator.settings import JITTER_FACTOR, LeaseSettings

log = logging.getLogger("agentnet.operator.leader")

LEADING = Gauge("agentnet_operator_leader", "1 while this operator process holds the Lease, else 0")
TRANSITIONS = Counter("agentnet_operator_leader_transitions_total",
                      "Times this operator process started or stopped leading", ["event"])

RELEASED_DURATION_SECONDS = 1  # what a released Lease says, as client-go's release writes


def default_identity() -> str:
    """The pod's name (its hostname) and a random part, as client-go's callers make it:
    a restarted container is a new candidate, never mistaken for the old holder."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Record:
    """The Lease's spec: who holds it and since when."""

    holder: str
    duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int

    @classmethod
    def from_spec(cls, spec: client.V1LeaseSpec | None) -> Record:
        spec = spec or client.V1LeaseSpec()
        return cls(spec.holder_identity or "", spec.lease_duration_seconds or 0, spec.acquire_time,
                   spec.renew_time, spec.lease_transitions or 0)

    def to_spec(self) -> dict[str, Any]:
        return {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration_seconds,
                "acquireTime": _micro_time(self.acquire_time), "renewTime": _micro_time(self.renew_time),
                "leaseTransitions": self.transitions}


def _micro_time(moment: datetime | None) -> str | None:
    """The API's MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_record(current: Record | None, identity: str, duration_seconds: int, now: datetime,
                expired: bool) -> Record | None:
    """What `identity` writes into the Lease now, or None when another holds it unexpired.

    `expired`: the current record has not changed for its own duration, by the caller's clock."""
    if current is None:
        return Record(identity, duration_seconds, now, now, 0)
    if current.holder == identity:
        return replace(current, duration_seconds=duration_seconds, renew_time=now)
    if current.holder and not expired:
        return None
    return Record(identity, duration_seconds, now, now, current.transitions + 1)


class LeaderElector:
    """Campaigns for the Lease until cancelled; `leading` says whether this process may act.

    `on_started` is awaited each time this process becomes the leader; nothing is called on
    a loss, since the callers check `leading` before each piece of work."""

    def __init__(self, api: client.ApiClient, settings: LeaseSettings, identity: str | None = None):
        self.leases = client.CoordinationV1Api(api)
        self.settings = settings
        # Its own thread: never queued behind reconciles in the loop's default executor.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")
        self._timeout = settings.renew_deadline_seconds  # per request: a hung call frees the thread in time
        self.identity = identity or default_identity()
        self.leading = False
        self._observed: tuple[Record | None, float] = (None, 0.0)  # the record last seen changed, and when
        self._renewed = 0.0  # monotonic time the last successful write was sent

    async def run(self, on_started: Callable[[], Awaitable[None]]) -> None:
        settings = self.settings
        log.info("candidate %s for Lease %s/%s", self.identity, settings.namespace, settings.name)
        while True:
            # The deadline counts from when a successful write was sent: a standby times the Lease
            # from when it saw the write, which is later.
            sent = time.monotonic()
            if self.leading:
                remaining = settings.renew_deadline_seconds - (sent - self._renewed)
                held = await self._attempt(timeout=max(remaining, 0.001))
                if held:
                    self._renewed = sent
                elif held is None or time.monotonic() - self._renewed >= settings.renew_deadline_seconds:
                    self.stop("lost to another holder" if held is None else "could not renew within the deadline")
                await asyncio.sleep(settings.retry_period_seconds)
            else:
                if await self._attempt(timeout=settings.renew_deadline_seconds):
                    self._renewed = sent
                    self.leading = True
                    LEADING.set(1)
                    TRANSITIONS.labels("started").inc()
                    log.warning("%s leads (Lease %s/%s)", self.identity, settings.namespace, settings.name)
                    await on_started()
                    continue
                await asyncio.sleep(settings.retry_period_seconds * (1 + random.random() * JITTER_FACTOR))

    def stop(self, why: str) -> None:
        """Stop leading now (the Lease stays held until `release` or its expiry)."""
        if not self.leading:
            return
        self.leading = False
        LEADING.set(0)
        TRANSITIONS.labels("stopped").inc()
        log.error("%s stops leading: %s", self.identity, why)

    async def _attempt(self, timeout: float) -> bool | None:
        """One read and write: True when this process holds the Lease after it; None when another
        holds it unexpired; False when the API did not answer in time or refused the write."""
        try:
            return await asyncio.wait_for(self._call(self._acquire_or_renew), timeout)
        except Exception as error:  # whatever the cause (timeout, conflict, connection), not written
            log.info("Lease %s/%s not written: %s", self.settings.namespace, self.settings.name,
                     getattr(error, "reason", None) or repr(error))
            return False

    async def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, lambda: function(*args, **kwargs))

    def _acquire_or_renew(self) -> bool | None:
        settings = self.settings
        try:
            lease = self.leases.read_namespaced_lease(settings.name, settings.namespace,
                                                      _request_timeout=self._timeout)
        except ApiException as error:
            if error.status != 404:
                raise
            lease = None
        current = None if lease is None else Record.from_spec(lease.spec)
        now_mono = time.monotonic()
        if current != self._observed[0]:
            self._observed = (current, now_mono)
        expired = current is not None and now_mono >= self._observed[1] + current.duration_seconds
        record = next_record(current, self.identity, settings.duration_seconds, datetime.now(UTC), expired)
        if record is None:
            return None
        meta = {"name": settings.name, "namespace": settings.namespace}
        if lease is None:
            self.leases.create_namespaced_lease(settings.namespace, {"metadata": meta, "spec": record.to_spec()},
                                                _request_timeout=self._timeout)
        else:
            meta["resourceVersion"] = lease.metadata.resource_version  # a conflict if another wrote meanwhile
            self.leases.replace_namespaced_lease(settings.name, settings.namespace,
                                                 {"metadata": meta, "spec": record.to_spec()},
                                                 _request_timeout=self._timeout)
        self._observed = (record, time.monotonic())
        return True

    async def release(self) -> None:
        """Give the Lease up if this process holds it (after `stop`, once its work has ended):
        a standby takes it at its next read."""
        settings = self.settings
        try:
            lease = await self._call(self.leases.read_namespaced_lease, settings.name, settings.namespace,
                                     _request_timeout=self._timeout)
            current = Record.from_spec(lease.spec)
            if current.holder != self.identity:
                return
            now = datetime.now(UTC)
            released = Record("", RELEASED_DURATION_SECONDS, now, now, current.transitions)
            body = {"metadata": {"name": settings.name, "namespace": settings.namespace,
                                 "resourceVersion": lease.metadata.resource_version}, "spec": released.to_spec()}
            await self._call(self.leases.replace_namespaced_lease, settings.name, settings.namespace, body,
                             _request_timeout=self._timeout)
        except Exception as error:  # released or not, this process is on its way out
            log.warning("Lease %s/%s not released (%s): a standby takes over once it expires",
                        settings.namespace, settings.name, error)
