"""transduction-2tdx sends its peer's API token: with the network's own token (AGENTNET_API_TOKEN) a peer that
requires it answers; with a wrong PEER_TOKEN the peer refuses (401) and the exchange counts as refused."""

from __future__ import annotations

import httpx
import pytest
from runtime_support import eventually
from transduction_support import bridged_network

from agentnet_runtime.natsbin import free_port
from agentnet_runtime.settings import GuardSettings

pytestmark = pytest.mark.timeout(120)

TOKEN = "the-networks-shared-token-0123456789"


async def test_peers_send_the_token_and_a_wrong_one_is_refused(nats_server, monkeypatch):
    monkeypatch.setenv(GuardSettings.env_name("api_token"), TOKEN)  # both sides' routes require it
    east_port, west_port = free_port(), free_port()
    fast = {"INTERVAL_MS": "100", "MAX_LATENCY_MS": "2000"}
    async with (
        bridged_network("east", nats_server.url, east_port, VERS_ENDPOINT=f"http://127.0.0.1:{west_port}",
                        PEER_TOKEN="not-the-token-of-west-0123456", **fast) as east,
        bridged_network("west", nats_server.url, west_port, agents=6, kind="ring",
                        VERS_ENDPOINT=f"http://127.0.0.1:{east_port}", **fast) as west,
        httpx.AsyncClient(timeout=5) as client,
    ):  # fmt: skip
        async def exchanges(side) -> dict:
            return (await client.get(f"{side.url}/status")).json()

        refused = await eventually(lambda: _when(exchanges(east), lambda r: r["exchanges"]["refused"] > 0), 30,
                                   "east's exchanges to be refused")  # fmt: skip
        assert "401" in refused["errors"][-1]["error"] and refused["exchanges"]["ok"] == 0
        ok = await eventually(lambda: _when(exchanges(west), lambda r: r["exchanges"]["ok"] > 0), 30, "west's exchanges")
        assert ok["exchanges"]["refused"] == 0
        assert (await client.post(f"{east.url}/exchange", json={})).status_code == 401  # and a stranger is refused


async def _when(report, check):
    report = await report
    return report if check(report) else None
