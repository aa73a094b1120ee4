"""stream-red / stream-blue / stream-green (/stream/{colour}): one colour's rewrite family over a stream of terms.

POST /terms   {"term": "x*(y+z)"} or {"terms": [...]}: queue them on the JetStream work queue (202, how many)
POST /apply   the same terms, rewritten now (bypassing the queue): the derived equalities, handed on as below
GET  /status  processed and rejected terms, derived equalities, consumer lag, the agents it feeds and their acks
GET or POST to any other path (and GET /): the deployment guides' answer, {"status": "ok", "message": "RED stream
              received", "color", "polarity", "path", "request_size"}, with the service metadata (web.create_app)

Work: terms (one per message, the term's text) arrive on `work.{colour}` of the work-queue stream AGENTNET_WORK
(natsclient.py) and are pulled in batches from the durable consumer named after the component; replicas of the
component share it (competing consumers), and its pending + unacknowledged count is the lag the autoscaler reads
(also the gauge agentnet_stream_lag). The stream and the consumer are made by the component's JetStream keeper
(components.Service), and made again whenever the server has lost them (a restart with an empty store), so work
resumes without a restart; /ready answers 503 naming what is missing meanwhile. A batch is saturated with the
colour's rewrite family under a Budget in a scratch e-graph; what it derived is copied into the component's own
replica of the CRDT e-graph as one new event, so the result is an ordinary δ-CRDT delta that anyone can join. Both
happen in a worker process (below); messages are acknowledged once the delta is handed on.

Hand-off: the delta goes to every agent of the colour (to every agent when none has it) on agent.{id}.state, in the
agents' envelope, from the sender id -1 / -2 / -3 (RED / BLUE / GREEN): agent ids are never negative, so it cannot
collide with one. The agents adopt it as an event of their own (Agent.adopt: the contents, not the component's dots,
so the component's replica id, one per worker life, never enters the network's clocks) and spread it to the whole
network by their normal delta sync; they ack, on agent.{sender}.ack, how many of the component's events in a row
they adopted, which the component listens to. If no agent has acknowledged an event after REDELIVER_MS
(e.g. the agents started after the work was done), it is sent again, waiting twice as long each time nobody
answers (up to a minute). The same delta is published for anyone else on stream.derived.{colour} (same
envelope; large ones fragmented as transport.py does, so subscribe with Transport.subscribe).

Settings (settings.StreamSettings: environment variables, else components[stream-*].settings): BATCH_SIZE
(128 terms), SATURATION_TIMEOUT_MS (100, per batch), NODE_LIMIT (20,000 e-nodes per batch), REDELIVER_MS (2,000),
LAG_INTERVAL_MS (1,000); COMPONENT_ID, COLOR and POLARITY, if set, must be the stream's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from prometheus_client import Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime import natsclient
from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.components import Service
from agentnet_runtime.components.common import only_fields, requested_terms
from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.egraph import Delta, EGraph, NodeId
from agentnet_runtime.core.rewrites import rules_for
from agentnet_runtime.core.saturate import Budget, SaturationReport, saturate
from agentnet_runtime.core.terms import Term, TermSyntaxError, parse
from agentnet_runtime.refusals import NOT_A_TERM, refuse
from agentnet_runtime.settings import StreamSettings
from agentnet_runtime.web import LATENCY_BUCKETS, RequestError, json_body

log = logging.getLogger("agentnet.stream")

MAX_TERMS = 10_000  # terms one request may carry
MAX_EQUALITIES = 100  # equalities /apply lists (it counts them all)
FETCH_WAIT = 1.0  # seconds one pull request waits for work
RETRY_DELAY = 1.0  # seconds before a batch that failed is delivered again
MAX_REDELIVER_WAIT = 60.0  # seconds: resends to agents that do not answer back off up to this


class STREAM_METRICS:
    """The stream components' metrics (to move into web.METRICS)."""

    lag = Gauge("agentnet_stream_lag", "Work-queue messages of a stream component not yet done (pending + unacknowledged)",
                ["component"])  # fmt: skip
    terms = Counter("agentnet_stream_terms", "Terms a stream component took, by result (processed | rejected)", ["component", "result"])
    derived = Counter("agentnet_stream_derived_equalities", "Equalities a stream component derived that were new to it", ["component"])
    batch_seconds = Histogram("agentnet_stream_batch_seconds", "Time to rewrite one batch of terms and hand it on", ["component"],
                              buckets=LATENCY_BUCKETS)  # fmt: skip


