"""skill-verification (/verify): K verifiers (setting NUM_AGENTS, the guides' name, default 17) vote on a claim.

POST /terms       {"lhs", "rhs"}                     are two terms equal?
POST /skills      {"name", "vector"}                  store (or replace) a skill's embedding
GET  /skills                                          the stored skills and their dimensions
POST /embedding   {"skill", "vector", "threshold"?}   does a vector match a stored skill?
GET  /replica                                         what the verification replica has learnt

Every answer has the verdict, `agreement` (the share of verifiers that voted for the most
common vote), `variance` (of the verifiers' scores) and the vote counts. A verdict needs
more than a `quorum` (default 2/3) of the votes; otherwise it is "unknown".

Term claims (answers/verification.py, shared with the Spin build, which has no replica). Verifier k judges with its own evidence, in this order:
  1. evaluation: both terms, exactly, at random rational points of its own (seeded by k):
     numerals are numbers, the five operators their arithmetic, a function call a random
     function (core/counterexample.py). Every rewrite rule holds wherever both its sides have
     a value, so different values refute the claim for certain ("unequal"); the answer shows
     the counterexample (`counterexample`, from the first verifier that found one);
  2. the network: the verification replica, an e-graph joined from the stream components'
     derived deltas (stream.derived.{colour}) and from agents' state (pulled by anti-entropy
     every `pull_interval` seconds, rotating over the agents). Both terms in one class there
     means the network has proven them equal ("equal"). One replica: every verifier reads it alike;
  3. its own equality saturation with every rule, under a budget of its own (a fraction in
     [0.5, 1] of settings `iterations`, `nodes` and `budget_ms`, seeded by k): proven equal,
     or else "unknown" (out of budget, or saturated without deriving it: not derivable is
     never "unequal").
Scores: equal 1, unknown 0.5, unequal 0. `equal` is the verdict as true / false / null.

Embedding claims. Skill vectors are kept in DuckDB: `<data dir>/skills.duckdb`, or an
in-memory database without a data directory (lost on restart). Verifier k computes the
cosine similarity on its own random subset of the dimensions (a `subset` share of them,
default 1/2, seeded by k) and votes "match" when it is >= the threshold (default setting
`threshold`, 0.8); its score is the similarity. Each replica of this component has its own
store: a skill stored through one replica is unknown to the others.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.agent import subjects
from agentnet_runtime.agent.transport import Transport
from agentnet_runtime.components import Service
from agentnet_runtime.answers.verification import judge_all, tally, term_claim, terms_answer, verifier
from agentnet_runtime.settings import VerificationSettings
from agentnet_runtime.web import RequestError, json_body

from agentnet_runtime.components.common import NetworkReplica, every, number
from agentnet_runtime.request_checks import only_fields

SKILLS_FILE = "skills.duckdb"
MAX_DIMENSIONS = 65_536
MAX_NAME = 200

# Metrics of this module (to move into web.METRICS).
VERIFICATIONS = Counter("agentnet_verifications", "Claims verified, by kind and verdict", ["kind", "verdict"])
AGREEMENT = Histogram(
    "agentnet_verification_agreement", "Share of verifiers that cast the most common vote", ["kind"],
    buckets=(0.5, 0.6, 0.667, 0.75, 0.8, 0.9, 0.95, 1.0),
)  # fmt: skip


# --- embedding claims -------------------------------------------------------------------------------


class SkillStore:
    """Skill vectors in DuckDB, with every vector also kept in memory for voting."""

    def __init__(self, path: Path | None):
        import duckdb

        self.path = str(path) if path is not None else ":memory:"
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = duckdb.connect(self.path)
        self._con.execute("CREATE TABLE IF NOT EXISTS skills (name VARCHAR PRIMARY KEY, vector DOUBLE[] NOT NULL)")
        rows = self._con.execute("SELECT name, vector FROM skills").fetchall()
        self.vectors: dict[str, np.ndarray] = {name: np.asarray(vector, dtype=float) for name, vector in rows}

    def put(self, name: str, vector: np.ndarray) -> None:
        with self._lock:
            self._con.execute("INSERT OR REPLACE INTO skills VALUES (?, ?)", [name, vector.tolist()]).fetchall()
        self.vectors[name] = vector

    def close(self) -> None:
        with self._lock:
            self._con.close()


@functools.lru_cache(maxsize=8)  # one or a few embedding sizes in practice
def subset_masks(dimensions: int, verifiers: int, share: float) -> np.ndarray:
    """verifiers x dimensions 0/1 matrix: row k is verifier k's random subset (seeded by k, never empty)."""
    masks = np.zeros((verifiers, dimensions))
    for k in range(verifiers):
        rng = np.random.default_rng(k)
        row = rng.random(dimensions) < share
        if not row.any():
            row[rng.integers(dimensions)] = True
        masks[k] = row
    return masks


