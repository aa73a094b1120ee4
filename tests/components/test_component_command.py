"""`agentnet component NAME` as a real process: serves its routes at the root, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from runtime_support import network_document

from agentnet_runtime.natsbin import free_port
from rig import wait_for

pytestmark = pytest.mark.timeout(60)

AGENTNET = str(Path(sys.executable).with_name("agentnet"))


def test_a_component_runs_alone_and_stops_on_sigterm(tmp_path):
    config = tmp_path / "network.json"
    config.write_text(json.dumps(network_document(9)))
    port = free_port()
    process = subprocess.Popen(
        [AGENTNET, "component", "duck-colors", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"

        def health():
            assert process.poll() is None, process.communicate()[1]
            try:
                return httpx.get(f"{base}/health", timeout=1).json()
            except httpx.HTTPError:
                return None

        assert wait_for(health, 30, "the component's /health")["app"] == "duck-colors"
        assert httpx.get(f"{base}/ready", timeout=5).json() == {"status": "ready", "app": "duck-colors"}
        assert len(httpx.get(f"{base}/assignment", timeout=5).json()["agents"]) == 9
        assert "agentnet_http_requests_total" in httpx.get(f"{base}/metrics", timeout=5).text
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bad_invocations_say_what_is_wrong(tmp_path):
    unknown = subprocess.run([AGENTNET, "component", "stream-purple"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "stream-red" in unknown.stderr  # the choices are listed
    missing = subprocess.run([AGENTNET, "component", "duck-colors", "--config", str(tmp_path / "none.json")],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "cannot read the network config" in missing.stderr
