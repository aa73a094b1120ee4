"""`agentnet up` as a new user runs it (and stops it with Ctrl-C), with malformed traffic from a plain NATS client on every subject the
agents and the eleven components listen on: JSON lines on stdout, one rate-limited warning per subject
pattern and reason, the refusals counted by pattern and reason, no traceback, and the network converges."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import httpx
import malformed
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentnet_runtime import refusals
from agentnet_runtime.natsbin import free_port

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
AGENTNET = str(Path(sys.executable).with_name("agentnet"))
LOOK = 30  # seconds one request may take: nine agents and eleven components share one busy process
# The subscription patterns that refuse something of the malformed set, and who subscribes with them.
PATTERNS = {
    "agent.*.*": "the agents' inboxes",
    "agents.heartbeat": "agent-orchestrator, dashboard (every agent process's heartbeats)",
    "broadcast.heartbeat": "the agents' roll call",
    "network.status": "dashboard",
    "agent.*.state": "observers' inboxes (dashboard, orchestrator, skill-verification, transduction-2tdx)",
    "agent.*.ack": "stream components' acks",
    "stream.derived.*": "skill-verification",
    "crdt.merge": "crdt-service",
    "work.*": "stream components' work queue",
    "timeline.events": "interaction-timeline and dashboard",
    "timeline.retention": "dashboard",
}


def refused_by_metrics(base: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{base}/metrics", timeout=LOOK).text
    return {
        (sample.labels["subject"], sample.labels["reason"]): sample.value
        for family in text_string_to_metric_families(text) if family.name == "agentnet_messages_refused"
        for sample in family.samples if sample.name == "agentnet_messages_refused_total"
    }  # fmt: skip


async def publish_malformed(url: str) -> int:
    import nats

    client = await nats.connect(url)
    try:
        return await malformed.publish_all(client, malformed.subjects(9))
    finally:
        await client.close()


def test_up_refuses_malformed_traffic_with_warnings_and_a_counter_and_stays_converged(tmp_path):
    port, out, err = free_port(), tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = {**os.environ, "LOG_LEVEL": "info", "LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [AGENTNET, "up", "-f", str(REPO / "examples" / "network.yaml"), "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=open(out, "w"), stderr=open(err, "w"), cwd=tmp_path, env=env, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"agentnet up did not become ready:\n{err.read_text()}")
        url = next(line.split()[2].rstrip(",") for line in err.read_text().splitlines() if "nats-server (JetStream)" in line)
        assert httpx.post(f"{base}/agent/0/message", json={"term": "x*(y+z)"}, timeout=LOOK).status_code == 202
        sent = asyncio.run(publish_malformed(url))
        assert sent == len(malformed.subjects(9)) * (len(malformed.payloads()) + len(malformed.FRAGMENTS))
        assert httpx.post(f"{base}/agent/5/message", json={"term": "(p+q)*r"}, timeout=LOOK).status_code == 202

        deadline, counted = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            status = httpx.get(f"{base}/status", timeout=LOOK).json()
            counted = refused_by_metrics(base)
            proof = httpx.post(f"{base}/agent/8/message", json={"prove": ["(p+q)*r", "r*(q+p)"]}, timeout=LOOK).json()
            if status["converged"] and proof.get("equal") is True and set(PATTERNS) <= {p for p, _ in counted}:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"not converged, or not every pattern refused something: {status}, {sorted(counted)}")
        assert {p for p, _ in counted} == set(PATTERNS), "a label that is a concrete subject, not a pattern"
        assert {r for _, r in counted} == {refusals.EMPTY, refusals.NOT_JSON, refusals.WRONG_SHAPE, refusals.BAD_FRAGMENT,
                                           refusals.BAD_DELTA, refusals.NOT_A_TERM}  # fmt: skip

        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: to the whole process group
        process.wait(60)
        assert process.returncode == 0, err.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    stdout, stderr = out.read_text(), err.read_text()
    assert "Traceback" not in stdout and "Traceback" not in stderr, (stdout + stderr)[-3000:]
    lines = [json.loads(text) for text in stdout.splitlines()]  # every line is one JSON object
    assert lines and all(
        {"time", "level", "logger", "message"} <= set(line) and line["network"] == "ramanujan" and line["component"] == "agentnet-up"
        and "exception" not in line
        for line in lines
    )  # fmt: skip
    # stopped in order: no client saw its NATS server go away under it
    assert not [line for line in lines if line["logger"].startswith(("agentnet.nats", "agentnet.transport")) and line["level"] != "info"]
    warned: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for line in lines:
        if line["logger"] == "agentnet.refused":
            assert line["level"] == "warning" and line["message"].startswith(f"refused a message on {line['subject']}: ")
            warned[line["pattern"], line["reason"]].append(line)
    assert set(warned) == set(counted)  # a warning for every pattern and reason that was counted
    for key, said in warned.items():
        times = [datetime.fromisoformat(line["time"]).timestamp() for line in said]
        assert all(later - earlier >= refusals.WARN_EVERY - 0.05 for earlier, later in zip(times, times[1:])), key
        assert sum(1 + line["suppressed"] for line in said) <= counted[key]  # the rest are suppressed, not lost
    assert sum(counted.values()) > 10 * len(warned)  # most refusals were counted without a line
