"""interaction-timeline (/timeline): the network's causally ordered event log in DuckDB.

GET /query?agent=&kind=&colour=&since=&until=&limit=
    events in causal order (lamport, origin, seq: consistent with happens-before), filtered by
    origin agent, kind, colour and wall-clock range [since, until) (epoch seconds or ISO 8601),
    and what retention dropped ("retention": events dropped so far, the oldest time kept)
GET /retention
    what retention dropped, alone

The log is timeline.Timeline in `<data dir>/timeline.duckdb` (in-memory DuckDB without a data
directory: nothing is kept across restarts then). Agents with no DuckDB file of their own
(a cluster's agent pods) store event batches in the JetStream stream on timeline.events
(natsclient.timeline_stream). Every replica of this component reads it with a durable
consumer of its own (named after the pod that made its DuckDB file), so each holds the whole log, and what was
published while it was down is waiting for it when it comes back. It pulls batches every
FLUSH_INTERVAL seconds (setting, default 0.25), appends them in one DuckDB commit, and
acknowledges them only then. Appends are idempotent by (replica, seq), so a batch delivered
twice adds nothing: exactly once in the log. A malformed batch is refused whole and counted.

Retention is the network's `retention.timeline` (maxAgeSeconds, maxEvents): the oldest events
go first, after each append past maxEvents and every PRUNE_INTERVAL seconds (setting,
default 60) for age. What was dropped is published on timeline.retention (for the dashboard)
at start and whenever it changes.

Under `agentnet up` the agents append to the same file directly, in the same process:
DuckDB keeps one database instance per file per process, so both connections see one log.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
from typing import Any

import orjson
from prometheus_client import Counter, Gauge
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime import natsclient
from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.main import TIMELINE_COMPONENT, TIMELINE_FILE, timeline_at
from agentnet_runtime.components import Service
from agentnet_runtime.config import COLOURS
from agentnet_runtime.refusals import NOT_JSON, WRONG_SHAPE, refuse
from agentnet_runtime.timeline.events import KINDS, Event
from agentnet_runtime.settings import TimelineSettings
from agentnet_runtime.web import METRICS, RequestError

from agentnet_runtime.components.common import every, number
from agentnet_runtime.request_checks import only_fields

log = logging.getLogger("agentnet.timeline")

QUERY_PARAMETERS = ("agent", "kind", "colour", "since", "until", "limit")
DEFAULT_LIMIT, MAX_LIMIT = 1_000, 100_000
_TIME_RULE = "epoch seconds or an ISO 8601 date-time"

FETCH_BATCH = 256  # stream messages (event batches) pulled at once
CONSUMER_FILE = "timeline.consumer"  # beside the DuckDB file: the durable consumer that feeds it
STOP_WAIT = 10.0  # seconds stop() lets the consumer store what it fetched

# Metrics of this module (to move into web.METRICS).
STORED = Counter("agentnet_timeline_stored_events", "Events the timeline component added from timeline.events")
DROPPED = Gauge("agentnet_timeline_dropped_events", "Events the timeline's retention has dropped (age and count limits)")


def _time(value: str, field: str) -> float:
    """Epoch seconds, or an ISO 8601 date-time (UTC unless it says otherwise)."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise RequestError(f"{field} must be a time (got {value!r})", field=field, rule=_TIME_RULE) from None
        seconds = (moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)).timestamp()
    if not math.isfinite(seconds):
        raise RequestError(f"{field} must be a finite time (got {value!r})", field=field, rule=_TIME_RULE)
    return seconds


_TYPES = {"origin": int, "replica": str, "seq": int, "lamport": int, "clock": dict, "kind": str, "colour": str,
          "subject": str, "payload": dict, "time": (int, float), "partial": bool}  # fmt: skip


def decode(item: Any) -> Event:
    """An event from its dict form (Event.to_dict), checked so that DuckDB will take it."""
    if not isinstance(item, dict):
        raise TypeError(f"an event is a JSON object, got {type(item).__name__}")
    for field, kinds in _TYPES.items():
        value = item.get(field)
        if value is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool)):
            raise TypeError(f"event field {field} has the wrong type ({type(value).__name__})")
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise ValueError(f"event field {field} is out of range")
    return Event.from_dict(item)


def query_filters(params, agents: int) -> dict[str, Any]:
    """Timeline.query keyword arguments from query parameters; a 422 names a bad one."""
    only_fields(params, QUERY_PARAMETERS)
    filters: dict[str, Any] = {"limit": DEFAULT_LIMIT}
    if "agent" in params:
        filters["agent"] = number(params["agent"], "agent", 0, agents - 1, integer=True)
    if "kind" in params:
        if params["kind"] not in KINDS:
            raise RequestError(f"kind {params['kind']!r} is not an event kind", field="kind", rule=f"one of: {', '.join(KINDS)}")
        filters["kind"] = params["kind"]
    if "colour" in params:
        colour = params["colour"].upper()
        if colour not in COLOURS:
            raise RequestError(f"colour {params['colour']!r} is not a colour", field="colour", rule=f"one of: {', '.join(COLOURS)}")
        filters["colour"] = colour
    for field in ("since", "until"):
        if field in params:
            filters[field] = _time(params[field], field)
    if "since" in filters and "until" in filters and filters["until"] <= filters["since"]:
        raise RequestError("until must be later than since", field="until", rule="later than since")
    if "limit" in params:
        filters["limit"] = number(params["limit"], "limit", 1, MAX_LIMIT, integer=True)
    return filters


