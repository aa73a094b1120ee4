"""Connecting to NATS, the same way in every agentnet process, and the JetStream objects processes need.

Agents (agent/transport.py) and service components both connect through `connect`:
retry until the server answers (it may start after us), then reconnect forever.
nats-py is imported in a worker thread, so a process answers HTTP while it loads.
A `NatsState` follows one connection for readiness: connected, or why not (the server
away, or refusing our credentials).

The work queue is one JetStream stream with work-queue retention; each stream-{colour}
component pulls from its own durable consumer, whose pending count is the lag the
operator's autoscaler reads (agentnet_operator reads the same names from here).
Timeline events go to a second stream (limits retention, file storage, bounded in age and
bytes): the interaction-timeline component reads it with a durable consumer of its own, so
what is published while it is down waits for it there.

JetStream objects live in the server's store, which a restarted server may have lost:
a `JetStreamKeeper` looks for each object a process needs every second and right after
a reconnect, and creates the ones that are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from agentnet_runtime.agent.subjects import TIMELINE_EVENTS
from agentnet_runtime.config import NatsAuth

log = logging.getLogger("agentnet.nats")

WORK_STREAM = "AGENTNET_WORK"
WORK_SUBJECTS = "work.*"
TIMELINE_STREAM = "AGENTNET_TIMELINE"
# The stream is a buffer for a timeline that is away, not the archive (DuckDB is): a day, 256 MiB at most,
# oldest dropped first, so the NATS volume stays bounded whatever happens.
TIMELINE_STREAM_MAX_AGE = 86_400.0
TIMELINE_STREAM_MAX_BYTES = 256 * 2**20
TIMELINE_DUPLICATE_WINDOW = 120.0  # seconds the server drops a batch republished with the same Nats-Msg-Id
TIMELINE_CONSUMER_INACTIVE = 7 * 86_400.0  # a timeline replica gone this long loses its durable consumer
CHECK_INTERVAL = 1.0  # seconds between two looks at a process's JetStream objects

# How long data sent to a server may stay unacknowledged before the kernel drops the connection (TCP_USER_TIMEOUT).
# A server whose pod is deleted sends FIN, then its address vanishes: what we sent after that is never
# acknowledged, and without a bound the kernel retransmits it for about 15 minutes (tcp_retries2). nats-py's
# reconnect waits for the old TLS connection to close, and asyncio closes it only once that data is out
# (nats-io/nats.py#671): the process stays disconnected that long. A live server acknowledges in
# milliseconds even under load; the client's own pings already give up on a server silent for 10 s.
UNACKNOWLEDGED_SECONDS = 10

# Readiness reasons of a connection that is not up.
NATS_DISCONNECTED = "NATS disconnected"
NATS_AUTHORIZATION = "NATS authorization violation"


def work_subject(colour: str) -> str:
    """Subject a term for the `colour` (RED | BLUE | GREEN) stream component is published on."""
    return f"work.{colour.lower()}"


def component_work_subject(component: str) -> str:
    """Subject of a work-queue component's queue: stream-red reads work.red."""
    return work_subject(component.removeprefix("stream-"))


def work_consumer(component: str) -> str:
    """Durable consumer of a work-queue component, e.g. "stream-red"."""
    return component


# --- the connection ------------------------------------------------------------------------------


def _refused_credentials(error: Exception) -> bool:
    # nats-py reports the server's -ERR 'Authorization Violation' as a plain nats.errors.Error.
    return type(error).__name__ == "AuthorizationError" or "authorization violation" in str(error).lower()


def _hung_up(error: Exception) -> bool:
    # The server closes the connection once it has refused our credentials, and nats-py may report that
    # reset after the refusal: it says nothing new about why the attempt failed.
    return isinstance(error, (ConnectionResetError, BrokenPipeError)) or type(error).__name__ == "UnexpectedEOF"


def _refused_subject(error: Exception) -> bool:
    # The server's -ERR 'Permissions Violation for Publish to "..."' (or Subscription to), as nats-py passes it on.
    return "permissions violation" in str(error).lower()


