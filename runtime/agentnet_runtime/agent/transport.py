"""NATS for a block of agents: one connection, JSON envelopes, endless reconnects,
fragmentation of large messages, and a test-only partition switch.

An envelope is `{"from": agent id, "stamp": timeline stamp, "body": ...}`. A published
envelope larger than the server's max_payload (1 MB by default; a delta or a rewrite
batch can be bigger) goes out as numbered fragments with a FRAGMENT header and is put
back together on arrival; a lost fragment loses the message, which anti-entropy
repairs like any other loss. All agents of
a test share one nats-server, so a network partition cannot be made by cutting wires:
`partition(groups)` makes this transport drop every message between agents of different
groups, on the way out and on the way in. It exists for tests; nothing else calls it.

Agents of one process share its connection, and what one sends to another's inbox
(`subscribe_inbox`) never goes through the server: the envelope is handed to the addressee's
handler in memory as it was built, bodies and deltas as objects, neither encoded nor checked
again (this process's own code made them; in a burst, JSON and the re-derivation of every
e-node id cost as much as the joins). Partitions cut them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, Awaitable, Callable, Iterable

import orjson

from agentnet_runtime import natsclient
from agentnet_runtime.config import NatsAuth
from agentnet_runtime.core.clock import validate as validate_clock
from agentnet_runtime.refusals import BAD_FRAGMENT, EMPTY, NOT_JSON, WRONG_SHAPE, Refused, refuse
from agentnet_runtime.web import METRICS

from . import subjects

log = logging.getLogger("agentnet.transport")

FRAGMENT = "Agentnet-Fragment"  # header: "<message id> <index> <count>"
FRAGMENT_TTL = 60.0  # seconds an incomplete message waits for its missing fragments
_HEADER_ROOM = 512  # bytes of max_payload left for headers
MAX_FRAGMENTS = 1024  # a message of more fragments is refused (1 GB at the default max_payload): no list of a billion parts

Handler = Callable[[str, dict[str, Any], Any], Awaitable[None]]  # (subject, envelope, raw nats message)


def decode_envelope(data: bytes) -> dict[str, Any]:
    """The envelope in `data`; Refused (empty, not JSON, wrong shape) when it is not one."""
    if not data:
        raise Refused(EMPTY)
    try:
        envelope = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise Refused(NOT_JSON, str(error)) from None
    if not isinstance(envelope, dict) or "body" not in envelope:
        raise Refused(WRONG_SHAPE, 'not an envelope {"from", "stamp", "body"}')
    sender, stamp = envelope.get("from"), envelope.get("stamp")
    if type(sender) is not int:  # bool is an int, yet no agent id
        raise Refused(WRONG_SHAPE, '"from" is not an agent id')
    if stamp is not None and not _is_stamp(stamp):
        raise Refused(WRONG_SHAPE, '"stamp" is not null nor {"lamport": count, "clock": {replica: count}}')
    return envelope


def check_body(subject: str, body: Any) -> None:
    """Refused (wrong shape) unless `body` is what an agent's heartbeat, ack or sync carries: a digest, a clock
    (and a digest), checked before a handler takes any of it in, so a bad one cannot leave a clock half-updated.
    Deltas (state) check themselves."""
    if subject == subjects.HEARTBEATS:
        agents = body.get("agents") if isinstance(body, dict) else None
        if not (isinstance(agents, dict) and all(key.isdigit() and _is_beat(beat) for key, beat in agents.items())):
            raise Refused(WRONG_SHAPE, 'an agents.heartbeat body needs "agents": {agent id: heartbeat}, each with ' + _BEAT_RULE)
        return
    parsed = subjects.parse(subject)
    kind = parsed[1] if parsed is not None else None
    if kind == "heartbeat" and not _is_beat(body):
        raise Refused(WRONG_SHAPE, "a heartbeat body needs " + _BEAT_RULE)
    if kind not in ("ack", "sync"):
        return
    if not (isinstance(body, dict) and _is_clock(body.get("clock"))):
        raise Refused(WRONG_SHAPE, f'an {kind} body needs "clock": {{replica: count}}')
    if kind == "sync" and not (isinstance(body.get("digest"), str) and _is_count(body.get("floor", 0))):
        raise Refused(WRONG_SHAPE, 'a sync body needs "digest": string and "floor"?: count')


_BEAT_RULE = '"digest": string ("nodes", "events": counts)'


def _is_beat(body: Any) -> bool:
    return (isinstance(body, dict) and isinstance(body.get("digest"), str)
            and _is_count(body.get("nodes", 0)) and _is_count(body.get("events", 0)))  # fmt: skip


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_clock(value: Any) -> bool:
    try:
        validate_clock(value)
    except ValueError:
        return False
    return True


def _is_stamp(stamp: Any) -> bool:
    """A timeline stamp (timeline/events.py) that the receiver's clocks can take in."""
    return isinstance(stamp, dict) and _is_count(stamp.get("lamport", 0)) and _is_clock(stamp.get("clock", {}))


