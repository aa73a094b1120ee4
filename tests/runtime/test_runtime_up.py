"""`agentnet up` as a real process: starts, serves agents on one port, exits cleanly on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentnet_runtime.natsbin import free_port

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]
AGENTNET = str(Path(sys.executable).with_name("agentnet"))


def children_of(pid: int) -> set[int]:
    """Every descendant of a process (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_serves_the_example_network_and_stops_on_sigint(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [AGENTNET, "up", "-f", str(REPO / "examples" / "network.yaml"), "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env={**os.environ},
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health is not None and health.status_code == 200, process.stderr.read() if process.poll() is not None else "no answer"
        assert health.json()["status"] == "ok"
        # it serves once everything has started: the whole process is ready, and each component under its prefix
        assert httpx.get(f"{base}/ready", timeout=5).json() == {"status": "ready", "app": "agentnet-up"}
        assert httpx.get(f"{base}/stream/red/ready", timeout=5).json() == {"status": "ready", "app": "stream-red"}
        state = httpx.get(f"{base}/agent/0/state", timeout=5).json()
        assert state["agent"] == 0 and len(state["neighbours"]) == 4 and state["colour"] in ("RED", "BLUE", "GREEN")
        assert httpx.post(f"{base}/agent/0/message", json={"term": "x*(y+z)"}, timeout=5).status_code == 202
        assert "agentnet_http_requests_total" in httpx.get(f"{base}/metrics", timeout=5).text
        assert httpx.get(f"{base}/agent/9/state", timeout=5).status_code == 404
        colours = httpx.get(f"{base}/colors/assignment", timeout=5).json()  # a component, mounted at its prefix
        assert colours["agents"][0]["colour"] == state["colour"]
        helpers = children_of(process.pid)
        assert helpers, "the embedded nats-server should be a child of `agentnet up`"

        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert "ready in" in stderr and "stopped" in stderr
        assert not [pid for pid in helpers if alive(pid)], "something `agentnet up` started is still running"
        assert (tmp_path / "data" / "timeline.duckdb").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
