"""Crash-safe snapshots of an agent's e-graph in its data directory.

`<data dir>/snapshots/agent-{id}.snapshot` is the newest snapshot (EGraph.to_wire() in the
columnar format of snapshot_format.py), `agent-{id}.previous.snapshot` the one before it. A
snapshot is written to a temp file, fsynced, and renamed into place after the newest has become
the previous one (the directory is fsynced too), so a crash at any point leaves at least one
whole snapshot and at most a stray temp file. At start the newest that reads is restored; if
neither reads, the agent starts empty and re-syncs from its neighbours. The log says which happened.

Snapshots of earlier versions (`agent-{id}.json.gz`, `agent-{id}.previous.json.gz`: the wire
form as gzipped JSON) still restore: a file is read by its first bytes, the old names are tried
after the new ones, and the first write moves the old newest into the previous slot (deleting
the old previous), so nothing is lost and nothing old stays behind.

Seals. A clean stop writes a last snapshot and then `agent-{id}.seal`: the replica id and how many
events of its own that snapshot holds. That count is final (the process makes no event after it),
so the next start may carry on numbering under the same id instead of minting one, and the vector
clocks do not grow by an entry per restart. The seal is taken (read and deleted, durably) before
the agent can make an event, so a seal is used at most once: after a crash, or with a seal that
does not match the newest snapshot, the agent starts under a new id, and the log says why.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import orjson

from agentnet_runtime.core.egraph import Delta

from . import snapshot_format

log = logging.getLogger("agentnet.agent")

DIRECTORY = "snapshots"
GZIP_MAGIC = b"\x1f\x8b"  # a snapshot of the earlier format


def paths(data_dir: Path, agent: int) -> tuple[Path, Path]:
    """(newest, previous) snapshot files of an agent."""
    directory = Path(data_dir) / DIRECTORY
    return directory / f"agent-{agent}.snapshot", directory / f"agent-{agent}.previous.snapshot"


def legacy_paths(data_dir: Path, agent: int) -> tuple[Path, Path]:
    """(newest, previous) snapshot files of an agent as earlier versions named them."""
    directory = Path(data_dir) / DIRECTORY
    return directory / f"agent-{agent}.json.gz", directory / f"agent-{agent}.previous.json.gz"


def write(data_dir: Path, agent: int, wire: dict) -> Path:
    """Write a snapshot crash-safely, keeping the one before it; returns the newest file."""
    newest, previous = paths(data_dir, agent)
    old_newest, old_previous = legacy_paths(data_dir, agent)
    newest.parent.mkdir(parents=True, exist_ok=True)
    temporary = newest.with_name(newest.name + ".tmp")
    data = snapshot_format.encode(wire)
    if not newest.exists() and old_newest.exists():
        os.replace(old_newest, newest)  # the earlier format's newest becomes the previous below
    old_previous.unlink(missing_ok=True)
    if newest.exists():
        os.replace(newest, previous)
    _replace_durably(temporary, data, newest)
    return newest


def discard(data_dir: Path, agents: Iterable[int]) -> None:
    """Remove the agents' snapshots, once another holds what they held (a shared e-graph's, see AgentHost)."""
    directory = Path(data_dir) / DIRECTORY
    for agent in agents:
        for path in (*paths(data_dir, agent), *legacy_paths(data_dir, agent)):
            path.unlink(missing_ok=True)
    if directory.exists():
        _sync_directory(directory)


def _replace_durably(temporary: Path, data: bytes, target: Path) -> None:
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, target)
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # renames and unlinks survive a power cut
    finally:
        os.close(descriptor)


def _read(path: Path) -> Delta:
    data = path.read_bytes()
    if data.startswith(GZIP_MAGIC):
        return Delta.from_wire(orjson.loads(gzip.decompress(data)))
    return Delta.from_wire(snapshot_format.decode(data))


@dataclass(frozen=True)
class Restored:
    state: Delta | None  # None: nothing readable, re-sync from neighbours
    source: str  # "newest" | "previous" | "none"
    path: Path | None


def read(data_dir: Path, agent: int) -> Restored:
    """The newest snapshot that reads (whole file, valid e-graph state); says in the log which."""
    problems = []
    for source, path in zip(("newest", "previous", "newest", "previous"), [*paths(data_dir, agent), *legacy_paths(data_dir, agent)]):
        if not path.exists():
            continue
        try:
            state = _read(path)
        except (OSError, EOFError, zlib.error, ValueError, TypeError, KeyError) as error:  # truncated, corrupt, or not a state
            problems.append(f"{path.name}: {type(error).__name__}: {error}")
            log.warning("agent %s: snapshot %s is unreadable (%s)", agent, path, error)
            continue
        if problems:
            log.warning("agent %s: restoring from the previous snapshot %s", agent, path)
        return Restored(state, source, path)
    if problems:
        log.warning("agent %s: no readable snapshot (%s); re-syncing from neighbours", agent, "; ".join(problems))
    return Restored(None, "none", None)


# --- seals: a clean stop hands its replica id to the next start ----------------------------------


@dataclass(frozen=True)
class Seal:
    replica: str  # the e-graph replica id of the life that stopped
    count: int  # its own events in the newest snapshot: all it ever made


def seal_path(data_dir: Path, agent: int) -> Path:
    return Path(data_dir) / DIRECTORY / f"agent-{agent}.seal"


def seal(data_dir: Path, agent: int, replica: str, count: int) -> None:
    """After the last snapshot of a clean stop: that snapshot holds all `count` events of `replica`."""
    path = seal_path(data_dir, agent)
    _replace_durably(path.with_name(path.name + ".tmp"), orjson.dumps({"replica": replica, "count": count}), path)


def take_seal(data_dir: Path, agent: int) -> Seal | None:
    """Read and delete the seal (durably, so it is used at most once); None if there is none that reads."""
    path = seal_path(data_dir, agent)
    try:
        wire = orjson.loads(path.read_bytes())
        found = Seal(wire["replica"], wire["count"])
        if not (isinstance(found.replica, str) and found.replica and type(found.count) is int and found.count >= 0):
            raise ValueError(f"malformed seal {wire!r}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.warning("agent %s: seal %s is unreadable (%s); starting under a new replica id", agent, path, error)
        found = None
    path.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return found


def continued_replica(found: Seal | None, restored: Restored, agent: int) -> str | None:
    """The replica id this start may carry on under, or None for a new one (the log says why)."""
    if found is None:
        if restored.state is not None:
            log.info("agent %s: no seal (the last stop was not clean); starting under a new replica id", agent)
        return None
    if restored.source != "newest" or restored.state is None or restored.state.clock.get(found.replica, 0) != found.count:
        log.warning("agent %s: the seal of %s does not match the snapshot restored (%s); starting under a new replica id",
                    agent, found.replica, restored.source)
        return None
    return found.replica
