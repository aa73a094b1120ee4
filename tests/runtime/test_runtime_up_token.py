"""`agentnet up --require-token`: a real process that makes a token, prints it, and asks for it on the mutating
routes (the agents' and the mounted components'), while reads stay open. Without the flag, test_runtime_up
shows the routes open."""

from __future__ import annotations

import re

import httpx
import pytest
from test_runtime_up import LOOK, start_up, stop

from agentnet_runtime.settings import GuardSettings

pytestmark = pytest.mark.timeout(180)


def test_up_with_require_token_prints_a_token_and_requires_it(tmp_path, monkeypatch):
    monkeypatch.delenv(GuardSettings.env_name("api_token"), raising=False)  # so that up makes one
    process, base, log = start_up(tmp_path, tmp_path / "data", "up.log", "--require-token")
    try:
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
        stop(process, log)
