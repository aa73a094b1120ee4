"""Messages a process refuses: one warning line per subject and reason at most every WARN_EVERY seconds
(saying how many like it were not logged since), and the counter agentnet_messages_refused_total.

Anyone can publish on a subject we listen to; what arrives there empty, not JSON or of the wrong
shape is dropped (anti-entropy repairs whatever was meant), never a traceback. The counter's
`subject` label is the subscription's pattern with agent ids as `*` (agent.*.*, not agent.3.state),
so its cardinality stays that of the subscriptions; the warning names the concrete subject.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Callable

from prometheus_client import Counter

log = logging.getLogger("agentnet.refused")

WARN_EVERY = 10.0  # seconds between two warnings of one subject pattern and reason
DETAIL_LIMIT = 300  # characters of a refusal's detail in its line (it may quote the message)

# Reasons (the counter's `reason` label): a fixed set.
EMPTY = "empty"
NOT_JSON = "not JSON"  # truncated, random bytes, not UTF-8, numbers beyond 64 bits, nested too deep
WRONG_SHAPE = "wrong shape"  # JSON, but not what the subject carries
BAD_FRAGMENT = "bad fragment"  # a fragment header that is not "<id> <index> <count>"
BAD_DELTA = "bad delta"  # a body that is not a CRDT delta in wire form
NOT_A_TERM = "not a term"  # a work-queue message that does not parse

REFUSED = Counter("agentnet_messages_refused", "NATS messages refused, by subject pattern and reason", ["subject", "reason"])

_NUMBER = re.compile(r"-?\d+")


def subject_pattern(subject: str) -> str:
    """The subject with its numeric tokens (agent ids, negative for components) as `*`."""
    return ".".join("*" if _NUMBER.fullmatch(token) else token for token in subject.split("."))


class Refused(ValueError):
    """Raised by a message handler for a message it will not take; the transport reports it. A ValueError,
    so code that already treats a bad value as one (e.g. a sync reply) goes on doing so."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class Refusals:
    """Counts refused messages and warns about them, each (pattern, reason) at most once per `every` seconds."""

    def __init__(self, logger: logging.Logger = log, every: float = WARN_EVERY, clock: Callable[[], float] = time.monotonic):
        self.logger, self.every, self.clock = logger, every, clock
        self._last: dict[tuple[str, str], float] = {}  # (pattern, reason) -> when last warned
        self._suppressed: dict[tuple[str, str], int] = {}  # refused since, without a line

    def refuse(self, pattern: str, subject: str, reason: str, detail: str = "") -> None:
        pattern, detail = subject_pattern(pattern), detail[:DETAIL_LIMIT]
        REFUSED.labels(pattern, reason).inc()
        key, now = (pattern, reason), self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        more = f" ({suppressed} more on {pattern} for this reason since the last warning)" if suppressed else ""
        self.logger.warning(
            "refused a message on %s: %s%s%s", subject, reason, f" ({detail})" if detail else "", more,
            extra={"subject": subject, "pattern": pattern, "reason": reason, "suppressed": suppressed},
        )  # fmt: skip


REFUSALS = Refusals()  # the process's: one rate limit for every subscription
refuse = REFUSALS.refuse