def _wire_form(value: Any) -> Any:
    """orjson's hook for what it does not encode itself: a Delta (handed over in memory as an object) goes
    to NATS in its wire form. Not as a dataclass: orjson would write its fields, which no reader takes."""
    to_wire = getattr(value, "to_wire", None)
    if to_wire is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return to_wire()


_ENCODING = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS


class _InMemory:
    """A message handed to an inbox of this process in memory: what its handler reads of a nats-py message,
    with the envelope itself in place of its bytes."""

    __slots__ = ("subject", "envelope", "headers", "reply", "answer")

    def __init__(self, subject: str, envelope: dict[str, Any], request: bool):
        self.subject, self.envelope, self.headers = subject, envelope, None
        self.reply = subject if request else ""  # truthy: the handler answers with respond()
        self.answer: dict[str, Any] | None = None


def _envelope(sender: int, body: Any, stamp: dict | None) -> dict[str, Any]:
    return {"from": sender, "stamp": stamp, "body": body}


class Unreachable(Exception):
    """The peer cannot be reached: partitioned off, no responder, timed out or not connected."""


class Transport:
    def __init__(self, url: str, auth: NatsAuth = NatsAuth(), name: str = "agentnet"):
        self.url, self.auth, self.name = url, auth, name
        self.nc = None
        self.state = natsclient.NatsState()  # for readiness (when this transport connects itself)
        self._closing = False
        self._groups: dict[int, int] | None = None  # agent -> group while partitioned
        self._fragments: dict[str, tuple[float, list[bytes | None]]] = {}  # message id -> (first seen, parts)
        self._subscriptions: list = []  # what subscribe() made, for unsubscribe()
        self._inboxes: dict[int, Handler] = {}  # agents of this process -> their inbox handler (in-memory delivery)

    # --- connection ------------------------------------------------------------------

    async def connect(self, retry_every: float = 0.25) -> None:
        """Connect, retrying until the server answers (it may start after us); reconnects are automatic."""
        self.nc = await natsclient.connect(
            self.url, self.auth, self.name, state=self.state, retry_every=retry_every,
            error_cb=self._error, disconnected_cb=self._disconnected, reconnected_cb=self._reconnected,
        )  # fmt: skip

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def close(self) -> None:
        self._closing = True
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), 2)
            except Exception:  # the server may be gone; closing is all that is left
                with contextlib.suppress(Exception):  # e.g. ConnectionResetError: the connection is already lost
                    await self.nc.close()

    async def _error(self, error: Exception) -> None:
        METRICS.errors.labels("nats", type(error).__name__).inc()
        log.debug("NATS error: %s", error)

    async def _disconnected(self) -> None:
        if not self._closing:
            log.warning("disconnected from NATS at %s; reconnecting", self.url)

    async def _reconnected(self) -> None:
        log.warning("reconnected to NATS at %s", self.url)

    # --- partitions (tests only) -----------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Drop messages between agents of different groups until `heal()`."""
        self._groups = {agent: number for number, group in enumerate(groups) for agent in group}

    def heal(self) -> None:
        self._groups = None

    def cut(self, a: int, b: int) -> bool:
        groups = self._groups
        return groups is not None and groups.get(a, -1) != groups.get(b, -2)

    # --- messages -----------------------------------------------------------------------------

    @staticmethod
    def envelope(sender: int, body: Any, stamp: dict | None = None) -> bytes:
        # orjson: a burst moves megabytes of deltas, and the json module spent more time on them
        # than joining did. Non-string keys become strings, as with json.
        return orjson.dumps(_envelope(sender, body, stamp), default=_wire_form, option=_ENCODING)

    @staticmethod
    def packed(sender: int, items: list[bytes], limit: int) -> list[tuple[int, bytes]]:
        """Envelopes whose body is a JSON list of the already-encoded `items`, in order, each at most `limit`
        bytes: (items it accounts for, envelope). An item too large for any envelope is left out (and
        counted as an error); the next envelope accounts for it, so resuming after a failure skips it."""
        head, tail = b'{"from":%d,"stamp":null,"body":[' % sender, b"]}"
        room = limit - len(head) - len(tail)
        envelopes, chunk, size, consumed = [], [], 0, 0
        for item in items:
            if len(item) > room:
                METRICS.errors.labels("nats", "too-large").inc()
                consumed += 1
                continue
            if chunk and size + len(item) > room:
                envelopes.append((consumed, head + b",".join(chunk) + tail))
                chunk, size, consumed = [], 0, 0
            chunk.append(item)
            size += len(item) + 1  # and its comma
            consumed += 1
        if chunk:
            envelopes.append((consumed, head + b",".join(chunk) + tail))
        return envelopes

    @property
    def max_payload(self) -> int:
        return self.nc.max_payload - _HEADER_ROOM

    async def send(self, subject: str, sender: int, to: int | None, body: Any, stamp: dict | None = None) -> bool:
        """Publish an envelope (in fragments if large); False when partitioned off, not connected or failed.
        To an inbox of this process it is handed over in memory (connected or not)."""
        if to is not None and self.cut(sender, to):
            return False
        if to in self._inboxes:
            await self._dispatch(subjects.inbox(to), _InMemory(subject, _envelope(sender, body, stamp), False), self._inboxes[to])
            return True
        if not self.connected:
            return False
        data, limit = self.envelope(sender, body, stamp), self.max_payload
        try:
            if len(data) <= limit:
                await self.nc.publish(subject, data)
            else:
                ident, count = uuid.uuid4().hex, -(-len(data) // limit)
                for index in range(count):
                    part = data[index * limit : (index + 1) * limit]
                    await self.nc.publish(subject, part, headers={FRAGMENT: f"{ident} {index} {count}"})
            return True
        except Exception as error:  # reconnecting: anti-entropy repairs what is lost
            METRICS.errors.labels("nats", type(error).__name__).inc()
            return False

    async def store(self, subject: str, data: bytes, msg_id: str, stream: Callable[[], natsclient.JetStreamNeed]) -> bool:
        """Publish to a JetStream stream and wait until the server has stored it; False when it has not.
        `msg_id` lets the server drop a resend of the same message; a missing stream is created (`stream()`)."""
        if not self.connected:
            return False
        from nats.js.errors import NoStreamResponseError

        js = self.nc.jetstream()
        for attempt in range(2):
            try:
                await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})
                return True
            except NoStreamResponseError:  # the server lost its store, or nobody made the stream yet
                if attempt == 0:
                    need = stream()
                    try:
                        await need.create(js)
                        log.warning("%s was missing; created it", need.what)
                    except Exception as error:  # e.g. a server without JetStream: the caller retries later
                        METRICS.errors.labels("nats", type(error).__name__).inc()
                        return False
            except Exception as error:  # timed out or disconnected: the caller keeps the message for later
                METRICS.errors.labels("nats", type(error).__name__).inc()
                return False
        return False

    def _reassemble(self, header: str, data: bytes) -> bytes | None:
        """Store one fragment; the whole message once its last fragment is in (Refused: not a fragment header)."""
        now = time.monotonic()
        for ident in [i for i, (seen, _) in self._fragments.items() if now - seen > FRAGMENT_TTL]:
            del self._fragments[ident]
            METRICS.errors.labels("nats", "fragment-expired").inc()
        try:
            ident, index, count = header.split()
            position, total = int(index), int(count)
        except ValueError:
            raise Refused(BAD_FRAGMENT, f"header {header[:80]!r}") from None
        if not 0 <= position < total <= MAX_FRAGMENTS:
            raise Refused(BAD_FRAGMENT, f"fragment {position} of {total}")
        _, parts = self._fragments.setdefault(ident, (now, [None] * total))
        if len(parts) != total:
            raise Refused(BAD_FRAGMENT, f"fragment of {total} for a message of {len(parts)}")
        parts[position] = data
        if any(part is None for part in parts):
            return None
        del self._fragments[ident]
        return b"".join(parts)

    async def request(self, subject: str, sender: int, to: int, body: Any, stamp: dict | None, timeout: float) -> dict:
        """Request/reply; returns the reply envelope or raises Unreachable."""
        if self.cut(sender, to) or not (self.connected or to in self._inboxes):
            raise Unreachable(f"agent {to} is not reachable")
        if to in self._inboxes:
            message = _InMemory(subject, _envelope(sender, body, stamp), True)
            await self._dispatch(subjects.inbox(to), message, self._inboxes[to])
            if message.answer is None:
                raise Unreachable(f"agent {to}: no reply")
            return message.answer
        try:
            reply = await self.nc.request(subject, self.envelope(sender, body, stamp), timeout=timeout)
        except Exception as error:  # timeout, no responders, connection lost
            raise Unreachable(f"agent {to}: {type(error).__name__}") from None
        return orjson.loads(reply.data)

    async def respond(self, message: Any, sender: int, body: Any, stamp: dict | None) -> bool:
        """Reply to a request; False (nothing sent) if the reply is too large for one message."""
        if isinstance(message, _InMemory):  # no server between us: no size limit
            message.answer = _envelope(sender, body, stamp)
            return True
        data = self.envelope(sender, body, stamp)
        if len(data) > self.max_payload:
            return False
        try:
            await message.respond(data)
        except Exception as error:
            METRICS.errors.labels("nats", type(error).__name__).inc()
        return True

    async def subscribe(self, subject: str, handler: Handler) -> None:
        """Deliver envelopes on `subject` to `handler`, dropping those across a cut. A message that is not an
        envelope, or that the handler refuses (`Refused`, or a body it cannot read), is one rate-limited
        warning and a count (refusals.py), never a traceback: anyone may publish on our subjects."""

        async def deliver(message) -> None:
            await self._dispatch(subject, message, handler)

        self._subscriptions.append(await self.nc.subscribe(subject, cb=deliver))

    async def subscribe_inbox(self, agent: int, handler: Handler) -> None:
        """Subscribe agent `agent`'s inbox (agent.{agent}.*); what this process sends it is handed over in memory."""
        self._inboxes[agent] = handler
        await self.subscribe(subjects.inbox(agent), handler)

    async def _dispatch(self, pattern: str, message: Any, handler: Handler) -> None:
        """Hand one message (from the server or in memory) to `handler`, refusing what is not an envelope."""
        in_memory = isinstance(message, _InMemory)
        try:
            if in_memory:
                envelope = message.envelope
            elif message.headers and FRAGMENT in message.headers:
                data = self._reassemble(message.headers[FRAGMENT], message.data)
                if data is None:
                    return
                envelope = decode_envelope(data)
            else:
                envelope = decode_envelope(message.data)
        except Refused as refused:
            refuse(pattern, message.subject, refused.reason, refused.detail)
            return
        sender = envelope["from"]
        parsed = subjects.parse(message.subject)
        if parsed is not None and self.cut(sender, parsed[0]):
            return
        try:
            if not in_memory:
                check_body(message.subject, envelope["body"])
            await handler(message.subject, envelope, message)
        except Refused as refused:
            refuse(pattern, message.subject, refused.reason, refused.detail)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:  # a body of the wrong shape
            refuse(pattern, message.subject, WRONG_SHAPE, f"{type(error).__name__}: {error}")
        except Exception:  # one bad message must not stop the subscription
            METRICS.errors.labels("agent", "handler").inc()
            log.exception("error handling a message on %s", message.subject)

    async def unsubscribe(self) -> None:
        """Stop handing messages to the handlers (on the way out, before the last timeline flush)."""
        subscriptions, self._subscriptions = self._subscriptions, []
        self._inboxes.clear()
        for subscription in subscriptions:
            try:
                await subscription.unsubscribe()
            except Exception:  # the connection is gone already: nothing is delivered anyway
                pass