def _refused_reply(error: Exception) -> bool:
    # A reply refused although the grant allows responses: the server allows one reply per request it delivered
    # on this connection, so the request came before a reconnection (its server is gone) or was answered already.
    return 'permissions violation for publish to "_inbox.' in str(error).lower()


class NatsState:
    """What one NATS connection is doing, for readiness; `connect(state=...)` keeps it up to date."""

    def __init__(self) -> None:
        self.client: Any = None  # the nats-py client, once connected
        self.refused = False  # the server refused our credentials at the last attempt
        self.changed = asyncio.Event()  # set at every (re)connection and disconnection
        self._last_error = ""
        self._refusals: set[str] = set()  # permission violations said already
        self._reply_refused = False  # a refused reply said on this connection already

    @property
    def connections(self) -> int:
        """Successful (re)connections so far (a restarted server may have lost its store). Counted by
        nats-py before it says connected: its reconnected callback comes a round trip later, and a count
        kept there let readiness pass on the new connection with the objects seen on the old one."""
        return 0 if self.client is None else 1 + self.client.stats["reconnects"]

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    def not_ready(self) -> list[str]:
        if self.connected:
            return []
        return [NATS_AUTHORIZATION if self.refused else NATS_DISCONNECTED]

    def callbacks(self, error_cb=None, disconnected_cb=None, reconnected_cb=None, **others: Any) -> dict[str, Any]:
        """nats.connect() callbacks that keep this state, then call the given ones."""

        async def on_error(error: Exception) -> None:
            # An attempt failed: say why (a live connection's errors do not say why it is down, nor a hang-up).
            if not self.connected and not _hung_up(error):
                self.refused = _refused_credentials(error)
            if _refused_reply(error):  # every reply has a subject of its own: said once per connection
                if not self._reply_refused:
                    self._reply_refused = True
                    log.warning("NATS refused a reply (its request came before a reconnection, or was answered "
                                "already): %s", error)
            elif _refused_subject(error):  # the connection stays up; each subject refused is said once
                if str(error) not in self._refusals:
                    self._refusals.add(str(error))
                    log.error("NATS refused a subject to this process's user (its grant in permissions.py lacks it): %s", error)
            elif str(error) != self._last_error:  # nats-py retries every 0.25 s: say it once
                self._last_error = str(error)
                log.warning("NATS: %s", error)
            if error_cb is not None:
                await error_cb(error)

        async def on_disconnected() -> None:
            self.changed.set()
            if disconnected_cb is not None:
                await disconnected_cb()

        async def on_reconnected() -> None:
            self._up()
            if reconnected_cb is not None:
                await reconnected_cb()

        return {"error_cb": on_error, "disconnected_cb": on_disconnected, "reconnected_cb": on_reconnected, **others}

    def _up(self) -> None:
        bound_unacknowledged_time(self.client)
        self.refused, self._last_error, self._reply_refused = False, "", False
        self.changed.set()

    async def wait_changed(self, timeout: float) -> None:
        """Until the connection changes (or `timeout` seconds pass)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.changed.wait()
        self.changed.clear()


def reraise_swallowed_cancel() -> None:
    """Raise CancelledError when the running task was cancelled although nothing raised. nats-py's request
    waits with asyncio.wait_for, which in Python 3.11 returns a reply that arrives together with a cancel
    and drops the cancel: a loop that makes requests calls this each turn, or stop() would wait forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_until_done(tasks: list[asyncio.Task], every: float = 1.0) -> None:
    """Cancel the tasks and wait for them, cancelling again every `every` seconds those still running. A cancel
    can be lost where no loop of ours can see it: nats-py's first connect retries forever in a loop of its own,
    and a cancel that meets a refused connection there comes back as the OSError it retries on."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every)
    await asyncio.gather(*tasks, return_exceptions=True)  # all done: collects what they raised


def bound_unacknowledged_time(client: Any) -> None:
    """Set TCP_USER_TIMEOUT on the client's current connection (a new socket at every reconnection).
    nats-py has no option for it: its transport's stream writer is the way to the socket."""
    writer = getattr(getattr(client, "_transport", None), "_io_writer", None)
    sock = writer.get_extra_info("socket") if writer is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, UNACKNOWLEDGED_SECONDS * 1000)


