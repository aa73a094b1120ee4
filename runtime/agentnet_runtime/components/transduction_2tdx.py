"""transduction-2tdx (/sync): bidirectional delta sync with another agentnet network over HTTP.

The service keeps a replica of its network's e-graph and bridges two sides:
  - its own network, on NATS, as one more anti-entropy peer: every round it sends sync
    requests (agent.{id}.sync, digest + clock) to a few agents, joins the deltas they
    answer with, and pushes each of them what it lacks (agent.{id}.state); the network's
    own sync spreads that to every agent. It speaks as agent subjects.TRANSDUCTION_ID (-7), which no agent
    is: agents answer it but keep no neighbour bookkeeping for it (Agent.learn ignores
    non-neighbours; only peer_digests[-1] is noted). Their acks (agent.-1.ack) go unheard;
    a sync reply too large for one message comes as a state message on agent.-1.state;
  - the peer network's transduction-2tdx, over HTTP: every INTERVAL_MS it POSTs
    {peer}/exchange with its clock, digest and the delta the peer lacks (since the peer's
    last reported clock); the peer joins it and answers with the delta the asker lacks.
    Both sides run the loop, and either side's exchange alone carries both directions.

After each round the replica compacts, as an agent does, the events that everyone who asks it
for deltas has: the local agents it pulled (their clocks in `heard`), the configured peer (its
last reply's clock) and the last network that asked it (its request's clock). Anyone behind
that gets a checkpoint, so the replica holds what is in flight, not both networks' history.

An exchange is bounded by MAX_LATENCY_MS: a late one counts as a miss and halves the
rows (e-nodes, unions, tags) the next exchange may carry, each way; on-time exchanges
double it again up to MAX_ROWS_PER_EXCHANGE. A delta cut short is a prefix of each
replica's events, so the receiver's clock moves on and the next exchange sends the rest.

POST /exchange  {"network", "clock", "digest", "delta"?, "limit"?}
                -> {"network", "clock", "digest", "delta"?, "complete"?}
GET  /status    peer, last exchange, digests equal?, round-trip times, misses, errors
POST /peer      {"url": "http://other:8080/sync" | null}: set (or clear) the peer at run time

Settings (settings.TransductionSettings: environment, else components[transduction-2tdx].settings):
VERS_ENDPOINT (the peer's /sync base URL), INTERVAL_MS (500), MAX_LATENCY_MS (100), LOCAL_AGENTS
(agents synced per round, 2), MAX_ROWS_PER_EXCHANGE (20000).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections import deque
from typing import Any

import httpx
from prometheus_client import Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.transport import Transport, Unreachable
from agentnet_runtime.components import Service
from agentnet_runtime.core.clock import VectorClock, merge
from agentnet_runtime.core.clock import validate as validate_clock
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.natsclient import reraise_swallowed_cancel
from agentnet_runtime.refusals import BAD_DELTA, Refused
from agentnet_runtime.settings import URL_RULE, GuardSettings, TransductionSettings, peer_url
from agentnet_runtime.web import LATENCY_BUCKETS, METRICS, RequestError, json_body

log = logging.getLogger("agentnet.transduction")

EXCHANGE_FIELDS = ("network", "clock", "digest", "delta", "limit")
MAX_LIMIT = 10_000_000
MIN_ROWS = 100  # a late exchange never shrinks the next one below this
KEPT_ERRORS = 10
KEPT_ROUND_TRIPS = 512


class TRANSDUCTION_METRICS:
    """This component's Prometheus metrics (to be moved into web.METRICS)."""

    exchanges = Counter(
        "agentnet_transduction_exchanges", "Exchanges with the peer network: sent (ok, late, failed, refused) or served",
        ["result"],
    )  # fmt: skip
    round_trip = Histogram(
        "agentnet_transduction_round_trip_seconds", "Round trip of an exchange with the peer network", buckets=LATENCY_BUCKETS
    )
    rows = Counter("agentnet_transduction_rows", "E-graph rows carried to or from the peer network", ["direction"])
    local_syncs = Counter("agentnet_transduction_local_syncs", "Sync requests to the network's own agents, by result", ["result"])
    digests_equal = Gauge("agentnet_transduction_digests_equal", "1 when the replica's digest equals the peer's last reported one")


