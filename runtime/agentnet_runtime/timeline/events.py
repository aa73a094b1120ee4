"""Timeline events and the clocks that order them (pure: no I/O).

Every agent records what it does as events: each carries the agent's Lamport time and an
event vector clock (replica -> events seen), both advanced on every event and merged from
the stamp a received message carries. So if event a happened before event b (program
order or a message chain), then lamport(a) < lamport(b) and clock(a) < clock(b): ordering
by (lamport, origin, seq) is a causal order.

`replica` names one run of an agent (agent id + start time), so a restarted agent starts
a fresh sequence without reusing (replica, seq), which is the idempotency key.

Partial clocks. Once a network has talked, a clock names every agent, and an event holding
a copy of it cost O(agents) in memory and in the store: at 1,000 agents a burst's events
held gigabytes of clocks. So a recorded event is `partial`: its clock holds only the entries
that changed since its replica's previous event (its own among them), and one event in
KEYFRAME_EVERY of each replica holds the whole clock. The whole clock of a partial event is
the pointwise maximum of its replica's clocks from the newest whole one before it, which
the store rebuilds when it is read (store.py). A lost event leaves that rebuild short of
what the lost one raised, until the next whole one: the clock then says less of the causal
past than there was, never more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Callable

from agentnet_runtime.core.clock import raise_noting

# What an event can be; `subject` says which message a send/receive was.
KINDS = ("start", "stop", "submit", "prove", "send", "receive", "rewrite", "sync")
KEYFRAME_EVERY = 64  # one event in this many of a replica carries its whole clock (events 1, 65, 129, ...)


def event_key(replica: str, seq: int) -> int:
    """Idempotency key: a signed 64-bit hash of (replica, seq), the same in every process."""
    return int.from_bytes(blake2b(f"{replica}#{seq}".encode(), digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True, slots=True)
class Event:
    origin: int  # agent id
    replica: str  # the run of the agent that recorded it
    seq: int  # 1, 2, ... per replica
    lamport: int
    clock: dict[str, int]  # event vector clock (if partial, what changed since the replica's previous event)
    kind: str  # one of KINDS
    colour: str  # the origin agent's colour
    subject: str = ""  # NATS subject of a send/receive, "" for local events
    payload: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0  # wall clock (seconds since the epoch): for time-range queries, not for ordering
    partial: bool = False  # see the module's docstring

    @property
    def key(self) -> int:
        return event_key(self.replica, self.seq)

    def to_dict(self) -> dict[str, Any]:
        """Its JSON form; "partial" only when it is (what the timeline's API answers is whole)."""
        form = {
            "origin": self.origin, "replica": self.replica, "seq": self.seq, "lamport": self.lamport,
            "clock": self.clock, "kind": self.kind, "colour": self.colour, "subject": self.subject,
            "payload": self.payload, "time": self.time,
        }  # fmt: skip
        if self.partial:
            form["partial"] = True
        return form

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Event":
        return cls(**{name: data[name] for name in cls.__slots__ if name in data})


@dataclass
class Recorder:
    """One agent's event clocks; `record` makes the next event (partial, see above) and hands it to `sink`."""

    origin: int
    replica: str
    colour: str
    sink: Callable[[Event], None] | None = None
    seq: int = 0
    lamport: int = 0
    clock: dict[str, int] = field(default_factory=dict)

    def record(self, kind: str, subject: str = "", payload: dict | None = None, received: dict | None = None) -> Event:
        """The next event; `received` is the stamp of the message that caused it (see `stamp`)."""
        changed: dict[str, int] = {}
        if received:
            self.lamport = max(self.lamport, int(received.get("lamport", 0)))
            raise_noting(self.clock, received.get("clock") or {}, changed)
        self.seq += 1
        self.lamport += 1
        self.clock[self.replica] = changed[self.replica] = self.seq
        whole = self.seq % KEYFRAME_EVERY == 1
        event = Event(self.origin, self.replica, self.seq, self.lamport, dict(self.clock) if whole else changed, kind,
                      self.colour, subject, payload or {}, time.time(), partial=not whole)  # fmt: skip
        if self.sink is not None:
            self.sink(event)
        return event

    def stamp(self) -> dict[str, Any]:
        """What an outgoing message carries so its receipt is ordered after its sending."""
        return {"lamport": self.lamport, "clock": dict(self.clock)}
