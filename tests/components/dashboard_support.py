"""Helpers for the dashboard tests and benchmark: Debian's headless Chromium driven by Playwright
(no browser download: Playwright launches /usr/bin/chromium), agentnet processes, and reading what
the page drew (SVG elements and their computed styles, not the server's JSON)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx

from rig import wait_for
from rig.controlplane import die_with_parent, stop_process

REPO = Path(__file__).resolve().parents[2]
AGENTNET = str(Path(sys.executable).with_name("agentnet"))
ARTIFACTS = REPO / "tests" / "artifacts"  # screenshots kept after the run (gitignored)
CHROMIUM = "/usr/bin/chromium"
# Headless, and quiet: without the background-networking flags Chromium keeps calling home, which
# this machine's closed network answers with nothing. Playwright gives each launch a fresh profile.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


class Page:
    """A Playwright page plus every URL it asked for; requests off this machine are refused."""

    def __init__(self, page):
        self.page = page
        self.requested: list[str] = []

    def not_local(self) -> list[str]:
        return [url for url in self.requested if urlsplit(url).hostname not in ("127.0.0.1", "localhost")]


@contextmanager
def browser(width: int = 1400, height: int = 900) -> Iterator[Page]:
    """A fresh headless Chromium page."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = chromium.new_context(viewport={"width": width, "height": height})
            page = Page(context.new_page())

            def route(request_route) -> None:
                page.requested.append(request_route.request.url)
                host = urlsplit(request_route.request.url).hostname
                if host in ("127.0.0.1", "localhost"):
                    request_route.continue_()
                else:
                    request_route.abort()

            context.route("**/*", route)
            yield page
        finally:
            chromium.close()


# What the page drew, read from the SVG: each agent's data attributes and the colours the browser computed.
DRAWN_AGENTS = """() => [...document.querySelectorAll('#nodes g.agent')].map(g => {
    const style = getComputedStyle(g.querySelector('circle'));
    return {id: Number(g.dataset.agent), polarity: g.dataset.polarity, state: g.dataset.state,
            stroke: style.stroke, fill: style.fill};
})"""


def drawn_agents(page: Page) -> dict[int, dict]:
    return {agent["id"]: agent for agent in page.page.evaluate(DRAWN_AGENTS)}


def rgb(css: str) -> tuple[int, int, int]:
    """(r, g, b) of a computed colour such as 'rgb(214, 39, 40)'."""
    inside = css[css.index("(") + 1 : css.index(")")]
    r, g, b = (int(float(part)) for part in inside.replace("/", ",").split(",")[:3])
    return r, g, b


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))


def dominant(css: str) -> str:
    """RED, GREEN or BLUE: the strongest channel of a computed colour."""
    channels = dict(zip(("RED", "GREEN", "BLUE"), rgb(css)))
    return max(channels, key=channels.get)


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """Into the test's tmp dir and tests/artifacts/ (kept after the run)."""
    shot = tmp_path / name
    page.page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / name)
    return shot


# --- agentnet processes ------------------------------------------------------------------------------------


class Processes:
    """agentnet processes of one test, each logging to a file; all stopped at the end."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "w")
        process = subprocess.Popen(
            [AGENTNET, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.directory,
            env={**os.environ}, preexec_fn=die_with_parent,
        )  # fmt: skip
        log.close()
        self.running[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text()[-3000:]

    def wait_healthy(self, name: str, port: int, timeout: float = 60) -> dict:
        process = self.running[name]

        def health():
            assert process.poll() is None, f"{name} exited with {process.returncode}:\n{self.log(name)}"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
            except httpx.HTTPError:
                return None

        return wait_for(health, timeout, f"{name} to answer /health on port {port}")

    def kill(self, name: str) -> None:
        process = self.running[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def interrupt(self, name: str, timeout: float = 30) -> int:
        process = self.running[name]
        process.send_signal(signal.SIGINT)
        return process.wait(timeout)

    def stop_all(self) -> None:
        for process in self.running.values():
            stop_process(process, grace=10)


def page_wait(page: Page, expression: str, what: str, timeout: float = 30, arg=None):
    """Wait (bounded) until a JS expression is truthy in the page; fail naming `what`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        return page.page.wait_for_function(expression, arg=arg, timeout=timeout * 1000, polling=100).json_value()
    except PlaywrightTimeout:
        raise AssertionError(f"timed out after {timeout}s waiting for the page to show {what}") from None


# --- heartbeats of many agents ----------------------------------------------------------------------------


class Heartbeats:
    """Heartbeats of `agents` every `interval` seconds on NATS, in the agents' format through the agents'
    own Transport, from a thread with its own event loop: a dashboard of 1,000 agents without 1,000
    replicas (5 MB each, and both cores) on a machine shared with other work. `silence(ids)` stops some."""

    def __init__(self, url: str, network: str, agents: int, interval: float, packed: int = 8):
        self.url, self.network, self.agents, self.interval = url, network, agents, interval
        self.packed = packed  # agents per process (agentsPerPod): their heartbeats come as one message
        self.silent: frozenset[int] = frozenset()
        self.rounds = 0  # rounds of heartbeats sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="heartbeats", daemon=True)

    def __enter__(self) -> "Heartbeats":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def silence(self, ids) -> None:
        self.silent = frozenset(ids)

    async def _run(self) -> None:
        from agentnet_runtime.agent import subjects
        from agentnet_runtime.agent.transport import Transport

        transport = Transport(self.url)
        await transport.connect()
        try:
            while not self._stop.is_set():
                beat = {"digest": "d" * 64, "nodes": 1, "events": self.rounds}
                for first in range(0, self.agents, self.packed):  # one message per process, as agent processes send them
                    beats = {agent: beat for agent in range(first, min(first + self.packed, self.agents)) if agent not in self.silent}
                    if beats:
                        body = subjects.heartbeats(self.network, f"pod-{first}", beats)
                        await transport.send(subjects.HEARTBEATS, first, None, body)
                self.rounds += 1
                await asyncio.sleep(self.interval)
        finally:
            await transport.close()