def delta_rows(batches) -> int:
    """Rows of a delta's events: e-nodes, unions and colour tags."""
    return sum(len(nodes) + len(unions) + len(tags) for _, _, nodes, unions, tags, *_ in batches)


def bounded(delta: Delta, max_rows: int) -> tuple[Delta, bool]:
    """A prefix of `delta` with at most `max_rows` rows (but at least one event), and whether it is all of it.

    delta_since lists each replica's events in order, so a prefix leaves no gap a receiver
    must wait on; its clock says how far each replica's events go. A checkpoint (the asker is
    behind what this replica compacted) goes whole: its parts carry no clock an asker could
    resume from."""
    taken, rows = [], 0
    for batch in delta.batches:
        size = delta_rows([batch])
        if taken and rows + size > max_rows:
            break
        taken.append(batch)
        rows += size
    if len(taken) == len(delta.batches):
        return delta, True
    clock = merge(delta.since, {origin: seq for origin, seq, *_ in taken})
    return Delta(since=delta.since, clock=clock, batches=tuple(taken), floor=delta.floor, checkpoint=delta.checkpoint), False


def _exchange_request(body: dict[str, Any]) -> tuple[str, dict, str, Delta | None, int | None]:
    unknown = sorted(set(body) - set(EXCHANGE_FIELDS))
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}", field=unknown[0], rule=f"allowed: {', '.join(EXCHANGE_FIELDS)}")
    for name in ("network", "clock", "digest"):
        if name not in body:
            raise RequestError(f"{name} is required", field=name, rule="required")
    network, digest = body["network"], body["digest"]
    if not isinstance(network, str) or not network:
        raise RequestError("network must be a non-empty string", field="network", rule="the asking network's name")
    if not isinstance(digest, str):
        raise RequestError("digest must be a string", field="digest", rule="the asker's e-graph digest")
    try:
        clock = validate_clock(body["clock"])
    except ValueError as error:
        raise RequestError(str(error), field="clock", rule="a vector clock: replica id -> non-negative integer") from None
    delta = None
    if body.get("delta") is not None:
        try:
            delta = Delta.from_wire(body["delta"])
        except ValueError as error:
            raise RequestError(f"delta: {error}", field="delta", rule="an e-graph delta in wire form") from None
    limit = body.get("limit")
    if limit is not None and (type(limit) is not int or not 1 <= limit <= MAX_LIMIT):
        raise RequestError(f"limit must be an integer 1..{MAX_LIMIT} (got {limit!r})", field="limit", rule=f"integer 1..{MAX_LIMIT}")
    return network, clock, digest, delta, limit


