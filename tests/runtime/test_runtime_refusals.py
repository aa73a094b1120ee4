"""Malformed NATS traffic is a rate-limited warning and a count, never a traceback; the network stays converged."""

from __future__ import annotations

import json
import logging

import malformed
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from runtime_support import eventually, network, one_digest, running, runtime_config

from agentnet_runtime import logs, refusals
from agentnet_runtime.agent.transport import check_body, decode_envelope
from agentnet_runtime.core.terms import parse
from agentnet_runtime.refusals import Refusals, Refused, subject_pattern

pytestmark = pytest.mark.timeout(90)


def refused_count(pattern: str, reason: str) -> float:
    return REGISTRY.get_sample_value("agentnet_messages_refused_total", {"subject": pattern, "reason": reason}) or 0.0


class Lines(logging.Handler):
    """The JSON lines (logs.JsonFormatter) of every record from the `agentnet` loggers, parsed back."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logs.JsonFormatter({"network": "test"}))
        self.lines: list[dict] = []

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


def test_one_warning_per_subject_and_reason_per_window_saying_how_many_were_not_logged():
    now = [1000.0]
    logger = logging.getLogger("agentnet.refused.test")
    lines = Lines()
    logger.addHandler(lines)
    limiter = Refusals(logger, every=10.0, clock=lambda: now[0])
    pattern = "test.limit.*"
    before = refused_count(pattern, "empty"), refused_count(pattern, "not JSON")
    try:
        for second in range(25):  # two messages a second on two subjects for 25 s, one reason each; one odd one out
            now[0] = 1000.0 + second
            limiter.refuse("test.limit.*", f"test.limit.{second}", "empty")
            limiter.refuse("test.limit.*", "test.limit.x", "empty")
            if second == 3:
                limiter.refuse("test.limit.*", "test.limit.x", "not JSON", "unexpected end of data")
    finally:
        logger.removeHandler(lines)
    said = [(line["pattern"], line["reason"], line["suppressed"], line["time"] is not None) for line in lines.lines]
    assert said == [
        ("test.limit.*", "empty", 0, True),  # t=0
        ("test.limit.*", "not JSON", 0, True),  # t=3: another reason has its own window
        ("test.limit.*", "empty", 19, True),  # t=10: t=0's second and t=1..9's two
        ("test.limit.*", "empty", 19, True),  # t=20
    ]
    assert all(line["level"] == "warning" and "exception" not in line for line in lines.lines)
    assert lines.lines[0]["subject"] == "test.limit.0" and lines.lines[0]["message"] == "refused a message on test.limit.0: empty"
    assert "(unexpected end of data)" in lines.lines[1]["message"]
    assert "19 more on test.limit.* for this reason" in lines.lines[2]["message"]
    # every refusal counted, logged or not; the label is the pattern, never the concrete subject
    assert (refused_count(pattern, "empty") - before[0], refused_count(pattern, "not JSON") - before[1]) == (50, 1)
    assert refused_count("test.limit.0", "empty") == 0


@pytest.mark.parametrize("subject, pattern", [
    ("agent.3.state", "agent.*.state"), ("agent.-4.ack", "agent.*.ack"), ("agent.*.*", "agent.*.*"),
    ("agent.12.*", "agent.*.*"), ("work.red", "work.red"), ("stream.derived.blue", "stream.derived.blue"),
    ("a1.b2", "a1.b2"), ("7.x", "*.x"), ("crdt.merge", "crdt.merge"),
])  # fmt: skip
def test_the_counters_subject_is_the_pattern_with_agent_ids_as_stars(subject, pattern):
    assert subject_pattern(subject) == pattern


@given(st.lists(st.one_of(st.integers(-10**6, 10**6).map(str), st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)), min_size=1, max_size=5))
def test_a_pattern_keeps_every_token_but_numbers(tokens):
    pattern = subject_pattern(".".join(tokens)).split(".")
    assert pattern == ["*" if token.lstrip("-").isdigit() else token for token in tokens]


@pytest.mark.parametrize("what, data", malformed.payloads(), ids=[f"{i}-{what}" for i, (what, _) in enumerate(malformed.payloads())])
def test_no_malformed_payload_is_an_envelope(what, data):
    with pytest.raises(Refused) as refused:
        envelope = decode_envelope(data)
        for kind in ("ack", "sync"):
            check_body(f"agent.3.{kind}", envelope["body"])
    expected = {"empty": "empty", "truncated JSON": "not JSON", "random bytes": "not JSON", "not UTF-8": "not JSON",
                "nested deep": "not JSON", "deep term": "not JSON", "long numeral": "not JSON", "no body": "wrong shape"}  # fmt: skip
    if what in expected:
        assert refused.value.reason == expected[what]
    else:  # huge numbers: orjson reads an int beyond 64 bits as a float, which no count is
        assert refused.value.reason in ("not JSON", "wrong shape")


@given(st.binary(max_size=300))
def test_any_bytes_are_an_envelope_or_refused(data):
    try:
        envelope = decode_envelope(data)
    except Refused as refused:
        assert refused.reason in (refusals.EMPTY, refusals.NOT_JSON, refusals.WRONG_SHAPE)
    else:
        assert type(envelope["from"]) is int and "body" in envelope


def test_terms_beyond_pythons_limits_are_syntax_errors_not_crashes():
    from agentnet_runtime.core.terms import TermSyntaxError

    for text in ("(" * 3000 + "x" + ")" * 3000, "1" * 5000, "x" + "^x" * 3000):
        with pytest.raises(TermSyntaxError):
            parse(text)


async def test_malformed_traffic_on_every_subject_is_refused_with_a_warning_and_the_network_converges(nats_server, monkeypatch):
    import nats

    monkeypatch.setattr(refusals.REFUSALS, "every", 3600.0)  # one line per subject pattern and reason in this test
    monkeypatch.setattr(refusals.REFUSALS, "_last", {})
    monkeypatch.setattr(refusals.REFUSALS, "_suppressed", {})
    lines = Lines()
    root = logging.getLogger()
    root.addHandler(lines)
    patterns = ("agent.*.*", "agent.*.heartbeat", "broadcast.heartbeat")
    reasons = (refusals.EMPTY, refusals.NOT_JSON, refusals.WRONG_SHAPE, refusals.BAD_FRAGMENT, refusals.BAD_DELTA)
    before = {(p, r): refused_count(p, r) for p in patterns for r in reasons}
    net = network(9)
    # Two processes, so each listens to the heartbeats of its agents' neighbours in the other (agent.{n}.heartbeat).
    left, right = runtime_config(net, nats_server.url, agent_ids=range(5)), runtime_config(net, nats_server.url, agent_ids=range(5, 9))
    try:
        async with running(left) as host, running(right) as other:
            host.agents[0].submit(parse("x*(y+z)"))
            host.wake(host.agents[0])
            client = await nats.connect(nats_server.url)
            try:
                sent = await malformed.publish_all(client, malformed.subjects(9))
                # a delta body that is JSON of the right envelope but not a delta: the agent refuses it itself
                await client.publish("agent.4.state", b'{"from": 3, "stamp": null, "body": {"kind": "x"}}')
            finally:
                await client.close()
            other.agents[5].submit(parse("(p+q)*r"))
            other.wake(other.agents[5])

            def converged():
                digest = one_digest(host, other)
                agents = [*host.agents.values(), *other.agents.values()]
                return digest and all(a.egraph.equivalent(parse("(p+q)*r"), parse("r*(q+p)")) for a in agents)

            await eventually(converged, 30, "one digest on all nine agents after the malformed traffic")
            # Each subscription refuses each message once: state, sync, ack and heartbeat on an agent's inbox
            # (agent.3.*), heartbeats of the neighbours in the other process, and the roll call in each
            # process; plus the one bad delta.
            per_subject = len(malformed.payloads()) + len(malformed.FRAGMENTS)
            envelopes = sum(what.startswith("body:") for what, _ in malformed.payloads())  # the roll call takes them
            remote = {n for h, others in ((host, other), (other, host)) for a in h.agents.values() for n in a.neighbours
                      if n in others.agents}  # fmt: skip
            expected = {"agent.*.*": 9 * 4 * per_subject + 1, "agent.*.heartbeat": len(remote) * per_subject,
                        "broadcast.heartbeat": 2 * (per_subject - envelopes)}  # fmt: skip

            def counted_by_pattern():
                return {p: sum(refused_count(p, r) - before[p, r] for r in reasons) for p in patterns}

            await eventually(lambda: counted_by_pattern() == expected, 20, f"refusals {expected}")
    finally:
        root.removeHandler(lines)
    assert sent == len(malformed.subjects(9)) * per_subject
    counted = {key: refused_count(*key) - value for key, value in before.items()}
    refused = [line for line in lines.lines if line["logger"] == "agentnet.refused"]
    said = {(line["pattern"], line["reason"]) for line in refused}
    assert said == {key for key, value in counted.items() if value}  # a line for every pattern and reason counted
    assert len(refused) == len(said)  # and only one: the rest are suppressed
    assert {"agent.*.*", "agent.*.heartbeat", "broadcast.heartbeat"} == {pattern for pattern, _ in said}
    assert {refusals.EMPTY, refusals.NOT_JSON, refusals.WRONG_SHAPE, refusals.BAD_FRAGMENT, refusals.BAD_DELTA} == {
        reason for _, reason in said
    }
    assert all(line["level"] == "warning" and line["subject"] for line in refused)
    tracebacks = [line for line in lines.lines if "exception" in line or "Traceback" in line["message"]]
    assert not tracebacks, tracebacks[:3]
