"""crdt-service (/crdt): merges CRDT e-graph states and deltas, with a merge cache.

POST /merge  {"states": [wire, ...]} or {"base": wire, "delta": wire}   (wire: EGraph.to_wire() or Delta.to_wire())
             -> {"cached", "digest", "nodes", "clock", "state"}: the join of the inputs, as a full state
GET  /state  the service's own replica, which has joined everything it merged: digest, nodes, classes, clock, state
NATS crdt.merge (request/reply, queue group crdt-service, so replicas share the work), for throughput:
             {"merges": [merge, ...], "withState"?: true} -> {"results": [result | {"error", "field", "rule"}, ...]}

The merge itself (its checks and result) is answers/crdt.py, shared with the Spin build. The merge cache is keyed by the events (dots: origin replica, sequence number) the inputs carry. In this CRDT an
event's dot fixes its contents (egraph.py: every replica keeps each event exactly as it was made, and join skips
a dot it has seen), so inputs carrying the same dots have the same join, whatever their order or grouping; a
hit costs no parsing of nodes at all. It is bounded in bytes, CACHE_SIZE_MB (MiB; settings.CrdtSettings: the
environment variable as the deployment guides set it, else the component setting, else 50), an entry costing the length of its JSON; the least
recently used go first. Its hits and misses (agentnet_cache_*_total{cache="merge"}, cache.py) and its bytes are exported. Long NATS batches yield to the event loop every few merges, so HTTP keeps being served.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import orjson
from prometheus_client import Counter, Gauge
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentnet_runtime.components import Service
from agentnet_runtime.agent import subjects
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.answers.crdt import MERGE_RULE, deltas_of, events_of, joined, merge_inputs, summary
from agentnet_runtime.refusals import NOT_JSON, WRONG_SHAPE, refuse
from .cache import ByteLRU, Lookups
from agentnet_runtime.settings import CrdtSettings
from agentnet_runtime.web import RequestError, json_body

log = logging.getLogger("agentnet.crdt")

QUEUE_GROUP = "crdt-service"
SLICE = 32  # merges of a NATS batch between two yields to the event loop
_COMPACT = (",", ":")


def dumps(value: Any) -> bytes:
    """Compact JSON. orjson, several times as fast as the json module on merged states; the json module for what
    orjson refuses and JSON allows (an HTTP body, parsed by the json module, may carry integers beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, separators=_COMPACT).encode()


class CRDT_METRICS:
    """crdt-service's metrics (to move into web.METRICS)."""

    merges = Counter("agentnet_crdt_merges", "Merges asked of crdt-service, by path (http | nats) and result (hit | miss | refused)",
                     ["path", "result"])  # fmt: skip
    cache_bytes = Gauge("agentnet_crdt_cache_bytes", "Bytes held by crdt-service's merge cache (the JSON of its entries)")
    replica_nodes = Gauge("agentnet_crdt_replica_nodes", "E-nodes in crdt-service's replica (the join of everything merged)")