# --- the worker process: the stream's replica and the rewriting ----------------------------------------------
#
# Everything that costs CPU happens in one worker process: saturating a batch, adopting the result into the
# stream's replica, encoding the delta. The event loop only moves bytes, so HTTP is answered while a batch runs
# (a thread would take turns with the loop for the GIL, each switch waiting up to 5 ms; measured: /health p50
# 3.5 ms with a thread, 0.8 ms with a process, while a backlog of 3,000 terms was rewritten).

_replica: EGraph | None = None  # the stream's replica of the CRDT e-graph, in the worker process
_WORKER_CALLS = ("rewrite_batch", "events_after")


def worker_main() -> None:
    """The worker process: answer calls (length-prefixed pickles) on stdin until it closes."""
    global _replica
    _replica = EGraph(sys.argv[1])
    calls = {name: globals()[name] for name in _WORKER_CALLS}
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while header := requests.read(8):
        name, args = pickle.loads(requests.read(int.from_bytes(header, "big")))
        try:
            answer = (True, calls[name](*args))
        except Exception as error:  # reported to the caller; the replica is still consistent
            answer = (False, f"{type(error).__name__}: {error}")
        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(len(data).to_bytes(8, "big") + data)
        answers.flush()


class WorkerDied(Exception):
    """The worker process exited (say, out of memory) or a call to it was interrupted."""


class Worker:
    """The worker process, `python -c "...worker_main()" REPLICA`, called over its stdin and stdout.

    A plain child process, not a multiprocessing pool: it needs no semaphores (nor /dev/shm) and no
    resource-tracker process, and it is gone when stop() returns."""

    def __init__(self, replica_id: str):
        self.replica_id = replica_id
        self.process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()  # one call at a time, so answers pair with requests

    async def start(self) -> "Worker":
        code = f"from {__name__} import worker_main; worker_main()"
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, self.replica_id, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            # Its own process group: Ctrl-C on `agentnet up` reaches the terminal's group, and a worker still
            # importing would die of it with a traceback. The parent ends it (stop(), or its stdin closing).
            process_group=0,
        )
        return self

    async def call(self, name: str, *args: Any) -> Any:
        assert name in _WORKER_CALLS
        async with self._lock:
            try:
                request = pickle.dumps((name, args), protocol=pickle.HIGHEST_PROTOCOL)
                self.process.stdin.write(len(request).to_bytes(8, "big") + request)
                await self.process.stdin.drain()
                size = int.from_bytes(await self.process.stdout.readexactly(8), "big")
                ok, value = pickle.loads(await self.process.stdout.readexactly(size))
            except BaseException as error:  # a call cut short leaves its answer in the pipe: this worker is done
                await self.stop(kill=True)
                if isinstance(error, (OSError, asyncio.IncompleteReadError)):
                    raise WorkerDied(f"the worker process of {self.replica_id} is gone") from error
                raise
        if not ok:
            raise RuntimeError(f"the worker failed: {value}")
        return value

    async def stop(self, kill: bool = False) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        if kill:
            process.kill()
        else:
            process.stdin.close()  # the worker ends at the end of its input
        try:
            await asyncio.wait_for(process.wait(), 5)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


@dataclass(frozen=True)
class Derived:
    """What one batch gave (plain data: it comes back from the worker process)."""

    wire: bytes | None  # JSON of the delta of what was new to the replica (Delta.to_wire), None if nothing was
    new_equalities: int  # unions in that delta
    report: SaturationReport
    equalities: list[list[str]] | None  # [lhs, rhs] per union saturation made, up to a limit, if asked for
    equality_count: int
    events: int  # events the replica has made so far
    nodes: int  # e-nodes in the replica