class InteractionTimeline(Service):
    name = TIMELINE_COMPONENT
    uses_nats = True
    settings_model = TimelineSettings

    def __init__(self, config):
        super().__init__(config)
        self.flush_interval = self.settings.flush_interval
        self.prune_interval = self.settings.prune_interval
        self.durable = self._consumer_of_the_log()
        self.timeline = None  # timeline.Timeline, opened by on_start
        self._dropped = -1  # what retention had dropped when it was last published
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    def _consumer_of_the_log(self) -> str:
        """The durable consumer that feeds this replica's DuckDB file: named after the pod that made the
        file and kept beside it, so a new pod on the same claim (a Deployment names pods anew) goes on
        from the last batch the file acknowledged instead of reading the whole stream again."""
        name = natsclient.timeline_durable(self.config.pod_name)
        if self.config.data_dir is None:
            return name
        kept = self.config.data_dir / CONSUMER_FILE
        if kept.is_file() and kept.read_text().strip():
            return kept.read_text().strip()
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(name + "\n")
        return name

    @property
    def path(self) -> str:
        return str(self.config.data_dir / TIMELINE_FILE) if self.config.data_dir is not None else ":memory:"

    def routes(self) -> list[Route]:
        return [Route("/query", self.query_route), Route("/retention", self.retention_route)]

    def health(self) -> dict[str, Any]:
        return {"timeline": self.path, "consumer": self.durable,
                "nats": "connected" if self.nc is not None and self.nc.is_connected else "connecting"}  # fmt: skip

    def jetstream(self) -> list[natsclient.JetStreamNeed]:
        return [natsclient.timeline_stream(self.config.network.stream_replicas),
                natsclient.timeline_consumer(self.durable, 4 * FETCH_BATCH)]

    async def on_start(self) -> None:
        self.timeline = await asyncio.to_thread(timeline_at, self.path, self.config.network)
        # Bound by name: the keeper (components.Service) creates the consumer, again whenever the server lost it.
        subscription = await self.nc.jetstream().pull_subscribe_bind(self.durable, natsclient.TIMELINE_STREAM)
        self._tasks = [asyncio.create_task(self._consume(subscription), name="timeline-consume"),
                       asyncio.create_task(every(self.prune_interval, self.prune, self.name), name="timeline-prune")]  # fmt: skip
        await self.prune()

    async def on_stop(self) -> None:
        # The consumer is let finish (within a fetch's wait) rather than cancelled: what it fetched is then
        # stored and acknowledged, not left for the server to redeliver only after its ack wait (30 s).
        self._stopping = True
        consume, *others = self._tasks or [None]
        for task in others:
            task.cancel()
        if consume is not None:
            try:
                await asyncio.wait_for(asyncio.shield(consume), STOP_WAIT)
            except TimeoutError:
                consume.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.timeline is not None:
            self.timeline.close()

    async def _consume(self, subscription) -> None:
        """Pull what the stream holds for this replica, append it, then acknowledge it."""
        import nats.errors

        while not self._stopping:
            if self.nats_readiness():  # NATS away, or the stream or consumer not there (yet, or again)
                await asyncio.sleep(self.flush_interval)
                continue
            try:
                messages = await subscription.fetch(FETCH_BATCH, timeout=self.flush_interval)
            except nats.errors.TimeoutError:
                continue
            except Exception as error:  # reconnecting: the stream keeps the events
                log.info("timeline: fetching events failed (%r); retrying", error)
                await asyncio.sleep(self.flush_interval)
                continue
            await self.store(messages)

    async def store(self, messages: list) -> None:
        """Append the events of these stream messages in one commit; acknowledge them once stored."""
        batch = []
        for message in messages:
            try:
                batch.extend(decode(item) for item in orjson.loads(message.data)["body"])
            except (TypeError, ValueError, KeyError) as error:
                METRICS.errors.labels(self.name, "bad-events").inc()
                reason = NOT_JSON if isinstance(error, orjson.JSONDecodeError) else WRONG_SHAPE
                refuse(subjects.TIMELINE_EVENTS, message.subject, reason, f"an event batch: {error!r}")
        STORED.inc(await asyncio.to_thread(self.timeline.append, batch))
        for message in messages:  # a malformed one too: it will not get better
            await message.ack()
        await self.report_retention()

    async def prune(self) -> None:
        await asyncio.to_thread(self.timeline.prune)
        await self.report_retention()

    async def report_retention(self) -> None:
        """Export and publish what retention dropped, when that changed."""
        retention = await asyncio.to_thread(self.timeline.retention)
        if retention["dropped"] != self._dropped:
            DROPPED.set(retention["dropped"])
            await self.nc.publish(subjects.TIMELINE_RETENTION, orjson.dumps(retention))
            self._dropped = retention["dropped"]

    def _open(self) -> None:
        if self.timeline is None:
            raise RequestError("the timeline is not open yet", field="timeline", rule="wait for the component to start", status=503)

    async def query_route(self, request: Request) -> JSONResponse:
        filters = query_filters(request.query_params, self.config.network.size)
        self._open()
        events = await asyncio.to_thread(self.timeline.query, **filters)
        retention = await asyncio.to_thread(self.timeline.retention)
        return JSONResponse({"order": "causal (lamport, origin, seq)", "filters": filters, "count": len(events),
                             "retention": retention, "events": [event.to_dict() for event in events]})  # fmt: skip

    async def retention_route(self, request: Request) -> JSONResponse:
        self._open()
        return JSONResponse(await asyncio.to_thread(self.timeline.retention))


def create(config) -> InteractionTimeline:
    return InteractionTimeline(config)