class Transduction(Service):
    name = "transduction-2tdx"
    settings_model = TransductionSettings

    def __init__(self, config):
        super().__init__(config)
        self.peer: str | None = self.settings.vers_endpoint  # POST /peer changes it at run time
        self.interval = self.settings.interval_ms / 1000
        self.budget = self.settings.max_latency_ms / 1000
        self.local_agents = min(self.settings.local_agents, config.network.size)
        self.max_rows = max(MIN_ROWS, self.settings.max_rows_per_exchange)
        self.limit = self.max_rows  # rows per exchange now: halved by a late exchange, doubled back by on-time ones
        self.replica = EGraph(f"transduction.{config.network.name}")
        # NATS through the agents' own Transport: the same envelopes, fragments and reconnects.
        self.transport = Transport(config.nats_url, config.nats_auth, name=f"agentnet-{config.network.name}-{self.name}")
        self.peer_clock: dict[str, int] = {}  # the configured peer's clock, as its last reply gave it
        self.asker_clock: VectorClock | None = None  # the clock of the last exchange asked of us
        self.heard: dict[int, VectorClock] = {}  # local agent -> the clock of its last sync reply
        self.peer_network: str | None = None  # name and digest of the last network heard from, either way
        self.peer_digest: str | None = None
        self.last_exchange: dict[str, Any] | None = None
        self.results = {"ok": 0, "late": 0, "failed": 0, "refused": 0, "served": 0}
        self.round_trips: deque[float] = deque(maxlen=KEPT_ROUND_TRIPS)  # ms of on-time exchanges
        self.errors: deque[dict[str, Any]] = deque(maxlen=KEPT_ERRORS)
        self.local: dict[int, dict[str, Any]] = {}  # agent id -> its last sync with us
        self._next_agent = 0
        self._news = asyncio.Event()  # the peer brought something: push it to the network now
        self._tasks: list[asyncio.Task] = []
        self._client: httpx.AsyncClient | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/exchange", self.exchange_route, methods=["POST"]),
            Route("/status", self.status_route),
            Route("/peer", self.peer_route, methods=["POST"]),
        ]

    def health(self) -> dict[str, Any]:
        return {"peer": self.peer, "nats": "connected" if self.transport.connected else "connecting"}

    def readiness(self) -> list[str]:
        # Its own NATS connection (the bridge to the peer starts without waiting for it, so not `uses_nats`).
        return self.transport.state.not_ready() + super().readiness()

    # --- lifecycle -----------------------------------------------------------------------

    async def on_start(self) -> None:
        # The peer's mutating /exchange wants its network's token; peers of one trust domain share ours.
        token = self.settings.peer_token or GuardSettings.read().api_token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}
        self._client = httpx.AsyncClient(headers=headers)
        # The bridge to the peer works while NATS is still being connected, so do not wait for it.
        self._tasks = [asyncio.create_task(self._connect(), name="2tdx-nats"), asyncio.create_task(self._loop(), name="2tdx")]

    async def on_stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        await self.transport.close()

    async def _connect(self) -> None:
        await self.transport.connect()
        await self.transport.subscribe(subjects.for_agent(subjects.STATE, subjects.TRANSDUCTION_ID), self._on_state)

    async def _loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancel that meets a set event.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._news.wait()
            self._news.clear()
            try:
                await self.round()
            except Exception:
                METRICS.errors.labels(self.name, "round").inc()
                log.exception("transduction round failed")
            reraise_swallowed_cancel()

    async def round(self) -> None:
        """Pull from a few local agents, exchange with the peer, push the agents what they lack."""
        clocks = await self.pull_local()
        if self.peer is not None:
            await self.exchange()
        await self.push_local(clocks)
        self.compact()

    def compact(self) -> None:
        """Drop into the checkpoint the events everyone who asks this replica for deltas has."""
        askers = list(self.heard.values())
        if self.peer is not None:
            askers.append(self.peer_clock)
        if self.asker_clock is not None:
            askers.append(self.asker_clock)
        if askers:
            self.replica.compact_seen_by(askers)

    # --- the local network, on NATS ------------------------------------------------------

    def _round_agents(self) -> list[int]:
        """The next LOCAL_AGENTS agents, round-robin, so every agent is visited in turn."""
        size = self.config.network.size
        chosen = [(self._next_agent + i) % size for i in range(self.local_agents)]
        self._next_agent = (self._next_agent + self.local_agents) % size
        return chosen

    async def pull_local(self) -> dict[int, dict]:
        """Sync with this round's agents as an anti-entropy peer; their clocks, for those that answered."""
        if not self.transport.connected:
            return {}

        async def pull(agent: int) -> tuple[int, dict | None]:
            request = {"digest": self.replica.digest(), "clock": self.replica.clock}
            try:
                envelope = await self.transport.request(
                    subjects.for_agent(subjects.SYNC, agent), subjects.TRANSDUCTION_ID, agent, request, None, self.config.agent.sync_timeout
                )  # fmt: skip
                reply = envelope["body"]
                clock = validate_clock(reply["clock"])
                if "delta" in reply:
                    self._join(Delta.from_wire(reply["delta"]))
                self.heard[agent] = clock
                result = "pulled" if "delta" in reply else "pushed" if reply.get("pushed") else "equal"
                self.local[agent] = {"result": result, "digest": reply["digest"], "at": time.time()}
            except Unreachable:
                result, clock = "unreachable", None
                self.local[agent] = {"result": result, "at": time.time()}
            except (ValueError, KeyError, TypeError) as error:
                result, clock = "error", None
                self._error(f"bad sync reply from agent {agent}: {error}")
            TRANSDUCTION_METRICS.local_syncs.labels(result).inc()
            return agent, clock

        answered = await asyncio.gather(*(pull(agent) for agent in self._round_agents()))
        return {agent: clock for agent, clock in answered if clock is not None}

    async def push_local(self, clocks: dict[int, dict]) -> None:
        """Send each agent the events its clock has not seen (what the peer network brought, mostly)."""
        for agent, clock in clocks.items():
            delta = self.replica.delta_since(clock)
            if delta:  # (even at an equal digest: events that added nothing still move its clock, so we can compact)
                await self.transport.send(subjects.for_agent(subjects.STATE, agent), subjects.TRANSDUCTION_ID, agent, delta.to_wire())

    async def _on_state(self, subject: str, envelope: dict, message: Any) -> None:
        """A delta an agent pushed to us: its sync reply was too large for one message."""
        try:
            self._join(Delta.from_wire(envelope["body"]))
        except ValueError as error:  # the transport warns (rate-limited) and counts it
            raise Refused(BAD_DELTA, f"from agent {envelope['from']}: {error}") from None

    def _join(self, delta: Delta) -> bool:
        """Join a delta into the replica; True if it changed."""
        version = self.replica.version
        self.replica.join(delta)
        return self.replica.version != version

    # --- the peer network, over HTTP -------------------------------------------------------

    async def exchange(self) -> None:
        """One exchange with the peer, bounded by the latency budget."""
        peer = self.peer
        delta, sent_all = bounded(self.replica.delta_since(self.peer_clock), self.limit)
        body: dict[str, Any] = {
            "network": self.config.network.name, "clock": self.replica.clock, "digest": self.replica.digest(), "limit": self.limit,
        }  # fmt: skip
        if delta:
            body["delta"] = delta.to_wire()
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.budget):
                response = await self._client.post(f"{peer}/exchange", json=body)
        except TimeoutError:
            if peer == self.peer:  # a new peer starts from the full size
                self.limit = max(MIN_ROWS, self.limit // 2)
            return self._missed("late", f"no answer from {peer} within the {self.budget * 1000:g} ms budget")
        except httpx.HTTPError as error:
            return self._missed("failed", f"{peer}: {type(error).__name__}: {error}")
        round_trip = time.perf_counter() - start
        try:
            reply = response.json()
            if response.status_code != 200:
                return self._missed("refused", f"{peer} answered {response.status_code}: {reply.get('error')}")
            peer_clock, peer_digest = validate_clock(reply["clock"]), reply["digest"]
            received = Delta.from_wire(reply["delta"]) if "delta" in reply else None
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return self._missed("refused", f"{peer} answered something that is not an exchange reply: {error}")
        if peer != self.peer:
            return  # the peer was changed while this exchange was on its way
        if received is not None and self._join(received):
            self._news.set()  # push it to the local agents at once
        if not (sent_all and reply.get("complete", True)):
            self._news.set()  # a delta was cut short: the next round sends (or asks for) the rest at once
        self.peer_clock, self.peer_network, self.peer_digest = peer_clock, reply.get("network"), peer_digest
        if round_trip < self.budget / 2:
            self.limit = min(self.max_rows, self.limit * 2)
        sent, got = delta_rows(delta.batches), delta_rows(received.batches) if received else 0
        self.round_trips.append(round_trip * 1000)
        TRANSDUCTION_METRICS.round_trip.observe(round_trip)
        TRANSDUCTION_METRICS.rows.labels("sent").inc(sent)
        TRANSDUCTION_METRICS.rows.labels("received").inc(got)
        self._count("ok")
        if self.last_exchange is not None and self.last_exchange["result"] != "ok":
            log.warning("exchanging with %s again", peer)
        self.last_exchange = {
            "at": time.time(), "result": "ok", "roundTripMs": round(round_trip * 1000, 3), "sentRows": sent,
            "receivedRows": got, "complete": sent_all and reply.get("complete", True),
        }  # fmt: skip

    def _missed(self, result: str, message: str) -> None:
        # Logged when the peer's state changes (a peer that is down would log every interval).
        repeated = self.last_exchange is not None and self.last_exchange["result"] == result
        self._count(result)
        self._error(message, logging.DEBUG if repeated else logging.WARNING)
        self.last_exchange = {"at": time.time(), "result": result, "error": message}

    def _count(self, result: str) -> None:
        self.results[result] += 1
        TRANSDUCTION_METRICS.exchanges.labels(result).inc()
        TRANSDUCTION_METRICS.digests_equal.set(int(self.peer_digest == self.replica.digest()))

    def _error(self, message: str, level: int = logging.WARNING) -> None:
        log.log(level, "%s", message)
        self.errors.append({"at": time.time(), "error": message})

    # --- routes ----------------------------------------------------------------------------------

    async def exchange_route(self, request: Request) -> JSONResponse:
        network, clock, digest, delta, limit = _exchange_request(await json_body(request))
        if delta is not None and self._join(delta):
            self._news.set()
            TRANSDUCTION_METRICS.rows.labels("received").inc(delta_rows(delta.batches))
        reply: dict[str, Any] = {"network": self.config.network.name, "clock": self.replica.clock, "digest": self.replica.digest()}
        answer, complete = bounded(self.replica.delta_since(clock), limit or self.max_rows)
        if answer:  # (even at an equal digest, as push_local)
            reply["delta"], reply["complete"] = answer.to_wire(), complete
            TRANSDUCTION_METRICS.rows.labels("sent").inc(delta_rows(answer.batches))
        # The asker's digest is news of the peer; its clock is not taken as the peer's: only the
        # configured peer's replies set that (another asker's clock would hide what the peer lacks).
        self.peer_network, self.peer_digest, self.asker_clock = network, digest, clock
        self._count("served")
        return JSONResponse(reply)

    async def status_route(self, request: Request) -> JSONResponse:
        digest = self.replica.digest()
        trips = sorted(self.round_trips)
        local = {str(agent): facts for agent, facts in sorted(self.local.items())}
        return JSONResponse({
            "network": self.config.network.name,
            "peer": {"url": self.peer, "network": self.peer_network, "digest": self.peer_digest},
            "replica": {"digest": digest, "nodes": len(self.replica), "events": sum(self.replica.clock.values())},
            "digestsEqual": self.peer_digest == digest,
            "localEqual": bool(local) and all(facts.get("digest") == digest for facts in local.values()),
            "lastExchange": self.last_exchange,
            "exchanges": dict(self.results),
            "roundTripMs": {
                "count": len(trips),
                "last": round(self.round_trips[-1], 3) if trips else None,
                "p50": round(statistics.median(trips), 3) if trips else None,
                "p99": round(trips[min(len(trips) - 1, int(len(trips) * 0.99))], 3) if trips else None,
            },
            "rowsPerExchange": self.limit,
            "local": local,
            "errors": list(self.errors),
            "settings": self.settings.model_dump(mode="json"),
        })  # fmt: skip

    async def peer_route(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        unknown = sorted(set(body) - {"url"})
        if unknown:
            raise RequestError(f"unknown field {unknown[0]!r}", field=unknown[0], rule="allowed: url")
        if "url" not in body:
            raise RequestError("url is required (null clears the peer)", field="url", rule="required")
        try:
            url = None if body["url"] is None else peer_url(body["url"])
        except ValueError as error:
            raise RequestError(f"url {error}", field="url", rule=URL_RULE) from None
        if url != self.peer:
            self.peer, self.peer_clock, self.peer_network, self.peer_digest = url, {}, None, None
            self.limit = self.max_rows
            self._news.set()
        return JSONResponse({"peer": self.peer})


def create(config) -> Transduction:
    return Transduction(config)