def rewrite_batch(terms: list[Term], colour: Colour, budget: Budget, list_equalities: bool = False) -> Derived:
    """Saturate a batch with the colour's family in a scratch e-graph, then adopt it into the replica."""
    scratch = EGraph("scratch")
    for term in terms:
        scratch.add_term(term, colour)
    report = saturate(scratch, rules_for(colour), budget)
    rows = scratch.delta_since({})
    unions = [pair for batch in rows.batches for pair in batch[3]]
    shown = equalities(scratch, unions[:MAX_EQUALITIES]) if list_equalities else None
    delta = adopt(_replica, rows, colour)
    return Derived(
        wire=_encode(delta) if delta else None, new_equalities=sum(len(batch[3]) for batch in delta.batches),
        report=report, equalities=shown, equality_count=len(unions),
        events=_replica.clock.get(_replica.replica, 0), nodes=len(_replica),
    )  # fmt: skip


def events_after(seq: int) -> bytes:
    """The replica's events after its `seq`-th, as delta JSON (to send again)."""
    return _encode(_replica.delta_since({_replica.replica: seq}))


def _encode(delta: Delta) -> bytes:
    return json.dumps(delta.to_wire(), separators=(",", ":")).encode()


def adopt(replica: EGraph, rows: Delta, colour: Colour) -> Delta:
    """Copy a scratch e-graph's nodes and unions into `replica` as one event of its own; the delta of that event.

    Replaying (not joining) keeps the scratch replica's id out of everyone's vector clocks. A scratch id
    names a node by the child classes it had there, so ids are mapped to the replica's classes on the way.
    """
    before = replica.clock
    classes: dict[NodeId, NodeId] = {}
    for _, _, nodes, unions, *_ in rows.batches:  # tags: every node already has the one colour
        for node, _, op, kids in nodes:  # children come before their parents
            classes[node] = replica.add_node(op, [classes[kid] for kid in kids], colour)
        for a, b in unions:
            replica.union(classes[a], classes[b])
    return replica.delta_since(before)


def equalities(scratch: EGraph, unions: list[tuple[NodeId, NodeId]]) -> list[list[str]]:
    """Unions as [lhs, rhs] terms, each side its e-node with the children written in their cheapest forms."""
    cheapest = cheapest_terms(scratch)

    def written(node: NodeId) -> str:
        op, kids = scratch.node(node)
        return str(Term(op, tuple(cheapest[scratch.root(kid)] for kid in kids)))

    return [[written(a), written(b)] for a, b in unions]


def cheapest_terms(egraph: EGraph) -> dict[NodeId, Term]:
    """The smallest term of every class (by class root), all in one fixpoint (saturate.extract does one class)."""
    nodes = egraph.canonical_nodes()
    best: dict[NodeId, tuple[int, Term]] = {}
    changed = True
    while changed:
        changed = False
        for cls, (op, *kids) in nodes:
            parts = [best.get(kid) for kid in kids]
            if None in parts:
                continue
            size = 1 + sum(part[0] for part in parts)
            if cls not in best or size < best[cls][0]:
                best[cls] = (size, Term(op, tuple(part[1] for part in parts)))
                changed = True
    return {cls: term for cls, (_, term) in best.items()}


class _EncodedTransport(Transport):
    """The agents' transport, taking a body that is JSON already (the worker encoded it): no second encoding."""

    @staticmethod
    def envelope(sender: int, body: Any, stamp: dict | None = None) -> bytes:
        if isinstance(body, bytes):
            return b'{"from":%d,"stamp":null,"body":%s}' % (sender, body)
        return Transport.envelope(sender, body, stamp)


# --- the service ------------------------------------------------------------------------------------------