def _vector(value: Any, field: str) -> np.ndarray:
    rule = f"a list of 1..{MAX_DIMENSIONS} finite numbers, not all zero"
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_DIMENSIONS or any(isinstance(x, (bool, str)) for x in value):
        raise RequestError(f"{field} must be a list of numbers", field=field, rule=rule)
    try:
        vector = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise RequestError(f"{field} must be a list of numbers", field=field, rule=rule) from None
    if vector.ndim != 1 or not np.isfinite(vector).all() or not vector.any():
        raise RequestError(f"{field} must hold finite numbers, not all zero", field=field, rule=rule)
    return vector


def _text(body: dict, field: str, rule: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{field} is required: a non-empty string", field=field, rule=rule)
    return value


# --- the service ------------------------------------------------------------------------------------


class SkillVerification(Service):
    name = "skill-verification"
    uses_nats = True
    settings_model = VerificationSettings

    def __init__(self, config):
        super().__init__(config)
        settings = self.settings
        self.count, self.quorum, self.threshold = settings.num_agents, settings.quorum, settings.threshold
        self.share, self.pull_interval, self.sync_timeout = settings.subset, settings.pull_interval, settings.sync_timeout
        self.verifiers = [verifier(k, settings.iterations, settings.nodes, settings.budget_ms / 1000) for k in range(self.count)]
        # One worker thread runs the saturations: off the event loop, and one at a time (memos are not thread-safe).
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="verifiers")
        self.store: SkillStore | None = None
        self.replica: NetworkReplica | None = None
        self._next_agent = 0
        self._tasks: list[asyncio.Task] = []

    def routes(self) -> list[Route]:
        return [
            Route("/terms", self.terms_route, methods=["POST"]),
            Route("/skills", self.store_skill_route, methods=["POST"]),
            Route("/skills", self.skills_route),
            Route("/embedding", self.embedding_route, methods=["POST"]),
            Route("/replica", self.replica_route),
        ]

    def health(self) -> dict[str, Any]:
        return {"verifiers": self.count, "nats": "connected" if self.nc is not None and self.nc.is_connected else "connecting"}

    async def on_start(self) -> None:
        data = self.config.data_dir
        self.store = await asyncio.to_thread(SkillStore, data / SKILLS_FILE if data is not None else None)
        transport = Transport(self.config.nats_url, self.config.nats_auth)
        transport.nc = self.nc  # the Service's connection; Transport adds envelopes and fragments
        self.replica = NetworkReplica(transport, subjects.VERIFIER_ID, self.name)
        await self.replica.listen(streams=True)
        if self.pull_interval > 0:
            self._tasks.append(asyncio.create_task(every(self.pull_interval, self.pull_next, self.name), name="pull"))

    async def on_stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._worker.shutdown(wait=True)
        if self.store is not None:
            self.store.close()

    async def pull_next(self) -> None:
        """Anti-entropy with the next agent in turn: the replica learns what the agents derived."""
        agent = self._next_agent % self.config.network.size
        self._next_agent += 1
        await self.replica.pull(agent, self.sync_timeout)

    # --- terms ----------------------------------------------------------------------------------

    async def terms_route(self, request: Request) -> JSONResponse:
        lhs, rhs = term_claim(await json_body(request))
        # The replica changes on this thread (NATS callbacks): read it here, saturate in the worker.
        network_equal = self.replica is not None and self.replica.egraph.equivalent(lhs, rhs)
        judged = await asyncio.get_running_loop().run_in_executor(self._worker, judge_all, self.verifiers, lhs, rhs, network_equal)
        answer = terms_answer(lhs, rhs, judged, self.quorum)
        VERIFICATIONS.labels("terms", answer["verdict"]).inc()
        AGREEMENT.labels("terms").observe(answer["agreement"])
        return JSONResponse(answer)

    # --- skills and embeddings ----------------------------------------------------------------------

    async def store_skill_route(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        only_fields(body, ("name", "vector"))
        name = _text(body, "name", f"a non-empty string of at most {MAX_NAME} characters")
        if len(name) > MAX_NAME:
            raise RequestError(f"name is longer than {MAX_NAME} characters", field="name", rule=f"at most {MAX_NAME} characters")
        vector = _vector(body.get("vector"), "vector")
        replaced = name in self.store.vectors
        await asyncio.to_thread(self.store.put, name, vector)
        return JSONResponse({"name": name, "dimensions": len(vector), "replaced": replaced, "store": self.store.path}, status_code=201)

    async def skills_route(self, request: Request) -> JSONResponse:
        skills = {name: len(vector) for name, vector in sorted(self.store.vectors.items())}
        return JSONResponse({"count": len(skills), "skills": skills, "store": self.store.path})

    async def embedding_route(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        only_fields(body, ("skill", "vector", "threshold"))
        name = _text(body, "skill", "the name of a stored skill (POST /skills)")
        skill = self.store.vectors.get(name)
        if skill is None:
            raise RequestError(
                f"no skill named {name!r} is stored", field="skill", rule="the name of a stored skill (POST /skills)", status=404
            )
        vector = _vector(body.get("vector"), "vector")
        if len(vector) != len(skill):
            raise RequestError(
                f"vector has {len(vector)} dimensions, skill {name!r} has {len(skill)}", field="vector",
                rule=f"must have the skill's {len(skill)} dimensions",
            )  # fmt: skip
        threshold = number(body["threshold"], "threshold", -1, 1) if "threshold" in body else self.threshold
        masks = subset_masks(len(skill), self.count, self.share)
        with np.errstate(invalid="ignore", divide="ignore"):
            similarities = (masks @ (skill * vector)) / np.sqrt((masks @ (skill * skill)) * (masks @ (vector * vector)))
        defined = similarities[np.isfinite(similarities)]  # a subset where either vector is all zero has none
        votes = ["unknown" if not np.isfinite(s) else "match" if s >= threshold else "no-match" for s in similarities]
        result = tally(votes, defined.tolist(), self.quorum)
        VERIFICATIONS.labels("embedding", result["verdict"]).inc()
        AGREEMENT.labels("embedding").observe(result["agreement"])
        full = float(skill @ vector / (np.linalg.norm(skill) * np.linalg.norm(vector)))
        return JSONResponse({
            "claim": {"kind": "embedding", "skill": name, "dimensions": len(skill), "threshold": threshold},
            **result,
            "mean": round(float(defined.mean()), 6) if len(defined) else None,
            "similarity": round(full, 6),
            "similarities": [round(float(s), 6) if np.isfinite(s) else None for s in similarities],
        })  # fmt: skip

    async def replica_route(self, request: Request) -> JSONResponse:
        if self.replica is None:
            raise RequestError("not started yet", field="nats", rule="wait for the component to connect", status=503)
        return JSONResponse(self.replica.status())


def create(config) -> SkillVerification:
    return SkillVerification(config)