class CrdtService(Service):
    name = "crdt-service"
    uses_nats = True
    settings_model = CrdtSettings

    def __init__(self, config):
        super().__init__(config)
        self.cache = ByteLRU(int(self.settings.cache_size_mb * 2**20), Lookups(self.name, "merge"))  # events -> (b'"digest":..,"nodes":..,"clock":..', state JSON)
        self.replica = EGraph(f"{self.name}.{config.pod_name}")
        self._state_json: tuple[int, bytes] = (-1, b"")  # GET /state body, for one replica version
        # Counters by (path, result), looked up once: labels() costs as much as a cache hit.
        self._counted = {(path, result): CRDT_METRICS.merges.labels(path, result)
                         for path in ("http", "nats") for result in ("hit", "miss", "refused")}  # fmt: skip

    def routes(self) -> list[Route]:
        return [Route("/merge", self.merge_route, methods=["POST"]), Route("/state", self.state_route)]

    def health(self) -> dict[str, Any]:
        return {"cache": self.cache_stats()}

    def cache_stats(self) -> dict[str, Any]:
        return {"entries": len(self.cache), "bytes": self.cache.bytes, "maxBytes": self.cache.max_bytes,
                "evictions": self.cache.evictions, "hits": self.cache.hits, "misses": self.cache.misses,
                "hitRate": round(self.cache.hit_rate, 4)}  # fmt: skip

    async def on_start(self) -> None:
        await self.nc.subscribe(subjects.CRDT_MERGE, queue=QUEUE_GROUP, cb=self._on_merge_batch)

    # --- merging ----------------------------------------------------------------------------------------

    def merge(self, spec: Any, path: str, prefix: str = "") -> tuple[bytes, bytes, bool]:
        """(summary JSON members, state JSON, cached?) of one merge; RequestError names a bad field."""
        try:
            wires = merge_inputs(spec, prefix)
            key = events_of(wires)
            cached = None if key is None else self.cache.get(key)
            if cached is not None:
                self._counted[path, "hit"].inc()
                return (*cached, True)
            deltas = deltas_of(spec, wires, prefix)
        except RequestError:
            self._counted[path, "refused"].inc()
            raise
        merged = joined(deltas)
        for delta in deltas:
            self.replica.join(delta)
        result = (dumps(summary(merged))[1:-1], dumps(merged.to_wire()))
        if key is not None:
            self.cache.put(key, result, len(result[0]) + len(result[1]))
            CRDT_METRICS.cache_bytes.set(self.cache.bytes)
        self._counted[path, "miss"].inc()
        CRDT_METRICS.replica_nodes.set(len(self.replica))
        return (*result, False)

    @staticmethod
    def _result(summary: bytes, state: bytes | None, cached: bool) -> bytes:
        flag = b'{"cached":true,' if cached else b'{"cached":false,'
        return flag + summary + (b'}' if state is None else b',"state":' + state + b"}")

    async def merge_route(self, request: Request) -> Response:
        summary, state, cached = self.merge(await json_body(request), "http")
        return Response(self._result(summary, state, cached), media_type="application/json")

    async def state_route(self, request: Request) -> Response:
        replica = self.replica
        if self._state_json[0] != replica.version:
            body = {"replica": replica.replica, **replica.stats(), "cache": self.cache_stats(), "state": replica.to_wire()}
            self._state_json = (replica.version, dumps(body))
        return Response(self._state_json[1], media_type="application/json")

    # --- NATS: batches of merges --------------------------------------------------------------------------

    async def _on_merge_batch(self, message) -> None:
        if not message.reply:
            refuse(subjects.CRDT_MERGE, message.subject, WRONG_SHAPE, "a merge request needs a reply subject")
            return
        try:
            body = orjson.loads(message.data)  # integers beyond 64 bits come out as floats, which no wire check lets by
            merges, with_state = body["merges"], body.get("withState", True)
            if not isinstance(merges, list) or not isinstance(with_state, bool):
                raise TypeError
        except (ValueError, TypeError, KeyError) as error:  # orjson.JSONDecodeError is a ValueError
            self._counted["nats", "refused"].inc()
            refuse(subjects.CRDT_MERGE, message.subject, NOT_JSON if isinstance(error, ValueError) else WRONG_SHAPE)
            error = RequestError("the request must be {\"merges\": [merge, ...], \"withState\"?: bool}", field="merges",
                                 rule=f"a JSON object with a list of merges, each {MERGE_RULE}")  # fmt: skip
            await message.respond(dumps(error.body()))
            return
        parts = []
        for index, spec in enumerate(merges):
            try:
                summary, state, cached = self.merge(spec, "nats", f"merges[{index}]")
                parts.append(self._result(summary, state if with_state else None, cached))
            except RequestError as error:
                parts.append(dumps(error.body()))
            if index % SLICE == SLICE - 1:
                await asyncio.sleep(0)  # let HTTP requests and other messages in
        reply = b'{"results":[' + b",".join(parts) + b"]}"
        if len(reply) > self.nc.max_payload:
            error = RequestError(f"the reply ({len(reply)} bytes) is larger than NATS allows ({self.nc.max_payload})",
                                 field="merges", rule='send fewer merges per request, or "withState": false')  # fmt: skip
            reply = dumps(error.body())
        await message.respond(reply)


def create(config) -> CrdtService:
    return CrdtService(config)
