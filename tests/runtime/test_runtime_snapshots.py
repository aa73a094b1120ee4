"""Snapshots in the data directory: restored at start, written crash-safely, and when the newest
does not read (truncated: what a disk that lost a write's tail leaves), the previous one is used,
or, with neither, a re-sync from the neighbours; the log says which."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from runtime_support import FAST, eventually, network, running, runtime_config

from agentnet_runtime.agent import snapshot_format, snapshots
from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse

pytestmark = pytest.mark.timeout(60)

NO_NATS = "nats://127.0.0.1:1"  # nothing answers there: the agent has only its snapshot


def lone_agent(data_dir, agent: int = 4):
    return runtime_config(network(9), NO_NATS, agent_ids=[agent], settings=replace(FAST, snapshot_interval=60), data_dir=str(data_dir))


async def test_snapshot_restores_state_without_neighbours(tmp_path):
    config = lone_agent(tmp_path)
    first = AgentHost(config)
    await first.start()
    first.agents[4].submit(parse("x*(y+z)"))
    digest, size = first.agents[4].egraph.digest(), len(first.agents[4].egraph)
    await first.stop()  # NATS never answered; the snapshot is written on the way out
    newest, _ = snapshots.paths(tmp_path, 4)
    assert newest.exists() and newest.read_bytes().startswith(snapshot_format.MAGIC)
    second = AgentHost(config)
    await second.start()
    try:
        assert second.agents[4].egraph.digest() == digest and len(second.agents[4].egraph) == size
    finally:
        await asyncio.wait_for(second.stop(), 10)


async def test_a_clean_stop_hands_its_replica_id_to_the_next_start(tmp_path, caplog):
    """Restarts do not grow the vector clocks: after a clean stop the next life numbers on under the same id."""
    config = lone_agent(tmp_path)
    first = AgentHost(config)
    await first.start()
    first.agents[4].submit(parse("x*(y+z)"))
    await first.stop()
    replica, own = first.agents[4].replica, first.agents[4].egraph.clock[first.agents[4].replica]
    assert snapshots.seal_path(tmp_path, 4).exists()

    second = AgentHost(config)
    await second.start()
    assert not snapshots.seal_path(tmp_path, 4).exists()  # taken: a seal is used once
    second.agents[4].submit(parse("a+b"))
    clock = second.agents[4].egraph.clock
    assert second.agents[4].replica == replica and clock[replica] == own + 1
    assert len(clock) == 1  # one entry for both lives
    await asyncio.wait_for(second.stop(), 10)

    caplog.set_level(logging.INFO, "agentnet")
    third = AgentHost(config)
    await third.start()
    try:
        assert third.agents[4].replica == replica and third.agents[4].egraph.clock == {replica: own + 1}
    finally:
        await asyncio.wait_for(third.stop(), 10)


async def test_after_a_crash_the_next_start_takes_a_new_replica_id(tmp_path, caplog):
    """No seal (the process died), or a seal that does not match the newest snapshot: a new id, never a reused
    dot. Events the crashed life made after its last snapshot may exist at its neighbours."""
    config = lone_agent(tmp_path)
    first = AgentHost(config)
    await first.start()
    first.agents[4].submit(parse("x*(y+z)"))
    await first.stop()
    replica = first.agents[4].replica
    snapshots.seal_path(tmp_path, 4).unlink()  # what a crash leaves: snapshots, no seal

    caplog.set_level(logging.INFO, "agentnet")
    second = AgentHost(config)
    await second.start()
    try:
        assert second.agents[4].replica != replica
        assert "no seal (the last stop was not clean); starting under a new replica id" in caplog.text
    finally:
        await asyncio.wait_for(second.stop(), 10)

    # A seal whose count disagrees with the newest snapshot (say, the snapshot is an older copy) is not trusted.
    snapshots.seal(tmp_path, 4, second.agents[4].replica, 99)
    third = AgentHost(config)
    await third.start()
    try:
        assert third.agents[4].replica not in (replica, second.agents[4].replica)
        assert "does not match the snapshot restored (newest); starting under a new replica id" in caplog.text
    finally:
        await asyncio.wait_for(third.stop(), 10)


async def test_a_truncated_newest_snapshot_falls_back_to_the_previous(tmp_path, caplog):
    config = lone_agent(tmp_path)
    first = AgentHost(config)
    await first.start()
    agent = first.agents[4]
    agent.submit(parse("a*(b+c)"))
    await first.save_snapshots()
    older = agent.egraph.digest()
    agent.submit(parse("d+e+f"))
    await first.save_snapshots()
    newer = agent.egraph.digest()
    await asyncio.wait_for(first.stop(), 10)
    assert older != newer
    newest, previous = snapshots.paths(tmp_path, 4)
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # the newest lost its tail

    caplog.set_level(logging.INFO, "agentnet")
    second = AgentHost(config)
    await second.start()
    try:
        assert second.agents[4].egraph.digest() == older
        assert f"restoring from the previous snapshot {previous}" in caplog.text
        assert f"snapshot {newest} is unreadable" in caplog.text
    finally:
        await asyncio.wait_for(second.stop(), 10)


async def test_with_no_readable_snapshot_the_agent_resyncs_from_its_neighbours(nats_server, tmp_path, caplog):
    net = network(9)
    others = runtime_config(net, nats_server.url, agent_ids=[i for i in range(9) if i != 4])
    async with running(others) as host:
        host.agents[0].submit(parse("p*(q+r)"))
        host.wake(host.agents[0])
        await eventually(lambda: len({d for i, d in host.digests().items()}) == 1 and not host.agents[0].dirty, 20, "the others to agree")
        for path in snapshots.paths(tmp_path, 4):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
        caplog.set_level(logging.INFO, "agentnet")
        config = runtime_config(net, nats_server.url, agent_ids=[4], data_dir=str(tmp_path))
        async with running(config) as lone:
            assert "no readable snapshot" in caplog.text and "re-syncing from neighbours" in caplog.text
            await eventually(lambda: lone.agents[4].egraph.digest() == host.agents[0].egraph.digest(), 20, "agent 4 to re-sync")


WRITER = """
import sys
from pathlib import Path
from agentnet_runtime.agent import snapshots
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse
graph, data_dir, round = EGraph("writer.1"), Path(sys.argv[1]), 0
while True:
    round += 1
    for i in range(200):
        graph.add_term(parse(f"v{round}_{i}*(w{i}+{round})"))
    print(len(graph), graph.digest(), flush=True)  # announced before it is written: all on disk were announced
    snapshots.write(data_dir, 7, graph.to_wire())
"""


def test_a_writer_killed_in_the_middle_of_writing_leaves_a_whole_snapshot(tmp_path):
    """SIGKILL a process that writes snapshots back to back (most of its time is spent writing):
    whatever instant it died at, a whole snapshot that it had finished writing is read back."""
    for attempt in range(3):
        directory = tmp_path / str(attempt)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(directory)], stdout=subprocess.PIPE, text=True)
        announced: list[str] = []
        try:
            while len(announced) < 3 + attempt:  # a different moment of its cycle each time
                announced.append(writer.stdout.readline())
            time.sleep(0.01 * attempt)
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
        written = {digest: int(size) for size, digest in (line.split() for line in announced + writer.stdout.readlines())}
        restored = snapshots.read(directory, 7)
        assert restored.state is not None and restored.source in ("newest", "previous")
        graph = EGraph("reader.1").join(restored.state)
        assert written.get(graph.digest()) == len(graph)
