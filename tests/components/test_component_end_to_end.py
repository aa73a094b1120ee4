"""The components together under `agentnet up`, as a user drives them: a term sent to
stream-blue and its expansion sent to stream-red become, through the work queues, the
streams' rewriting and the network, an equality /verify reports with full agreement —
decided by what the network learnt, not by the verifiers' own saturation."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agentnet_runtime.natsbin import free_port
from rig import wait_for

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
AGENTNET = str(Path(sys.executable).with_name("agentnet"))


def test_streams_feed_the_network_and_verification_sees_it(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [AGENTNET, "up", "-f", str(REPO / "examples" / "network.yaml"), "--port", str(port), "--data-dir",
         str(tmp_path / "data")], stdout=subprocess.DEVNULL, stderr=(tmp_path / "up.log").open("wb"))
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            assert process.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "agentnet up")
        assert httpx.post(f"{base}/stream/blue/terms", json={"term": "x*(y+z)"}, timeout=10).status_code == 202
        assert httpx.post(f"{base}/stream/red/terms", json={"term": "x*y + x*z"}, timeout=10).status_code == 202

        def verified() -> dict | None:
            answer = httpx.post(f"{base}/verify/terms", json={"lhs": "x*(y+z)", "rhs": "x*y + x*z"}, timeout=10).json()
            return answer if answer["decided_by"].get("network") == answer["verifiers"] else None

        answer = wait_for(verified, 60, "the network's equality to reach skill-verification")
        assert answer["verdict"] == "equal" and answer["agreement"] == 1.0 and answer["votes"] == {"equal": 17}
        assert answer["variance"] == 0
        unequal = httpx.post(f"{base}/verify/terms", json={"lhs": "x*(y+z)", "rhs": "x*y + z"}, timeout=10).json()
        assert unequal["verdict"] == "unequal" and unequal["agreement"] == 1.0
        # Every agent learnt it too.
        proofs = {httpx.post(f"{base}/agent/{i}/message", json={"prove": ["x*(y+z)", "x*y + x*z"]}, timeout=5)
                  .json()["equal"] for i in range(9)}
        assert proofs == {True}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