def server_urls(url: str) -> list[str]:
    """The servers of a URL list ("tls://a:4222,tls://b:4222", as NATS tools take it): a client
    goes to another of them when its server goes."""
    return [part.strip() for part in url.split(",") if part.strip()]


async def _import_nats() -> Any:
    """`import nats` (about a second of aiohttp and friends, several under load) off the event loop, so a
    process answers /health meanwhile; in a daemon thread, because asyncio.run waits for its executor's
    threads at exit, and a SIGTERM during the import then waited for it to finish."""
    loop = asyncio.get_running_loop()
    imported = loop.create_future()

    def settle(how: Callable[[Any], None], value: Any) -> None:
        if not imported.done():  # cancelled meanwhile: nobody waits
            how(value)

    def load() -> None:
        try:
            outcome = (imported.set_result, importlib.import_module("nats"))
        except BaseException as error:  # handed to the caller
            outcome = (imported.set_exception, error)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is stopping
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=load, name="import-nats", daemon=True).start()
    return await imported


async def connect(url: str, auth: NatsAuth = NatsAuth(), name: str = "agentnet", *, state: NatsState | None = None,
                  retry_every: float = 0.25, **callbacks: Any):
    """A connected nats-py client; waits (retrying) until a server of `url` (one, or a comma-separated
    list) answers and takes our credentials."""
    state = state or NatsState()
    nats = await _import_nats()
    while True:
        try:
            client = await nats.connect(
                server_urls(url), name=name, max_reconnect_attempts=-1, reconnect_time_wait=retry_every,
                connect_timeout=2, ping_interval=5, max_outstanding_pings=2,
                **state.callbacks(**callbacks), **auth.connect_options(),
            )  # fmt: skip
        except Exception as error:  # what nats-py does not retry itself (e.g. a URL it cannot use)
            log.info("NATS at %s not reachable yet (%s); retrying", url, error)
            await asyncio.sleep(retry_every)
            continue
        state.client = client
        state._up()
        return client


# --- JetStream objects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JetStreamNeed:
    """A JetStream object a process needs: `find` raises nats' NotFoundError when it is missing."""

    what: str  # e.g. "JetStream stream AGENTNET_WORK": readiness says "<what> missing"
    find: Callable[[Any], Awaitable[Any]]  # (JetStreamContext) -> info
    create: Callable[[Any], Awaitable[Any]]


def work_stream(replicas: int = 1) -> JetStreamNeed:
    """The work-queue stream, kept on `replicas` servers of a cluster (the server accepts the same config
    again, so every component may create it)."""
    from nats.js.api import RetentionPolicy, StreamConfig

    config = StreamConfig(name=WORK_STREAM, subjects=[WORK_SUBJECTS], retention=RetentionPolicy.WORK_QUEUE,
                          num_replicas=replicas)
    return JetStreamNeed(f"JetStream stream {WORK_STREAM}", lambda js: js.stream_info(WORK_STREAM), lambda js: js.add_stream(config))


def work_queue_consumer(component: str, max_ack_pending: int) -> JetStreamNeed:
    """The durable pull consumer a work-queue component's replicas share."""
    from nats.js.api import AckPolicy, ConsumerConfig

    durable = work_consumer(component)
    config = ConsumerConfig(durable_name=durable, filter_subject=component_work_subject(component),
                            ack_policy=AckPolicy.EXPLICIT, max_ack_pending=max_ack_pending)  # fmt: skip
    return JetStreamNeed(f"JetStream consumer {durable}", lambda js: js.consumer_info(WORK_STREAM, durable),
                         lambda js: js.add_consumer(WORK_STREAM, config))  # fmt: skip


