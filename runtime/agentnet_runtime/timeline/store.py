"""The interaction timeline in a DuckDB file: idempotent batch appends, causal-order queries.

(Every result is read with fetchall(): duckdb 2 refuses new work on a connection that
still holds an unfinished result, e.g. after fetchone().)

A batch is turned into columns (numpy arrays; orjson for the JSON fields) that one
`INSERT OR IGNORE` scans straight into `events`, whose primary key is the idempotency
key (hash of replica and sequence): replaying events adds no rows. Queries return events
ordered by (lamport, origin, seq), which is consistent with happens-before (see events.py).

One Timeline object may be shared by threads (the agent host appends from a worker
thread while HTTP handlers query); a lock serialises use of the connection.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable

import duckdb
import numpy as np
import orjson

from .events import Event, event_key

TABLE = "events"
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
    }


class Timeline:
    """An append-only, causally ordered event log in one DuckDB file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = duckdb.connect(str(self.path))
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({_COLUMN_LIST.replace('key BIGINT', 'key BIGINT PRIMARY KEY', 1)})")

    def append(self, events: Iterable[Event]) -> int:
        """Append a batch; events already stored (same replica and seq) are skipped. Returns rows added."""
        batch = _columns(events)
        if not len(batch["key"]):
            return 0
        with self._lock:
            self._con.register("batch", batch)
            try:
                ((added,),) = self._con.execute(f"INSERT OR IGNORE INTO {TABLE} SELECT {_COLUMN_NAMES} FROM batch").fetchall()
            finally:
                self._con.unregister("batch")
        return int(added)

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
        sql = f"SELECT origin, replica, seq, lamport, clock, kind, colour, subject, payload, time FROM {TABLE}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += f" ORDER BY {CAUSAL_ORDER}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._con.execute(sql, params).fetchall()
        loads = orjson.loads
        return [
            Event(origin, replica, seq, lamport, loads(clock), kind, colour, subject, loads(payload), time)
            for origin, replica, seq, lamport, clock, kind, colour, subject, payload, time in rows
        ]

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
