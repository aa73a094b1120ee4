"""The interaction timeline in a DuckDB file: idempotent batch appends, causal-order queries.

(Every result is read with fetchall(): duckdb 2 refuses new work on a connection that
still holds an unfinished result, e.g. after fetchone().)

A batch is turned into columns (numpy arrays; orjson for the JSON fields) that one
`INSERT OR IGNORE` scans straight into `events`, whose primary key is the idempotency
key (hash of replica and sequence): replaying events adds no rows. Queries return events
ordered by (lamport, origin, seq), which is consistent with happens-before (see events.py).

Events are stored as recorded, most with a partial clock (events.py); a query answers each
with its whole clock, rebuilt from its replica's stored clocks since the newest whole one at
or before it (at most KEYFRAME_EVERY rows per replica, read in one statement). Pruning first
keeps, per replica, the whole clock of the newest event it drops (table `clock_bases`), and a
rebuild starts from it: nothing kept, nor any later event of that replica, needs a dropped row.

One Timeline object may be shared by threads (the agent host appends from a worker
thread while HTTP handlers query); a lock serialises use of the connection.

Retention (`max_age`, `max_events`): `prune()` drops events older than max_age seconds and
then the oldest (by wall clock, then causal order) beyond max_events; `append` prunes by
count itself when it takes the log over max_events. What was dropped is kept in the table
`retention` (events dropped so far, and the horizon: the newest time dropped), so it survives
restarts. An event at or before the horizon arriving late is not stored: it may be a replay
of one already dropped (a new durable consumer reads the stream from its start), so it is not
counted again either. Events of one instant go together.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Iterable

import duckdb
import numpy as np
import orjson

from agentnet_runtime.core.clock import raise_to

from .events import Event, event_key

TABLE = "events"
BASES_TABLE = "clock_bases"  # per replica: the whole clock of its newest event retention dropped, and its seq
RETENTION_TABLE = "retention"  # one row (id 0): dropped (events pruned so far), horizon (newest time pruned)
_COLUMNS = (
    ("key", "BIGINT"),
    ("origin", "INTEGER"),
    ("replica", "VARCHAR"),
    ("seq", "BIGINT"),
    ("lamport", "BIGINT"),
    ("kind", "VARCHAR"),
    ("colour", "VARCHAR"),
    ("subject", "VARCHAR"),
    ("clock", "VARCHAR"),  # JSON
    ("payload", "VARCHAR"),  # JSON
    ("time", "DOUBLE"),
    ("partial", "BOOLEAN"),  # clock holds only what changed since the replica's previous event
)
_COLUMN_LIST = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
_COLUMN_NAMES = ", ".join(name for name, _ in _COLUMNS)
CAUSAL_ORDER = "lamport, origin, seq"


def _columns(events: Iterable[Event]) -> dict[str, np.ndarray]:
    """A batch as columns (DuckDB scans a dict of numpy arrays without a row-by-row copy)."""
    events = list(events)
    n = len(events)

    def column(values, dtype=object) -> np.ndarray:
        return np.fromiter(values, dtype, n) if dtype is not object else np.array(list(values), dtype=object)

    return {
        "key": column((event_key(e.replica, e.seq) for e in events), np.int64),
        "origin": column((e.origin for e in events), np.int32),
        "replica": column(e.replica for e in events),
        "seq": column((e.seq for e in events), np.int64),
        "lamport": column((e.lamport for e in events), np.int64),
        "kind": column(e.kind for e in events),
        "colour": column(e.colour for e in events),
        "subject": column(e.subject for e in events),
        "clock": column(orjson.dumps(e.clock).decode() for e in events),
        "payload": column(orjson.dumps(e.payload).decode() for e in events),
        "time": column((e.time for e in events), np.float64),
        "partial": column((e.partial for e in events), np.bool_),
    }


class Timeline:
    """An append-only, causally ordered event log in one DuckDB file."""

    def __init__(self, path: str | Path, *, max_age: float | None = None, max_events: int | None = None):
        """`path` ":memory:" keeps nothing; `max_age` (seconds) and `max_events` bound what is kept (None: no bound)."""
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_age, self.max_events = max_age, max_events
        self._lock = threading.Lock()
        self._con = duckdb.connect(str(path))
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({_COLUMN_LIST.replace('key BIGINT', 'key BIGINT PRIMARY KEY', 1)})")
        self._con.execute(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS partial BOOLEAN DEFAULT false")  # a file from before
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {BASES_TABLE} (replica VARCHAR PRIMARY KEY, seq BIGINT, clock VARCHAR)")
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {RETENTION_TABLE} (id INTEGER PRIMARY KEY, dropped BIGINT, horizon DOUBLE)")
        self._con.execute(f"INSERT OR IGNORE INTO {RETENTION_TABLE} VALUES (0, 0, '-infinity')")

    def append(self, events: Iterable[Event]) -> int:
        """Append a batch; events already stored (same replica and seq) or older than what retention
        dropped are skipped. Returns rows added. Prunes down to max_events when the log grew past it."""
        batch = _columns(events)
        if not len(batch["key"]):
            return 0
        with self._lock:
            self._con.register("batch", batch)
            try:
                ((added,),) = self._con.execute(
                    f"INSERT OR IGNORE INTO {TABLE} ({_COLUMN_NAMES}) SELECT {_COLUMN_NAMES} FROM batch"
                    f" WHERE time > (SELECT horizon FROM {RETENTION_TABLE})"
                ).fetchall()
            finally:
                self._con.unregister("batch")
            if added and self.max_events is not None:
                self._prune_locked(None)
        return int(added)

    def prune(self, now: float | None = None) -> int:
        """Drop what retention does not keep (age relative to `now`, default the wall clock); returns events dropped."""
        with self._lock:
            return self._prune_locked(time.time() if now is None else now)

    def _prune_locked(self, now: float | None) -> int:
        horizon = -math.inf  # the newest time to drop
        if self.max_age is not None and now is not None:
            horizon = now - self.max_age
        if self.max_events is not None:
            ((kept,),) = self._con.execute(f"SELECT count(*) FROM {TABLE} WHERE time > ?", [horizon]).fetchall()
            if kept > self.max_events:  # the (kept - max_events)th oldest of those is dropped too
                ((newest,),) = self._con.execute(
                    f"SELECT time FROM {TABLE} WHERE time > ? ORDER BY time LIMIT 1 OFFSET ?", [horizon, kept - self.max_events - 1]
                ).fetchall()
                horizon = newest
        if horizon == -math.inf:
            return 0
        self._keep_bases_locked(horizon)
        ((dropped,),) = self._con.execute(f"DELETE FROM {TABLE} WHERE time <= ?", [horizon]).fetchall()
        if dropped:
            self._con.execute(f"UPDATE {RETENTION_TABLE} SET dropped = dropped + ?, horizon = greatest(horizon, ?)", [dropped, horizon])
        return int(dropped)

    def retention(self) -> dict:
        """What retention dropped: {"dropped": events so far, "oldestKept": time of the oldest event kept (None: empty)}."""
        with self._lock:
            ((dropped,),) = self._con.execute(f"SELECT dropped FROM {RETENTION_TABLE}").fetchall()
            ((oldest,),) = self._con.execute(f"SELECT min(time) FROM {TABLE}").fetchall()
        return {"dropped": int(dropped), "oldestKept": oldest, "maxAgeSeconds": self.max_age, "maxEvents": self.max_events}

    def query(
        self,
        *,
        agent: int | None = None,
        kind: str | None = None,
        colour: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events in causal order, filtered by origin agent, kind, colour and wall-clock range [since, until)."""
        conditions, params = [], []
        for column, value in (("origin", agent), ("kind", kind), ("colour", colour)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            conditions.append("time >= ?")
            params.append(since)
        if until is not None:
            conditions.append("time < ?")
            params.append(until)
        sql = f"SELECT origin, replica, seq, lamport, clock, kind, colour, subject, payload, time, partial FROM {TABLE}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += f" ORDER BY {CAUSAL_ORDER}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._con.execute(sql, params).fetchall()
            rebuild = [(row[1], row[2]) for row in rows if row[10]]
            whole = self._whole_clocks_locked(rebuild) if rebuild else {}
        loads = orjson.loads
        return [
            Event(origin, replica, seq, lamport, whole[replica, seq] if partial else loads(clock), kind, colour, subject,
                  loads(payload), time)  # fmt: skip
            for origin, replica, seq, lamport, clock, kind, colour, subject, payload, time, partial in rows
        ]

    def _whole_clocks_locked(self, events: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, int]]:
        """The whole clocks of these stored events (replica, seq): the pointwise maximum of the replica's stored
        clocks from its newest whole one at or before the event (from its first, if none is kept) up to it, and
        of its base (what retention dropped before it)."""
        spans: dict[str, tuple[int, int]] = {}
        for replica, seq in events:
            low, high = spans.get(replica, (seq, seq))
            spans[replica] = (min(low, seq), max(high, seq))
        wanted = set(events)
        self._con.register("wanted", {"replica": np.array(list(spans), dtype=object),
                                      "low": np.fromiter((low for low, _ in spans.values()), np.int64, len(spans)),
                                      "high": np.fromiter((high for _, high in spans.values()), np.int64, len(spans))})  # fmt: skip
        try:
            rows = self._con.execute(
                f"SELECT e.replica, e.seq, e.clock FROM {TABLE} e JOIN wanted w ON e.replica = w.replica"
                f" WHERE e.seq <= w.high AND e.seq >= coalesce((SELECT max(k.seq) FROM {TABLE} k"
                f"  WHERE k.replica = w.replica AND NOT k.partial AND k.seq <= w.low), 0)"
                f" UNION ALL SELECT b.replica, b.seq, b.clock FROM {BASES_TABLE} b JOIN wanted w ON b.replica = w.replica"
                f" WHERE b.seq <= w.high ORDER BY replica, seq"
            ).fetchall()
        finally:
            self._con.unregister("wanted")
        whole: dict[tuple[str, int], dict[str, int]] = {}
        current, clock = None, {}
        for replica, seq, text in rows:
            if replica != current:
                current, clock = replica, {}
            raise_to(clock, orjson.loads(text))
            if (replica, seq) in wanted:
                whole[replica, seq] = dict(clock)
        return whole

    def _keep_bases_locked(self, horizon: float) -> None:
        """Before retention drops the events up to `horizon`: each replica's base becomes the whole clock of the
        newest of its events dropped (which holds all the older ones)."""
        newest = self._con.execute(
            f"SELECT replica, max(seq) FROM {TABLE} WHERE time <= ? GROUP BY replica", [horizon]
        ).fetchall()
        if not newest:
            return
        whole = self._whole_clocks_locked([(replica, seq) for replica, seq in newest])
        self._con.register("fresh", {"replica": np.array([r for r, _ in whole], dtype=object),
                                     "seq": np.fromiter((seq for _, seq in whole), np.int64, len(whole)),
                                     "clock": np.array([orjson.dumps(c).decode() for c in whole.values()], dtype=object)})  # fmt: skip
        try:
            self._con.execute(f"INSERT OR REPLACE INTO {BASES_TABLE} SELECT f.replica, f.seq, f.clock FROM fresh f"
                              f" WHERE f.seq > coalesce((SELECT b.seq FROM {BASES_TABLE} b WHERE b.replica = f.replica), 0)")  # fmt: skip
        finally:
            self._con.unregister("fresh")

    def count(self) -> int:
        with self._lock:
            ((count,),) = self._con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> "Timeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