def timeline_stream(replicas: int = 1) -> JetStreamNeed:
    """The stream that keeps timeline event batches (a day, 256 MiB at most) on `replicas` servers, so a
    timeline replica that was away finds what was published meanwhile."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    config = StreamConfig(name=TIMELINE_STREAM, subjects=[TIMELINE_EVENTS], retention=RetentionPolicy.LIMITS,
                          storage=StorageType.FILE, discard=DiscardPolicy.OLD, max_age=TIMELINE_STREAM_MAX_AGE,
                          max_bytes=TIMELINE_STREAM_MAX_BYTES, duplicate_window=TIMELINE_DUPLICATE_WINDOW,
                          num_replicas=replicas)  # fmt: skip
    return JetStreamNeed(f"JetStream stream {TIMELINE_STREAM}", lambda js: js.stream_info(TIMELINE_STREAM),
                         lambda js: js.add_stream(config))  # fmt: skip


def timeline_durable(pod_name: str) -> str:
    """The durable consumer of one timeline replica: each replica keeps the whole log, so each has its own."""
    return "timeline-" + re.sub(r"[^A-Za-z0-9_-]", "_", pod_name)


def timeline_consumer(durable: str, max_ack_pending: int) -> JetStreamNeed:
    """A timeline replica's durable pull consumer: every batch in the stream, from the first one it holds."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    config = ConsumerConfig(durable_name=durable, filter_subject=TIMELINE_EVENTS, ack_policy=AckPolicy.EXPLICIT,
                            deliver_policy=DeliverPolicy.ALL, max_ack_pending=max_ack_pending,
                            inactive_threshold=TIMELINE_CONSUMER_INACTIVE)  # fmt: skip
    return JetStreamNeed(f"JetStream consumer {durable}", lambda js: js.consumer_info(TIMELINE_STREAM, durable),
                         lambda js: js.add_consumer(TIMELINE_STREAM, config))  # fmt: skip


async def ensure_work_stream(js) -> None:
    """Create the work-queue stream (for producers that may come before any stream component)."""
    await work_stream().create(js)


class JetStreamKeeper:
    """Keeps the JetStream objects a process needs: looks for each every CHECK_INTERVAL and right
    after a (re)connection, and creates what is missing. An object counts as present only once
    seen on the current connection: a server that restarted with an empty store has none."""

    def __init__(self, needs: list[JetStreamNeed], state: NatsState):
        self.needs, self.state = needs, state
        self.seen: dict[str, int] = {}  # what -> NatsState.connections when last found or created
        self.stopped = False

    def not_ready(self) -> list[str]:
        return [f"{need.what} missing" for need in self.needs if self.seen.get(need.what) != self.state.connections]

    def wake(self) -> None:
        """Look again now (a request just found an object missing)."""
        self.state.changed.set()

    async def check(self, js) -> None:
        from nats.js.errors import NotFoundError

        for need in self.needs:  # in order: a stream before its consumers
            connection = self.state.connections
            try:
                try:
                    await need.find(js)
                except NotFoundError:
                    # gone since we saw it (the server lost its store) is news; missing at a first look, routine
                    lost = self.seen.pop(need.what, None) is not None
                    log.log(logging.WARNING if lost else logging.INFO, "%s missing; creating it", need.what)
                    await need.create(js)
                self.seen[need.what] = connection
            except Exception as error:  # NATS away, or JetStream refusing: the next check tries again
                log.info("checking %s failed: %r", need.what, error)

    async def run(self, js) -> None:
        while not self.stopped:  # a flag, not only a cancel: nats-py swallows a cancel that meets a request
            if self.state.connected:
                await self.check(js)
            await self.state.wait_changed(CHECK_INTERVAL)

    def stop(self) -> None:
        self.stopped = True
        self.state.changed.set()


async def work_lag(js, component: str) -> int:
    """Messages waiting for a work-queue component: its consumer's pending plus unacknowledged;
    before the consumer exists, what waits on its subject; 0 before the stream exists."""
    from nats.js.errors import NotFoundError

    try:
        info = await js.consumer_info(WORK_STREAM, work_consumer(component))
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    except NotFoundError:
        pass
    subject = component_work_subject(component)
    try:
        stream = await js.stream_info(WORK_STREAM, subjects_filter=subject)
    except NotFoundError:
        return 0
    return int((stream.state.subjects or {}).get(subject, 0))
