"""Membership from heartbeats: which agents are alive, gone or unseen, and whether they agree.

One rule and one meaning for every component that watches heartbeats (agent-orchestrator, dashboard):
- an agent is `unseen` until its first heartbeat, then `alive`; silent for more than GONE_AFTER
  heartbeat intervals it is `gone`, and its next heartbeat brings it back (counted in `returns`).
  2.5, not 3: a killed agent's last heartbeat came before it died, and it must be marked gone
  within three intervals of dying; a live agent's heartbeats are at most 1.2 intervals apart (jitter).
- the network is converged when every agent has been seen and the alive ones report one digest:
  an agent never heard from may hold anything, so it keeps the network from counting as converged;
  a gone agent does not (the others can agree without it).

Pure: the caller passes the time (time.monotonic()) and does the I/O, logging and metrics.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Generic, Iterable, TypeVar

UNSEEN, ALIVE, GONE = "unseen", "alive", "gone"
STATES = (ALIVE, GONE, UNSEEN)
GONE_AFTER = 2.5  # heartbeat intervals of silence after which an agent is gone


@dataclass
class Member:
    """What a watcher knows of one agent from its heartbeats."""

    id: int
    state: str = UNSEEN
    last_seen: float | None = None  # time of its last heartbeat
    digest: str | None = None
    nodes: int = 0  # e-nodes in its replica
    events: int = 0  # sum of its vector clock: events its replica has seen
    returns: int = 0  # times it came back after being gone

    def age(self, now: float) -> float | None:
        """Seconds since its last heartbeat (None before the first)."""
        return None if self.last_seen is None else now - self.last_seen


M = TypeVar("M", bound=Member)


class Membership(Generic[M]):
    """The members of one network, by agent id; `gone_after` is in heartbeat intervals."""

    def __init__(self, members: Iterable[M], interval: float, gone_after: float = GONE_AFTER):
        if not interval > 0 or not gone_after > 0:
            raise ValueError(f"interval and gone_after must be positive (got {interval}, {gone_after})")
        self.members: dict[int, M] = {member.id: member for member in members}
        self.interval = interval
        self.gone_after = gone_after * interval  # seconds

    def heartbeat(self, agent: Any, beat: dict[str, Any], now: float) -> tuple[M, str] | None:
        """Record a heartbeat of `agent`; (the member, the state it was in) if this made it alive, else None.

        A sender that is not an agent of this network is ignored; a malformed count raises ValueError
        (or TypeError) before anything is recorded."""
        member = self.members.get(agent) if type(agent) is int else None
        if member is None:
            return None
        digest, nodes, events = beat.get("digest"), int(beat.get("nodes", 0)), int(beat.get("events", 0))
        member.last_seen, member.digest, member.nodes, member.events = now, digest, nodes, events
        was = member.state
        if was == ALIVE:
            return None
        if was == GONE:
            member.returns += 1
        member.state = ALIVE
        return member, was

    def sweep(self, now: float) -> list[M]:
        """Mark alive members silent for longer than `gone_after` seconds as gone; those newly gone."""
        gone = [m for m in self.members.values() if m.state == ALIVE and now - m.last_seen > self.gone_after]
        for member in gone:
            member.state = GONE
        return gone

    def counts(self) -> dict[str, int]:
        tally = Counter(member.state for member in self.members.values())
        return {state: tally[state] for state in STATES}

    def digests(self) -> set[str | None]:
        """The digests the alive members report."""
        return {member.digest for member in self.members.values() if member.state == ALIVE}

    def digest(self) -> str | None:
        """The one digest of a converged network, else None."""
        return next(iter(self.digests())) if self.converged() else None

    def converged(self) -> bool:
        """Every agent seen, and the alive ones report one digest."""
        digests = self.digests()
        return len(digests) == 1 and None not in digests and self.counts()[UNSEEN] == 0
