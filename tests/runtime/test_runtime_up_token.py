"""`agentnet up --require-token`: a real process that makes a token, prints it, and asks for it on the mutating
routes (the agents' and the mounted components'), while reads stay open. Without the flag, test_runtime_up
shows the routes open."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import httpx
import pytest
from test_runtime_up import AGENTNET, LOOK, REPO

from agentnet_runtime.natsbin import free_port

pytestmark = pytest.mark.timeout(180)


def test_up_with_require_token_prints_a_token_and_requires_it(tmp_path):
    port, log = free_port(), tmp_path / "up.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTNET_")}
    process = subprocess.Popen(
        [AGENTNET, "up", "-f", str(REPO / "examples" / "network.yaml"), "--port", str(port), "--require-token"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"), cwd=tmp_path, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"agentnet up did not become ready: {log.read_text()}")
        token = re.search(r"API token \(Authorization: Bearer \.\.\.\): (\S+)", log.read_text()).group(1)
        bearer = {"Authorization": f"Bearer {token}"}

        refused = httpx.post(f"{base}/agent/0/message", json={"term": "x*(y+z)"}, timeout=LOOK)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        merge = httpx.post(f"{base}/crdt/merge", json={"states": []}, timeout=LOOK)  # a mounted component's route
        assert merge.status_code == 401 and merge.json()["field"] == "Authorization"
        assert httpx.post(f"{base}/agent/0/message", json={"term": "x*(y+z)"}, headers=bearer, timeout=LOOK).status_code == 202
        assert httpx.get(f"{base}/agent/0/state", timeout=LOOK).status_code == 200  # reads stay open
        assert httpx.get(f"{base}/colors/assignment", timeout=LOOK).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
