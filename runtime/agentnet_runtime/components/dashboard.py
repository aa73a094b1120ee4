"""dashboard (/dashboard): a live web page of the network.

GET /          the page: dashboard_static/index.html with its style sheet and script inlined (one
               request); the files themselves under /static/. Nothing is fetched from anywhere else
               (system fonts, no CDN): the page works with no internet access.
GET /events    server-sent events: `topology` once per connection (positions computed once, on the
               server), then `update` every `update_interval` seconds: agents, convergence, new
               timeline events, component metrics
GET /state     what the page shows, as one JSON document (for tools and tests)
POST /ask      {"term": ...} or {"prove": [lhs, rhs]}, and "agent" (default the lowest id): a person's question.
               A mutating route (web.MUTATING): where the network has an API token (in a cluster, always)
               it needs `Authorization: Bearer <token>`, which the page sends from its token field. The
               page's first update says whether it is needed (`ask_token`), so the field shows only then.
               Not a server-side proxy adding the dashboard's own token: that would let anyone who reaches
               the dashboard write to the network, which the token exists to prevent.
               A pair gets the engine's verdict (equal with the rules used, unequal with a counterexample,
               unknown), as egraph-service's /verify answers it with every family. The term, or both sides
               (and their union when equal), become one event of the dashboard's own replica, pushed to that
               agent as a delta; "event" numbers it. Each update then says, per agent, how many of these events
               its replica holds (`asks`): the page watches the knowledge spread over the topology.

What it collects, on its own, so it works alone in a pod:
- agents: `agents.heartbeat` (each agent's digest, e-nodes, clock events); alive, gone (after 2.5 silent
  heartbeat intervals) and converged by core/membership.py's rules, which
  agent-orchestrator shares. A roll call (`broadcast.heartbeat`) at start makes every agent process answer
  at once. `network.status` reports (from agent processes and the orchestrator) add each agent's
  agreeing neighbours and are listed with their verdict.
- timeline: batches on `timeline.events` (agents with no DuckDB file of their own publish there), and,
  when `<data dir>/timeline.duckdb` exists and can be opened (under `agentnet up` the agents write it
  in this very process), the rows appended to it. Messages per agent are the send/receive events seen.
  What the timeline's retention dropped (count, oldest time kept) comes on `timeline.retention`.
- asks: while an agent lacks the newest ask, the dashboard pulls from it as the agents' anti-entropy does
  (an observer replica, as skill-verification keeps); the reply's vector clock says which asks it holds.
  The asked agent is sent the asks again while its clock lacks them (a lost push is repaired).
- component metrics: request rate and mean latency from the `agentnet_http_request_duration_seconds`
  histogram, per component. `metrics_source` says where from: `registry` reads this process's
  Prometheus registry (under `agentnet up` every component runs in this process); `urls` scrapes each
  component's /metrics at its Service URL from network.json (a cluster; each scrape reaches one
  replica, so the figures are right for a component of one replica only); `auto` (default) picks
  `urls` inside Kubernetes, else `registry`. Lag of work-queue components: JetStream consumer
  pending + unacknowledged, read from NATS in both cases.

Settings (settings.DashboardSettings: environment, else components[dashboard].settings): METRICS_REFRESH_MS
(between samples of the component metrics, default 1000), HEARTBEAT_INTERVAL (seconds; default the agents' own),
UPDATE_INTERVAL (seconds between pushes, 0.05..1, default 0.5), METRICS_SOURCE (auto | registry | urls).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections import Counter as Tally
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterable

import httpx
import orjson
from prometheus_client import Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from agentnet_runtime import natsclient
from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.http import message_terms
from agentnet_runtime.agent.main import TIMELINE_FILE
from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.catalogue import BY_NAME
from agentnet_runtime.components import Service
from agentnet_runtime.components.common import NetworkReplica, number, verdict_fields
from agentnet_runtime.config import NetworkConfig
from agentnet_runtime.core import membership
from agentnet_runtime.core.colour import COLOURS, Colour
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.explain import Explanation
from agentnet_runtime.core.layout import positions
from agentnet_runtime.core.rewrites import rules_for
from agentnet_runtime.core.saturate import Budget, Saturator, Verdict
from agentnet_runtime.core.terms import Term
from agentnet_runtime.guard import SCOPE_KEY
from agentnet_runtime.refusals import WRONG_SHAPE, refuse
from agentnet_runtime.settings import DashboardSettings
from agentnet_runtime.web import METRICS, RequestError, json_body

log = logging.getLogger("agentnet.dashboard")

STATIC_DIR = Path(__file__).with_name("dashboard_static")
ASK_BUDGET_MS = 100  # time budget of a person's question: a page waits for the answer
HISTORY = 120  # metric samples kept per component (two minutes at METRICS_REFRESH_MS 1000), sent to a page when it connects
RECENT_EVENTS = 200  # timeline events kept to fill a newly opened page: this many of CHATTER, as many others
CHATTER = ("send", "receive", "sync")  # message traffic: hundreds a second, so an update carries only the newest
CHATTER_PER_UPDATE = 50
SCRAPE_TIMEOUT = 0.5  # seconds for one component's /metrics
LATENCY_METRIC = "agentnet_http_request_duration_seconds"
PULL_TIMEOUT = 2.0  # seconds for an agent's sync reply, while watching an ask spread
PULLS_AT_ONCE = 16  # agents pulled concurrently (256 agents: a round in a few steps, not 256 requests at once)

# Metrics of this module (to move into web.METRICS).
CLIENTS = Gauge("agentnet_dashboard_clients", "Pages connected to the dashboard's event stream")
UPDATES = Counter("agentnet_dashboard_updates", "Updates the dashboard built for its pages")


def inlined_page() -> str:
    """index.html with its style sheet and script inlined: a busy server (an `up` of 256 agents answers
    late) is asked once, not three times, before the page can start."""
    page = (STATIC_DIR / "index.html").read_text()
    for tag, file, element in (
        ('<link rel="stylesheet" href="static/dashboard.css">', "dashboard.css", "style"),
        ('<script src="static/dashboard.js"></script>', "dashboard.js", "script"),
    ):
        assert tag in page, f"index.html lost its {tag}"
        page = page.replace(tag, f"<{element}>\n{(STATIC_DIR / file).read_text()}</{element}>")
    return page


# --- topology: positions computed once ------------------------------------------------------------


def layout(network: NetworkConfig) -> dict[str, Any]:
    """Node positions in [0, 1]² (core/layout.py), colours and edges: what the page draws and never recomputes."""
    topology = network.raw.get("topology") or {}
    points = positions(topology, [node.neighbours for node in network.nodes])
    return {
        "network": network.name,
        "kind": topology.get("kind"),
        "agents": [
            {"id": node.id, "colour": node.colour, "display": node.display, "neighbours": len(node.neighbours),
             "x": points[node.id][0], "y": points[node.id][1]}
            for node in network.nodes
        ],  # fmt: skip
        "edges": [[node.id, m] for node in network.nodes for m in sorted(node.neighbours) if node.id < m],
    }


# --- agents: membership and convergence from heartbeats ----------------------------------------------


@dataclass
class AgentView(membership.Member):
    """What the dashboard knows of one agent: its membership, and what the page adds."""

    sent: int = 0  # messages it sent and received, as counted on the timeline
    received: int = 0
    agreeing: int | None = None  # neighbours reporting its digest (from network.status)
    asks: int = 0  # events of the dashboard's replica (its asks) this agent's replica holds, as last pulled

    def view(self, now: float) -> dict[str, Any]:
        age = self.age(now)
        return {
            "id": self.id, "state": self.state, "digest": self.digest, "nodes": self.nodes, "events": self.events,
            "sent": self.sent, "received": self.received, "agreeing": self.agreeing, "asks": self.asks,
            "age": None if age is None else round(age, 2),
        }  # fmt: skip


# --- timeline: recent events and message counts -----------------------------------------------------------


class TimelineFeed:
    """The newest events, numbered as they arrive (so a page can tell new from known), and the
    send/receive counts of each agent. Message traffic (CHATTER) is kept apart from the rest, so a
    few submits are not pushed out by thousands of syncs."""

    def __init__(self, agents: dict[int, AgentView]):
        self.agents = agents
        self.recent = {True: deque(maxlen=RECENT_EVENTS), False: deque(maxlen=RECENT_EVENTS)}  # chatter or not
        self.number = 0  # of the newest event kept
        self.seen = 0  # events seen in all, kept or not

    def add(self, events: Iterable[dict[str, Any]], counts: Tally | None = None) -> None:
        """Keep `events`; count them, or take `counts` ((origin, kind) -> n) of the larger set they were picked from."""
        tally = Tally() if counts is None else counts
        for event in events:
            self.number += 1
            kind = event.get("kind")
            self.recent[kind in CHATTER].append({
                "n": self.number, "time": event.get("time"), "agent": event.get("origin"),
                "colour": event.get("colour"), "kind": kind, "subject": event.get("subject") or "",
                "payload": event.get("payload") or {},
            })  # fmt: skip
            if counts is None:
                tally[event.get("origin"), kind] += 1
        for (origin, kind), count in tally.items():
            self.seen += count
            agent = self.agents.get(origin)
            if agent is not None and kind == "send":
                agent.sent += count
            elif agent is not None and kind == "receive":
                agent.received += count

    def since(self, number: int, chatter: int = RECENT_EVENTS) -> list[dict[str, Any]]:
        """Events after `number`: all of the others, the newest `chatter` of the message traffic."""
        others = [event for event in self.recent[False] if event["n"] > number]
        traffic = [event for event in self.recent[True] if event["n"] > number][-chatter:] if chatter else []
        return sorted(others + traffic, key=lambda event: event["n"])


class DuckTimeline:
    """Rows appended to a timeline DuckDB file since the last read (by rowid: appends only grow it)."""

    def __init__(self, path: Path):
        import duckdb  # only when there is a file to read

        self.connection = duckdb.connect(str(path))  # in the process that writes it: the same database
        self.rowid = -1

    def read(self) -> tuple[list[dict[str, Any]], Tally]:
        """(the newest new events, oldest first; (origin, kind) counts of all new ones).

        Two writers could commit rowids out of order and a row could be skipped: fine for a view."""
        ((top,),) = self.connection.execute("SELECT max(rowid) FROM events").fetchall()
        if top is None or top <= self.rowid:
            return [], Tally()
        window = [self.rowid, top]
        counts = self.connection.execute(
            "SELECT origin, kind, count(*) FROM events WHERE rowid > ? AND rowid <= ? GROUP BY origin, kind", window
        ).fetchall()
        newest_traffic = top - RECENT_EVENTS
        rows = self.connection.execute(  # the newest message traffic and the newest of the rest
            "SELECT origin, colour, kind, subject, payload, time FROM events WHERE rowid > ? AND rowid <= ? "
            f"AND (kind NOT IN {CHATTER} OR rowid > ?) ORDER BY rowid DESC LIMIT ?",
            [*window, newest_traffic, 2 * RECENT_EVENTS],
        ).fetchall()
        self.rowid = top
        events = [
            {
                "origin": origin,
                "colour": colour,
                "kind": kind,
                "subject": subject,
                "payload": json.loads(payload),
                "time": at,
            }
            for origin, colour, kind, subject, payload, at in sorted(rows, key=lambda row: row[-1])
        ]  # rowids follow the inserts, not always the recording: show them in time order
        return events, Tally({(origin, kind): count for origin, kind, count in counts})

    def close(self) -> None:
        self.connection.close()


# --- component metrics --------------------------------------------------------------------------------


def component_of(app: str, route: str, names: Iterable[str]) -> str | None:
    """The component a request was served by: the app's name, or (under `up`) the route's prefix."""
    names = list(names)
    if app in names:
        return app
    for name in names:
        prefix = BY_NAME[name].route
        if route == prefix or route.startswith(prefix + "/"):
            return name
    return None


def latency_totals(families: Iterable[Any], names: Iterable[str], single: str | None = None) -> dict[str, list[float]]:
    """[request count, latency sum] per component from the latency histogram's samples.

    `single`: every sample belongs to this component (a scraped component's own /metrics)."""
    names = list(names)
    totals: dict[str, list[float]] = {}
    for family in families:
        if family.name != LATENCY_METRIC:
            continue
        for sample in family.samples:
            part = {LATENCY_METRIC + "_count": 0, LATENCY_METRIC + "_sum": 1}.get(sample.name)
            if part is None:
                continue
            route = sample.labels.get("route", "")
            name = single or component_of(sample.labels.get("app", ""), route, names)
            if name is None or (name == "dashboard" and route.endswith("/events")):
                continue  # an event stream lasts as long as the page: not a request latency
            totals.setdefault(name, [0.0, 0.0])[part] += sample.value
    return totals


class ComponentSeries:
    """Samples of one component: request rate (per s), mean latency (ms) and queue lag, over time."""

    def __init__(self, name: str):
        self.name = name
        self.history: deque[list] = deque(maxlen=HISTORY)  # [sample number, time, rate, latency ms, lag]
        self.previous: tuple[float, float, float] | None = None  # (time, count, sum)
        self.source: str | None = None  # "registry" | "url" | None while nothing was read
        self.error: str | None = None

    def sample(
        self, number: int, now: float, totals: list[float] | None, lag: int | None, absent: bool = False
    ) -> None:
        """Take [request count, latency sum] (since its process started; None: unknown) and the lag.

        `absent`: this process's registry has no series of the component: no request so far, so the
        first ones to show up count from here."""
        rate = latency = None
        if absent:
            self.previous = (now, 0.0, 0.0)
        elif totals is not None:
            count, total = totals
            if self.previous is not None and now > self.previous[0] and count >= self.previous[1]:
                requests = count - self.previous[1]
                rate = round(requests / (now - self.previous[0]), 3)
                latency = round(1000 * (total - self.previous[2]) / requests, 3) if requests else None
            self.previous = (now, count, total)  # a counter that went down was restarted: start again
        self.history.append([number, round(time.time(), 3), rate, latency, lag])

    def view(self, full: bool) -> dict[str, Any]:
        points = list(self.history) if full else list(self.history)[-1:]
        return {"source": self.source, "error": self.error, "points": points}


# --- the service --------------------------------------------------------------------------------------------


class Dashboard(Service):
    name = "dashboard"
    uses_nats = True
    settings_model = DashboardSettings

    def __init__(self, config):
        super().__init__(config)
        self.heartbeat_interval = self.settings.heartbeat_interval
        self.update_interval = self.settings.update_interval
        self.metrics_interval = self.settings.metrics_refresh_ms / 1000
        source = self.settings.metrics_source
        if source == "auto":  # every pod gets this variable from Kubernetes
            source = "urls" if os.environ.get("KUBERNETES_SERVICE_HOST") else "registry"
        self.metrics_source = source
        self.membership = membership.Membership((AgentView(node.id) for node in config.network.nodes), self.heartbeat_interval)
        self.gone_after = self.membership.gone_after  # seconds
        self.agents = self.membership.members
        self.timeline = TimelineFeed(self.agents)
        self.reports: dict[str, dict[str, Any]] = {}  # network.status by reporter, with time.monotonic() received
        self.components = {name: ComponentSeries(name) for name in config.network.components if name in BY_NAME}
        self.samples = 0
        self.duck: DuckTimeline | None = None
        self.timeline_source = "nats"
        self.timeline_retention: dict[str, Any] | None = None  # the timeline's last word on what it dropped
        self.transport: Transport | None = None
        self.http: httpx.AsyncClient | None = None
        self._page: str | None = None
        self._topology: dict[str, Any] | None = None
        self._topology_event = ""  # the same, encoded once
        self._topology_lock = asyncio.Lock()
        self._update: tuple[int, str] = (0, "")  # the latest update for every page: (number, encoded)
        self._updated = asyncio.Condition()
        self._sent_events = 0  # timeline events numbered up to here went out in an update
        self._sent_samples = 0
        self._closing = False
        self.clients = 0  # open event streams
        self._tasks: list[asyncio.Task] = []
        # Asks: the dashboard's own replica (unique to this life: two lives never number events under one id),
        # the agent each ask went to with the event it must hold, and an observer replica to pull with.
        self.asked = EGraph(f"{self.name}.{config.pod_name}.{secrets.token_hex(4)}")
        self.ask_targets: dict[int, int] = {}  # agent -> the newest event pushed to it
        self.observer: NetworkReplica | None = None
        self._saturator: Saturator | None = None  # made on the first pair (worker thread only)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dashboard-verify")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page),
            Route("/events", self.events),
            Route("/state", self.state_route),
            Route("/ask", self.ask, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ]

    def health(self) -> dict[str, Any]:
        return {"nats": "connected" if self.nc is not None and self.nc.is_connected else "connecting",
                "alive": self.membership.counts()[membership.ALIVE], "clients": self.clients}  # fmt: skip

    # --- lifecycle -------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        self.transport = Transport(self.config.nats_url, self.config.nats_auth)
        self.transport.nc = self.nc  # the Service's connection; Transport adds envelopes and fragments
        self.http = httpx.AsyncClient(timeout=SCRAPE_TIMEOUT)
        await self.transport.subscribe(subjects.HEARTBEATS, self._on_heartbeats)
        await self.transport.subscribe(subjects.NETWORK_STATUS, self._on_status)
        await self.transport.subscribe(subjects.TIMELINE_EVENTS, self._on_timeline)
        await self.nc.subscribe(subjects.TIMELINE_RETENTION, cb=self._on_retention)
        self.observer = NetworkReplica(self.transport, subjects.DASHBOARD_ID, self.name)
        await self.observer.listen(streams=False)  # a sync reply too large to answer comes as a state message
        self._tasks = [
            asyncio.create_task(self._every(self.update_interval, self.publish_update), name="dashboard-updates"),
            asyncio.create_task(self._every(self.metrics_interval, self.sample_metrics), name="dashboard-metrics"),
            # apart from the updates: a slow read (the file busy with appends) must not hold them back
            asyncio.create_task(self._every(self.update_interval, self.read_duckdb), name="dashboard-duckdb"),
            asyncio.create_task(self._every(self.update_interval, self.watch_asks), name="dashboard-asks"),
        ]
        await self.transport.send(subjects.BROADCAST_HEARTBEAT, subjects.DASHBOARD_ID, None, {"roll_call": True})
        await self.topology()  # lay the graph out now, before the first page asks

    async def on_stop(self) -> None:
        self._closing = True
        async with self._updated:
            self._updated.notify_all()  # open event streams end
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()
        if self.duck is not None:
            self.duck.close()
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _every(self, interval: float, action) -> None:
        """Run `action` on a fixed beat: a late run (a busy event loop) does not push the next ones back."""
        beat = time.monotonic()
        while True:
            beat += interval
            if beat <= time.monotonic():  # a whole beat was missed: beat on from now
                beat = time.monotonic() + interval
            await asyncio.sleep(beat - time.monotonic())
            try:
                await action()
            except Exception:
                METRICS.errors.labels(self.name, "timer").inc()
                log.exception("dashboard: periodic %s failed", action.__name__)
            natsclient.reraise_swallowed_cancel()

    # --- what arrives on NATS ----------------------------------------------------------------------------

    async def _on_heartbeats(self, subject: str, envelope: dict, message: Any) -> None:
        now = time.monotonic()
        for agent, beat in subjects.beats_of(envelope["body"], self.config.network.name):
            self.membership.heartbeat(agent, beat, now)

    async def _on_status(self, subject: str, envelope: dict, message: Any) -> None:
        report = envelope["body"]
        if not isinstance(report, dict) or report.get("network") != self.config.network.name:
            return
        reporter = report.get("source") or f"pod {report.get('pod')}"
        agents = report.get("agents") or {}
        self.reports[reporter] = {
            "converged": bool(report.get("converged")),
            "agents": len(agents),
            "received": time.monotonic(),
        }
        if reporter.startswith("pod "):  # agent processes say how many neighbours agree with each agent
            for key, summary in agents.items():
                agent = self.agents.get(int(key)) if str(key).isdigit() else None
                if agent is not None and isinstance(summary, dict) and "neighbours_agreeing" in summary:
                    agent.agreeing = int(summary["neighbours_agreeing"])

    async def _on_timeline(self, subject: str, envelope: dict, message: Any) -> None:
        if isinstance(envelope["body"], list):
            self.timeline.add(event for event in envelope["body"] if isinstance(event, dict))

    async def _on_retention(self, message: Any) -> None:
        try:
            report = orjson.loads(message.data)  # not json: its recursion has no depth limit
            self.timeline_retention = {"dropped": int(report["dropped"]), "oldestKept": report["oldestKept"]}
        except (ValueError, TypeError, KeyError) as error:
            METRICS.errors.labels(self.name, "bad-retention").inc()
            refuse(subjects.TIMELINE_RETENTION, message.subject, WRONG_SHAPE, f"a retention report: {error!r}")

    # --- periodic work ---------------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Mark agents silent for longer than `gone_after` as gone."""
        now = time.monotonic()
        for agent in self.membership.sweep(now):
            log.info("agent %s is gone (no heartbeat for %.2fs)", agent.id, agent.age(now))

    async def read_duckdb(self) -> None:
        """New rows of the timeline DuckDB file in the data directory, if there is one this process can open."""
        if self.timeline_source == "nats" and self.duck is None and self.config.data_dir is not None:
            path = self.config.data_dir / TIMELINE_FILE
            if path.is_file():
                try:
                    self.duck = await asyncio.to_thread(DuckTimeline, path)
                    self.timeline_source = "nats+duckdb"
                except Exception as error:  # e.g. locked by another process: show what comes over NATS
                    self.timeline_source = "nats (duckdb unavailable)"
                    log.warning("dashboard: cannot read %s (%s); showing the timeline from NATS only", path, error)
        if self.duck is not None:
            try:
                events, counts = await asyncio.to_thread(self.duck.read)
            except Exception as error:  # the file went away or broke: the page must go on updating
                self.duck.close()
                self.duck, self.timeline_source = None, "nats (duckdb unavailable)"
                log.warning(
                    "dashboard: stopped reading the timeline file (%s); showing the timeline from NATS only", error
                )
                return
            self.timeline.add(events, counts)

    def update(self, full: bool) -> dict[str, Any]:
        """What a page needs now; `full` adds everything a newly opened page lacks (history, recent events)."""
        now = time.monotonic()
        agents = self.agents.values()
        digests = self.membership.digests()
        fresh = {name: {"converged": r["converged"], "agents": r["agents"]}
                 for name, r in sorted(self.reports.items()) if now - r["received"] <= self.gone_after}  # fmt: skip
        events = self.timeline.since(0) if full else self.timeline.since(self._sent_events, CHATTER_PER_UPDATE)
        return {
            "time": round(time.time(), 3),
            "converged": self.membership.converged(),
            "digest": self.membership.digest(),
            "digests": len(digests),
            "counts": self.membership.counts(),
            "agents": [agent.view(now) for agent in agents],
            "reports": fresh,
            "timeline": {"source": self.timeline_source, "seen": self.timeline.seen, "events": events,
                         "retention": self.timeline_retention},
            "metrics": (
                {name: series.view(full) for name, series in self.components.items()}
                if full or self.samples > self._sent_samples
                else None
            ),
        }

    async def publish_update(self) -> None:
        self.sweep()
        body = self.update(full=False)
        self._sent_events, self._sent_samples = self.timeline.number, self.samples
        UPDATES.inc()
        async with self._updated:
            self._update = (self._update[0] + 1, _event("update", body))
            self._updated.notify_all()

    async def sample_metrics(self) -> None:
        names = list(self.components)
        totals = latency_totals(METRICS.http_latency.collect(), names)
        sources = {name: "registry" for name in totals}
        if self.metrics_source == "urls":
            scraped = await asyncio.gather(*(self._scrape(name) for name in names if name != self.name))
            for name, result in scraped:
                if result is not None:
                    totals[name], sources[name] = result, "url"
        lags = dict(await asyncio.gather(*(self._lag(name) for name in names if BY_NAME[name].work_queue)))
        self.samples += 1
        now = time.monotonic()
        for name, series in self.components.items():
            series.source = sources.get(name, series.source)
            from_registry = self.metrics_source == "registry" or name == self.name
            series.sample(
                self.samples, now, totals.get(name), lags.get(name), absent=from_registry and name not in totals
            )

    async def _scrape(self, name: str) -> tuple[str, list[float] | None]:
        url = (self.config.network.components.get(name) or {}).get("url")
        series = self.components[name]
        if not url:
            series.error = "no url in network.json"
            return name, None
        try:
            response = await self.http.get(url.rstrip("/") + "/metrics")
            response.raise_for_status()
            totals = latency_totals(text_string_to_metric_families(response.text), [name], single=name)
        except (httpx.HTTPError, ValueError) as error:
            series.error = f"{url}/metrics: {type(error).__name__}"
            METRICS.errors.labels(self.name, "scrape").inc()
            return name, None
        series.error = None
        return name, totals.get(name, [0.0, 0.0])

    async def _lag(self, name: str) -> tuple[str, int | None]:
        """Work-queue messages not yet done (the autoscaler's figure)."""
        js = self.nc.jetstream(timeout=SCRAPE_TIMEOUT)
        try:
            return name, await natsclient.work_lag(js, name)
        except Exception:  # NATS reconnecting or slow: no figure this time
            return name, None

    async def watch_asks(self) -> None:
        """Pull from each live agent that lacks the newest ask (its clock says what it holds); push again to
        an asked agent that still lacks what it was sent."""
        newest = self.asked.clock.get(self.asked.replica, 0)
        lacking = [a for a in self.agents.values() if a.state == "alive" and a.asks < newest]
        if not lacking or self.observer is None:
            return
        gate = asyncio.Semaphore(PULLS_AT_ONCE)

        async def pull(agent: AgentView) -> None:
            async with gate:
                _, _, clock = await self.observer.pull(agent.id, PULL_TIMEOUT)
            if clock is not None:
                agent.asks = int(clock.get(self.asked.replica, 0))
            if agent.asks < self.ask_targets.get(agent.id, 0):
                await self._push_asks(agent.id)

        await asyncio.gather(*(pull(agent) for agent in lacking))

    async def _push_asks(self, agent: int) -> None:
        """The asks `agent` is not known to hold, as a delta to its inbox (agents take a component's delta as a peer's)."""
        delta = self.asked.delta_since({self.asked.replica: self.agents[agent].asks})
        if delta:
            await self.transport.send(subjects.for_agent(subjects.STATE, agent), subjects.DASHBOARD_ID, agent, delta.to_wire())

    def _verify(self, lhs: Term, rhs: Term) -> tuple[Verdict, Explanation | None]:
        """The engine's verdict with every family within ASK_BUDGET_MS, and an equal's proof path
        (worker thread)."""
        if self._saturator is None:
            rules = tuple(rule for colour in COLOURS for rule in rules_for(colour))
            self._saturator = Saturator(rules, Budget(seconds=ASK_BUDGET_MS / 1000))
        verdict = self._saturator.verify(lhs, rhs)
        return verdict, self._saturator.explain(lhs, rhs) if verdict.equal else None

    # --- routes ------------------------------------------------------------------------------------------------

    async def topology(self) -> dict[str, Any]:
        async with self._topology_lock:
            if self._topology is None:  # a force layout of 256 agents takes a moment: not on the event loop
                body = await asyncio.to_thread(layout, self.config.network)
                body.update(heartbeat_interval=self.heartbeat_interval, gone_after=self.gone_after, chatter=CHATTER,
                            update_interval=self.update_interval, components=list(self.components))  # fmt: skip
                self._topology, self._topology_event = body, _event("topology", body)
        return self._topology

    async def page(self, request: Request) -> HTMLResponse:
        if self._page is None:
            self._page = await asyncio.to_thread(inlined_page)
        return HTMLResponse(self._page, headers={"Cache-Control": "no-cache"})

    async def state_route(self, request: Request) -> JSONResponse:
        self.sweep()
        return JSONResponse({"topology": await self.topology(), **self.update(full=True), "ask_token": ask_token(request)})

    async def ask(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        terms = message_terms(body, also=("agent",))
        nodes = {node.id: node for node in self.config.network.nodes}
        target = number(body.get("agent", min(nodes)), "agent", min(nodes), max(nodes), integer=True)
        if target not in nodes:
            raise RequestError(f"no agent {target} in this network", field="agent", rule="an agent id of the network")
        if self.transport is None or not self.transport.connected:
            raise RequestError("not connected to NATS yet", field="nats", rule="must be connected to ask", status=503)
        answer: dict[str, Any] = {"agent": target}
        colour = Colour(nodes[target].colour)  # tagged as if the agent had taken it itself
        if len(terms) == 1:
            answer.update({"term": str(terms[0]), "class": self.asked.add_term(terms[0], colour)})
        else:
            lhs, rhs = terms
            verdict, path = await asyncio.get_running_loop().run_in_executor(self._thread, self._verify, lhs, rhs)
            sides = self.asked.add_term(lhs, colour), self.asked.add_term(rhs, colour)
            if verdict.equal:  # derived by the engine: the network learns the equality, not only the terms
                self.asked.union(*sides)
            answer.update(lhs=str(lhs), rhs=str(rhs), **verdict_fields(verdict, True, path))
        answer["event"] = self.asked.clock.get(self.asked.replica, 0)
        self.ask_targets[target] = answer["event"]
        await self._push_asks(target)
        return JSONResponse(answer)

    async def events(self, request: Request) -> StreamingResponse:
        return StreamingResponse(
            self._stream(request), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    async def _stream(self, request: Request) -> AsyncIterator[str]:
        """Topology, a full update, then every shared update; a closed page ends it at the next write."""
        self.clients += 1
        CLIENTS.inc()
        try:
            yield "retry: 1000\n\n"  # the browser reconnects after a second if the stream breaks
            await self.topology()
            yield self._topology_event
            self.sweep()
            yield _event("update", {**self.update(full=True), "ask_token": ask_token(request)})
            seen = self._update[0]
            while True:
                async with self._updated:
                    await self._updated.wait_for(lambda: self._update[0] > seen or self._closing)
                if self._closing:
                    return
                seen, text = self._update
                yield text
        finally:
            self.clients -= 1
            CLIENTS.dec()


def ask_token(request: Request) -> bool:
    """Whether the guard of the server this request came through wants the API token on /ask."""
    guard = request.scope.get(SCOPE_KEY)
    return guard is not None and guard.token is not None


def _event(kind: str, body: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"


def create(config) -> Dashboard:
    return Dashboard(config)
