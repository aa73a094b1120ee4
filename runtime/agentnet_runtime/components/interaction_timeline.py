"""interaction-timeline (/timeline): the network's causally ordered event log in DuckDB.

GET /query?agent=&kind=&colour=&since=&until=&limit=
    events in causal order (lamport, origin, seq: consistent with happens-before), filtered by
    origin agent, kind, colour and wall-clock range [since, until) (epoch seconds or ISO 8601)

The log is timeline.Timeline in `<data dir>/timeline.duckdb` (in-memory DuckDB without a data
directory: nothing is kept across restarts then). Agents with no DuckDB file of their own
(a cluster's agent pods) publish event batches on timeline.events; every replica of this
component subscribes (not a queue group), so each holds the whole log. What arrives is
appended every `flush_interval` seconds (setting, default 0.25): one DuckDB commit for the
batches of every agent process. Appends are idempotent by (replica, seq), so a batch
delivered twice adds nothing; a malformed batch is refused whole and counted.

Under `agentnet up` the agents append to the same file directly, in the same process:
DuckDB keeps one database instance per file per process, so both connections see one log.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
from typing import Any

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.main import TIMELINE_FILE
from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.components import Service
from agentnet_runtime.config import COLOURS
from agentnet_runtime.timeline.events import KINDS, Event
from agentnet_runtime.web import METRICS, RequestError

from agentnet_runtime.components.common import every, number
from .egraph_service import only_fields

log = logging.getLogger("agentnet.timeline")

QUERY_PARAMETERS = ("agent", "kind", "colour", "since", "until", "limit")
DEFAULT_LIMIT, MAX_LIMIT = 1_000, 100_000
_TIME_RULE = "epoch seconds or an ISO 8601 date-time"

# Metrics of this module (to move into web.METRICS).
STORED = Counter("agentnet_timeline_stored_events", "Events the timeline component added from timeline.events")


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
          "subject": str, "payload": dict, "time": (int, float)}  # fmt: skip


def decode(item: Any) -> Event:
    """An event from its dict form (Event.to_dict), checked so that DuckDB will take it."""
    if not isinstance(item, dict):
        raise TypeError(f"an event is a JSON object, got {type(item).__name__}")
    for field, kinds in _TYPES.items():
        value = item.get(field)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
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
    name = "interaction-timeline"
    uses_nats = True

    def __init__(self, config):
        super().__init__(config)
        self.flush_interval = self.number("flush_interval", 0.25, low=0, above=True)
        self.timeline = None  # timeline.Timeline, opened by on_start
        self.pending: list[Event] = []  # arrived on NATS, not yet appended
        self._flusher: asyncio.Task | None = None

    @property
    def path(self) -> str:
        return str(self.config.data_dir / TIMELINE_FILE) if self.config.data_dir is not None else ":memory:"

    def routes(self) -> list[Route]:
        return [Route("/query", self.query_route)]

    def health(self) -> dict[str, Any]:
        return {"timeline": self.path, "nats": "connected" if self.nc is not None and self.nc.is_connected else "connecting"}

    async def on_start(self) -> None:
        from agentnet_runtime.timeline.store import Timeline

        self.timeline = await asyncio.to_thread(Timeline, self.path)
        transport = Transport(self.config.nats_url, self.config.nats_auth)
        transport.nc = self.nc  # the Service's connection; Transport adds envelopes and fragments
        await transport.subscribe(subjects.TIMELINE_EVENTS, self._on_events)
        self._flusher = asyncio.create_task(every(self.flush_interval, self.flush, self.name), name="timeline-flush")

    async def on_stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self.timeline is not None:
            await self.flush()
            self.timeline.close()

    async def _on_events(self, subject: str, envelope: dict, message: Any) -> None:
        try:
            self.pending.extend(decode(item) for item in envelope["body"])
        except (TypeError, ValueError, KeyError) as error:
            METRICS.errors.labels(self.name, "bad-events").inc()
            log.warning("ignoring a malformed event batch from %s: %s", envelope.get("from"), error)

    async def flush(self) -> None:
        """Append what arrived since the last flush (a commit costs milliseconds, and queries wait for it)."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        STORED.inc(await asyncio.to_thread(self.timeline.append, batch))

    async def query_route(self, request: Request) -> JSONResponse:
        filters = query_filters(request.query_params, self.config.network.size)
        if self.timeline is None:
            raise RequestError("the timeline is not open yet", field="timeline", rule="wait for the component to start", status=503)
        events = await asyncio.to_thread(self.timeline.query, **filters)
        return JSONResponse({"order": "causal (lamport, origin, seq)", "filters": filters, "count": len(events),
                             "events": [event.to_dict() for event in events]})  # fmt: skip


def create(config) -> InteractionTimeline:
    return InteractionTimeline(config)
