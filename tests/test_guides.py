"""The deployment guides' checks (../shared/guides, README there), verbatim where they are commands.

- every component answers `GET /` with its service metadata, alone (its own app, as its pod
  serves it) and under `agentnet up`, where guide 000's `verify_deployment.sh` loop runs word
  for word with only the host replaced (`https://X.worm.sex/` -> `http://X.localhost:PORT/`);
- the streams answer any other GET/POST with guide 000's shape;
- the agents' routes of guide 001 answer with its fields.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "components"))  # component_support, as its tests import it

from component_support import component_config  # noqa: E402
from guides_support import verify_deployment_script  # noqa: E402

from agentnet_runtime import __version__, components  # noqa: E402
from agentnet_runtime.catalogue import BY_NAME, COMPONENT_NAMES  # noqa: E402


# One route of each component as the README documents it: the metadata lists the router's routes.
DOCUMENTED = {
    "stream-red": ("/terms", "POST"), "stream-blue": ("/apply", "POST"), "stream-green": ("/status", "GET"),
    "crdt-service": ("/merge", "POST"), "egraph-service": ("/saturate", "POST"),
    "skill-verification": ("/replica", "GET"), "agent-orchestrator": ("/sync-round", "POST"),
    "duck-colors": ("/palette", "GET"), "transduction-2tdx": ("/exchange", "POST"),
    "interaction-timeline": ("/query", "GET"), "dashboard": ("/ask", "POST"),
}  # fmt: skip
POLARITY = {"stream-red": ("RED", "positive"), "stream-blue": ("BLUE", "negative"), "stream-green": ("GREEN", "neutral")}


def client_of(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://component")


@pytest.mark.parametrize("name", COMPONENT_NAMES)
async def test_every_component_answers_get_root_with_its_metadata(name, tmp_path):
    service = components.create(name, component_config(name, data_dir=str(tmp_path)))
    async with client_of(service.app()) as client:
        response = await client.get("/", headers={"accept": "application/json"})
        assert response.status_code == 200, response.text
        about = response.json()
        assert about["status"] == "ok" and about["name"] == name and about["version"] == __version__
        routes = {(route["path"], method) for route in about["routes"] for method in route["methods"]}
        assert {("/", "GET"), ("/health", "GET"), ("/ready", "GET"), ("/metrics", "GET"), DOCUMENTED[name]} <= routes
        assert len(routes) == sum(len(route["methods"]) for route in about["routes"]), "a route is listed twice"
        assert about["settings"] == service.settings.model_dump(mode="json") and about["settings"]["component_id"] == name
        if name in POLARITY:
            assert (about["color"], about["polarity"]) == POLARITY[name]
        # GET on a route that takes only POST describes the service (guide 000: `curl /crdt/merge` is 200)
        for path, method in sorted(routes):
            if method == "POST" and (path, "GET") not in routes:
                described = await client.get(path)
                assert described.status_code == 200 and described.json()["name"] == name, (path, described.text)


async def test_the_settings_in_force_are_shown_given_or_default(tmp_path):
    service = components.create("stream-green", component_config("stream-green", settings={"BATCH_SIZE": "7"},
                                                                 data_dir=str(tmp_path)))  # fmt: skip
    async with client_of(service.app()) as client:
        shown = (await client.get("/")).json()["settings"]
    assert shown["batch_size"] == 7 and shown["saturation_timeout_ms"] > 0 and shown["polarity"] == "neutral"


async def test_the_dashboard_keeps_its_page_at_root_and_describes_itself_to_json_clients(tmp_path):
    service = components.create("dashboard", component_config("dashboard", data_dir=str(tmp_path)))
    async with client_of(service.app()) as client:
        page = await client.get("/")  # what curl and browsers ask for
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        about = await client.get("/", headers={"accept": "application/json"})
        assert about.json()["name"] == "dashboard"


@pytest.mark.parametrize("name", sorted(POLARITY))
async def test_a_stream_answers_the_guides_get_root(name, tmp_path):
    service = components.create(name, component_config(name, data_dir=str(tmp_path)))
    async with client_of(service.app()) as client:
        body = (await client.get("/")).json()
    colour, polarity = POLARITY[name]
    # guide 000, step 7: {"status":"ok","message":"RED stream received","color":"RED","polarity":"positive","path":"/","request_size":0}
    assert {key: body[key] for key in ("status", "message", "color", "polarity", "path", "request_size")} == {
        "status": "ok", "message": f"{colour} stream received", "color": colour, "polarity": polarity, "path": "/",
        "request_size": 0,
    }  # fmt: skip


_OWN = re.compile(r"^/(terms|apply|status|health|ready|metrics)$")
paths = st.lists(st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="-_."), min_size=1,
                         max_size=12), min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))  # fmt: skip


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths.filter(lambda p: not _OWN.match(p) and not {".", ".."} & set(p.split("/"))),  # (clients resolve dot segments)
       body=st.binary(max_size=2048), post=st.booleans())  # fmt: skip
async def test_a_stream_answers_any_other_path_with_what_it_received(path, body, post, tmp_path):
    service = components.create("stream-blue", component_config("stream-blue", data_dir=str(tmp_path)))
    async with client_of(service.app()) as client:
        response = await (client.post(path, content=body) if post else client.get(path))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["path"] == path and answer["request_size"] == (len(body) if post else 0)
    assert answer["message"] == "BLUE stream received" and answer["color"] == "BLUE"


async def test_a_streams_own_routes_are_still_its_own(tmp_path):
    service = components.create("stream-red", component_config("stream-red", data_dir=str(tmp_path)))
    async with client_of(service.app()) as client:
        refused = await client.post("/apply", json={"term": ""})  # its route, refusing a bad term: not the catch-all
        assert refused.status_code == 422 and refused.json()["field"] == "term"
        assert (await client.get("/status")).json()["component"] == "stream-red"
        assert (await client.put("/anything")).status_code == 405  # the guides name GET and POST only


def test_the_guides_verify_deployment_script_passes_against_agentnet_up(tmp_path):
    from test_runtime_up import start_up, stop

    process, base, log = start_up(tmp_path, tmp_path / "data", "up.log")
    try:
        port = int(base.rsplit(":", 1)[1])
        script = tmp_path / "verify_deployment.sh"
        script.write_text(verify_deployment_script(f"${{component}}.localhost:{port}"))
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "✓ All 11 components verified successfully!" in result.stdout
        assert result.stdout.count(": 200 OK") == len(COMPONENT_NAMES)
        # guide 000, step 4: the same network through one port, under the components' prefixes
        red = httpx.get(f"{base}/stream/red/test", timeout=30).json()
        assert (red["status"], red["color"], red["polarity"], red["path"]) == ("ok", "RED", "positive", "/stream/red/test")
        merge = httpx.get(f"{base}/crdt/merge", timeout=30)
        assert merge.status_code == 200 and merge.json()["name"] == "crdt-service"
        assert httpx.get(f"{base}/dashboard/", timeout=30).headers["content-type"].startswith("text/html")
        for name in COMPONENT_NAMES:
            about = httpx.get(f"{base}{BY_NAME[name].route}/", headers={"accept": "application/json"}, timeout=30).json()
            assert about["name"] == name and all(r["path"].startswith(BY_NAME[name].route) for r in about["routes"])
        whole = httpx.get(f"{base}/", timeout=30).json()  # the agents' process: every route it serves
        assert whole["name"] == "agentnet-up" and len(whole["agents"]) == 9
        assert {"/agent/{id}/state", "/api/metrics", "/api/timeline", "/crdt/merge"} <= {r["path"] for r in whole["routes"]}
    finally:
        stop(process, log)