class StreamService(Service):
    uses_nats = True
    settings_model = StreamSettings
    catch_all = True

    def __init__(self, config, colour: str):
        self.colour = Colour(colour)
        self.name = f"stream-{self.colour.value.lower()}"
        super().__init__(config)
        self.batch_size = self.settings.batch_size
        self.budget = Budget(seconds=self.settings.saturation_timeout_ms / 1000, nodes=self.settings.node_limit)
        self.redeliver_after = self.settings.redeliver_ms / 1000
        self.lag_interval = self.settings.lag_interval_ms / 1000
        self.sender = subjects.STREAM_IDS[self.colour.value]
        self.work_subject = natsclient.work_subject(self.colour.value)
        self.consumer = natsclient.work_consumer(self.name)
        self.derived_subject = subjects.DERIVED.format(colour=self.colour.value.lower())
        nodes = config.network.nodes
        self.agents = tuple(n.id for n in nodes if n.colour == self.colour.value) or tuple(n.id for n in nodes)
        self.replica_id = ""  # the worker's replica, named when the worker starts
        self.acked: dict[int, int] = {}  # agent -> how many of the replica's events it has acknowledged
        self.processed = self.rejected = self.derived = self.events = self.nodes = 0
        self.lag = {"pending": 0, "ackPending": 0}
        self.last_batch: dict[str, Any] | None = None
        self._last_send = 0.0
        self._redeliver_wait = self.redeliver_after  # doubles while nobody acknowledges
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.worker: Worker | None = None
        self.js = self.transport = None

    def routes(self) -> list[Route]:
        return [
            Route("/terms", self.queue_terms, methods=["POST"]),
            Route("/apply", self.apply, methods=["POST"]),
            Route("/status", self.status),
        ]

    async def describe(self, request: Request) -> dict[str, Any]:
        """The guides' stream answer: what was received, where, and how many bytes."""
        body = await request.body()
        return {"message": f"{self.colour.value} stream received", "color": self.settings.color,
                "polarity": self.settings.polarity, "path": request.url.path, "request_size": len(body)}  # fmt: skip

    def health(self) -> dict[str, Any]:
        return {"colour": self.colour.value, "consumer": self.consumer, "processed": self.processed,
                "nats": self.nc is not None and self.nc.is_connected}  # fmt: skip

    # --- lifecycle ----------------------------------------------------------------------------------------

    def jetstream(self) -> list[natsclient.JetStreamNeed]:
        return [natsclient.work_stream(self.config.network.stream_replicas),
                natsclient.work_queue_consumer(self.name, max(1_000, 4 * self.batch_size))]

    async def on_start(self) -> None:
        import nats.errors  # loaded by now (natsclient imports nats off the event loop, not at module import)

        await self._new_worker()
        self.transport = _EncodedTransport(self.config.nats_url, self.config.nats_auth, self.name)
        self.transport.nc = self.nc  # the Service's connection, with the agents' envelopes and fragmenting
        self.js = self.nc.jetstream()
        # Bound by name, not created here: the keeper (components.Service) creates the consumer, again
        # whenever the server has lost it, and the binding keeps working across that.
        subscription = await self.js.pull_subscribe_bind(self.consumer, natsclient.WORK_STREAM)
        await self.transport.subscribe(subjects.for_agent(subjects.ACK, self.sender), self._on_ack)
        try:
            await self.refresh_lag()
        except nats.errors.Error as error:
            # A cluster just formed may not answer yet for the stream the keeper has just made ("stream not
            # found"); /ready says so meanwhile, and the lag loop reads it again: no crash into a restart.
            log.info("%s: the work queue's lag cannot be read yet: %r", self.name, error)
        self._tasks = [
            asyncio.create_task(self._consume(subscription), name=f"{self.name}-consume"),
            asyncio.create_task(self._every(self.lag_interval, self.refresh_lag), name=f"{self.name}-lag"),
            asyncio.create_task(self._every(self.redeliver_after, self.redeliver), name=f"{self.name}-redeliver"),
        ]

    async def on_stop(self) -> None:
        self._stopping = True  # nats-py can swallow a cancellation (a fetch then times out instead): the loops check this
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.worker is not None:
            await self.worker.stop()

    async def _every(self, interval: float, action: Callable[[], Awaitable]) -> None:
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                await action()
            except Exception as error:  # NATS away for a moment: try again next time
                log.debug("%s: %s failed: %r", self.name, action.__name__, error)

    async def _new_worker(self) -> None:
        # A replica id unique to this worker's life: two workers never number events under one id.
        self.replica_id = f"{self.name}.{self.config.pod_name}.{secrets.token_hex(4)}"
        self.acked, self.events, self.nodes = {}, 0, 0
        self.worker = await Worker(self.replica_id).start()

    async def _in_worker(self, name: str, *args: Any) -> Any:
        try:
            return await self.worker.call(name, *args)
        except WorkerDied:  # a fresh worker, with a fresh replica, for the next call
            log.error("%s: the worker process died; starting another", self.name)
            await self._new_worker()
            raise

    # --- work ---------------------------------------------------------------------------------------------

    async def _consume(self, subscription) -> None:
        """Pull batches from the durable consumer; ack each message once its batch is handed on."""
        import nats.errors

        while not self._stopping:
            if self.nats_readiness():  # NATS away, or the consumer not there (yet, or again)
                await asyncio.sleep(FETCH_WAIT / 4)
                continue
            try:
                messages = await subscription.fetch(self.batch_size, timeout=FETCH_WAIT)
            except nats.errors.TimeoutError:
                continue
            except Exception as error:  # reconnecting: the server keeps the work
                log.info("%s: fetching work failed (%r); retrying", self.name, error)
                await asyncio.sleep(FETCH_WAIT / 4)
                continue
            terms, good = [], []
            for message in messages:
                try:
                    terms.append(parse(message.data.decode()))
                    good.append(message)
                except (UnicodeDecodeError, TermSyntaxError) as error:
                    refuse(natsclient.WORK_SUBJECTS, message.subject, NOT_A_TERM, f"{self.name}: {error}")
                    self.rejected += 1
                    STREAM_METRICS.terms.labels(self.name, "rejected").inc()
                    await message.term()  # never redeliver it
            if terms:
                try:
                    await self.process(terms)
                except Exception:  # given back: redelivered (to this replica or another) a moment later
                    log.exception("%s: a batch of %d terms failed; it goes back on the queue", self.name, len(terms))
                    for message in good:
                        await message.nak(delay=RETRY_DELAY)
                    continue
            for message in good:
                await message.ack()

    async def process(self, terms: list[Term], list_equalities: bool = False) -> Derived:
        """Rewrite a batch and adopt the result (in the worker), then hand the delta on."""
        start = time.perf_counter()
        derived = await self._in_worker("rewrite_batch", terms, self.colour, self.budget, list_equalities)
        report, new = derived.report, derived.new_equalities
        self.events, self.nodes = derived.events, derived.nodes
        self.processed += len(terms)
        self.derived += new
        STREAM_METRICS.terms.labels(self.name, "processed").inc(len(terms))
        STREAM_METRICS.derived.labels(self.name).inc(new)
        if derived.wire is not None:
            await self._hand_on(derived.wire, publish=True)
        STREAM_METRICS.batch_seconds.labels(self.name).observe(time.perf_counter() - start)
        self.last_batch = {"terms": len(terms), "stop": report.stop_reason.value, "iterations": report.iterations,
                           "nodes": report.nodes, "newEqualities": new, "elapsedMs": round(report.elapsed * 1000, 3)}  # fmt: skip
        return derived

    async def _hand_on(self, wire: bytes, publish: bool) -> None:
        """To every agent of the colour (agent.{id}.state), and to any listener on stream.derived.{colour}."""
        for agent in self.agents:
            await self.transport.send(subjects.for_agent(subjects.STATE, agent), self.sender, agent, wire)
        if publish:
            await self.transport.send(self.derived_subject, self.sender, None, wire)
        self._last_send = time.monotonic()

    async def _on_ack(self, subject: str, envelope: dict, message: Any) -> None:
        agent, clock = envelope["from"], (envelope.get("body") or {}).get("clock")
        if isinstance(agent, int) and isinstance(clock, dict):
            seen = clock.get(self.replica_id, 0)
            if isinstance(seen, int) and seen > self.acked.get(agent, 0):
                self.acked[agent] = seen
                self._redeliver_wait = self.redeliver_after

    async def redeliver(self) -> None:
        """Send again what no agent has acknowledged (one ack is enough: the agents spread it among themselves)."""
        acknowledged = max(self.acked.values(), default=0)
        if acknowledged < self.events and time.monotonic() - self._last_send >= self._redeliver_wait:
            await self._hand_on(await self._in_worker("events_after", acknowledged), publish=False)
            self._redeliver_wait = min(2 * self._redeliver_wait, MAX_REDELIVER_WAIT)

    async def refresh_lag(self) -> dict[str, int]:
        info = await self.js.consumer_info(natsclient.WORK_STREAM, self.consumer)
        self.lag = {"pending": info.num_pending or 0, "ackPending": info.num_ack_pending or 0}
        STREAM_METRICS.lag.labels(self.name).set(self.lag["pending"] + self.lag["ackPending"])
        return self.lag

    # --- routes ---------------------------------------------------------------------------------------------

    def _available(self, reasons: list[str], purpose: str, rule: str) -> None:
        """A 503 saying why (e.g. NATS disconnected) when the component cannot do this now."""
        if not reasons and self.js is None:
            reasons = [f"{self.name} starting"]
        if reasons:
            raise RequestError(f"cannot {purpose} now: {'; '.join(reasons)}", field="nats", rule=rule, status=503)

    async def queue_terms(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        only_fields(body, ("term", "terms"))
        terms = requested_terms(body, MAX_TERMS)
        self._available(self.nats_readiness(), "queue work", "NATS connected and the work queue present")
        try:
            acks = [await self.js.publish_async(self.work_subject, str(term).encode()) for term in terms]
            await asyncio.wait_for(asyncio.gather(*acks), 10)
        except Exception as error:
            self.keeper.wake()  # e.g. no stream: the server lost it; look now rather than within a second
            raise RequestError(f"JetStream did not take the terms: {error!r}", field="nats",
                               rule="the work queue must accept them", status=503) from None  # fmt: skip
        return JSONResponse({"queued": len(terms), "subject": self.work_subject, "consumer": self.consumer}, status_code=202)

    async def apply(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        only_fields(body, ("term", "terms"))
        terms = requested_terms(body, MAX_TERMS)
        self._available(self.nats.not_ready(), "hand derived equalities on", "NATS connected")
        derived = await self.process(terms, list_equalities=True)
        report = derived.report
        return JSONResponse({
            "terms": [str(term) for term in terms],
            "equalities": derived.equalities,
            "equalitiesTotal": derived.equality_count,
            "newEqualities": derived.new_equalities,
            "saturation": {"stop": report.stop_reason.value, "iterations": report.iterations, "nodes": report.nodes,
                           "matches": report.matches},
            "handedTo": list(self.agents) if derived.wire is not None else [],
        })  # fmt: skip

    async def status(self, request: Request) -> JSONResponse:
        if self.js is not None and self.nc.is_connected:
            try:
                await asyncio.wait_for(self.refresh_lag(), 1)
            except Exception:  # NATS busy or away: the last figures
                pass
        return JSONResponse({
            "component": self.name,
            "colour": self.colour.value,
            "replica": self.replica_id,
            "workSubject": self.work_subject,
            "consumer": self.consumer,
            "derivedSubject": self.derived_subject,
            "processed": self.processed,
            "rejected": self.rejected,
            "derived": self.derived,
            "lag": {**self.lag, "total": self.lag["pending"] + self.lag["ackPending"]},
            "events": self.events,
            "agents": {str(agent): {"acked": self.acked.get(agent, 0)} for agent in self.agents},
            "nodes": self.nodes,
            "lastBatch": self.last_batch,
        })  # fmt: skip
