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

from agentnet_runtime.agent import snapshots
from agentnet_runtime.natsbin import free_port

pytestmark = pytest.mark.timeout(180)

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
        assert state["agent_id"] == 0 and len(state["neighbors"]) == 4 and state["colour"] in ("RED", "BLUE", "GREEN")
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


LOOK = 30  # seconds one request may take: nine agents and eleven components share one busy process


def start_up(tmp_path, data_dir, log_name: str, *flags: str) -> tuple[subprocess.Popen, str, Path]:
    """`agentnet up` on the example network with `data_dir` (None: none) and `flags`, once it answers /ready; (process,
    base URL, its stderr file)."""
    port, log = free_port(), tmp_path / log_name
    keep = ["--data-dir", str(data_dir)] if data_dir is not None else []
    process = subprocess.Popen(
        [AGENTNET, "up", "-f", str(REPO / "examples" / "network.yaml"), "--port", str(port), *keep, *flags],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"), cwd=tmp_path, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )  # fmt: skip
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return process, base, log
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"agentnet up did not become ready: {log.read_text()}")


def agents_now(base: str) -> dict[str, tuple[str, int]]:
    return {i: (a["digest"], a["size"]) for i, a in httpx.get(f"{base}/status", timeout=LOOK).json()["agents"].items()}


def stop(process: subprocess.Popen, log: Path) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:  # show where it is stuck: faulthandler writes every thread's stack
        process.send_signal(signal.SIGABRT)
        process.wait(10)
        raise AssertionError(f"agentnet up did not stop:\n{log.read_text()}") from None
    assert process.returncode == 0, log.read_text()


def jetstream_created(log: Path, stream: str) -> str:
    """When the nats-server that `agentnet up` started (its URL is in the log) created `stream`."""
    import asyncio

    import nats

    url = next(line.split()[2].rstrip(",") for line in log.read_text().splitlines() if "nats-server (JetStream)" in line)

    async def created() -> str:
        client = await nats.connect(url)
        try:
            return (await client.jetstream().stream_info(stream)).created
        finally:
            await client.close()

    return asyncio.run(created())


def test_up_without_a_data_dir_takes_no_snapshots(tmp_path):
    """Without --data-dir everything lives in a temp dir removed on exit: snapshots there would never be read."""
    process, base, log = start_up(tmp_path, None, "up.log", "--snapshot-interval", "0.2")
    try:
        assert httpx.post(f"{base}/agent/0/message", json={"term": "x*(y+z)"}, timeout=LOOK).status_code == 202
        time.sleep(2)  # ten snapshot intervals
        store = next(line.split()[-1] for line in log.read_text().splitlines() if "nats-server (JetStream)" in line)
        data = Path(store).parent  # the temp dir's data dir, as --data-dir would be
        assert (data / "timeline.duckdb").exists() and not (data / snapshots.DIRECTORY).exists()
        assert "(no snapshots without --data-dir)" in log.read_text()
    finally:
        stop(process, log)


def test_up_with_a_data_dir_starts_again_with_every_agents_state(tmp_path):
    """Stop `agentnet up` and start it again on the same --data-dir: before any new traffic, every agent
    has the digest and size it had (restored from its snapshot), the timeline still holds the first
    run's events, and JetStream kept its store (the same streams, not new ones)."""
    data = tmp_path / "data"
    process, base, log = start_up(tmp_path, data, "first.log")
    try:
        for agent, term in ((0, "a + b"), (4, "c * d"), (8, "g(e)")):  # small: they saturate at once
            assert httpx.post(f"{base}/agent/{agent}/message", json={"term": term}, timeout=LOOK).status_code == 202
        deadline, before = time.monotonic() + 60, None
        while time.monotonic() < deadline:  # converged, and the same on two looks in a row (nothing left to rewrite)
            status = httpx.get(f"{base}/status", timeout=LOOK).json()
            now = agents_now(base)
            if status["converged"] and now == before and all(size > 0 for _, size in now.values()):
                break
            before = now
            time.sleep(1)
        else:
            raise AssertionError(f"the network did not settle: {before}")
        events = httpx.get(f"{base}/timeline/query", params={"kind": "submit"}, timeout=LOOK).json()["events"]
        assert len(events) == 3
        stream_created = jetstream_created(log, "AGENTNET_WORK")
        stop(process, log)
        assert snapshots.paths(data, 0)[0].exists()  # the process's one e-graph, under its lowest agent

        process, base, log = start_up(tmp_path, data, "second.log")
        assert agents_now(base) == before  # ready with the restored state
        assert httpx.get(f"{base}/timeline/query", params={"kind": "submit"}, timeout=LOOK).json()["events"] == events
        assert jetstream_created(log, "AGENTNET_WORK") == stream_created
        stop(process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
