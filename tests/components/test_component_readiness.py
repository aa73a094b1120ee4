"""Components' readiness and self-healing on a real nats-server: unready while NATS is away or refuses
the credentials, the work queue made again after a restart with an empty store, and a refused setting
that ends `agentnet component` before it serves."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from component_support import component_config, serving
from engine_support import consumer_lag
from runtime_support import eventually, network_document

from agentnet_runtime import natsclient
from agentnet_runtime.components.common import every
from agentnet_runtime.natsbin import EmbeddedNats, free_port
from rig import wait_for

pytestmark = pytest.mark.timeout(90)

AGENTNET = str(Path(sys.executable).with_name("agentnet"))
NATS_COMPONENTS = ("stream-blue", "crdt-service", "skill-verification", "agent-orchestrator", "transduction-2tdx",
                   "interaction-timeline", "dashboard")  # fmt: skip
PLAIN_COMPONENTS = ("egraph-service", "duck-colors")  # no NATS: nothing to wait for


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict]:
    response = await client.get("/ready")
    return response.status_code, response.json()


async def ready(client: httpx.AsyncClient) -> bool:
    return (await readiness(client))[0] == 200


async def unready(client: httpx.AsyncClient) -> bool:
    return (await readiness(client))[0] == 503


async def test_every_component_that_uses_nats_is_unready_while_it_is_away(nats_server):
    async with AsyncExitStack() as stack:
        clients = {name: (await stack.enter_async_context(serving(name, component_config(name, nats_server.url))))[1]
                   for name in NATS_COMPONENTS + PLAIN_COMPONENTS}  # fmt: skip
        for name, client in clients.items():
            await eventually(lambda: ready(client), 20, f"{name} ready")
        nats_server.stop()
        for name in NATS_COMPONENTS:

            async def disconnected(client=clients[name]) -> bool:
                status, body = await readiness(client)
                return status == 503 and body["reasons"] == [natsclient.NATS_DISCONNECTED]

            await eventually(disconnected, 20, f"{name} to say NATS is disconnected")
            assert (await clients[name].get("/health")).status_code == 200
        for name in PLAIN_COMPONENTS:
            assert await ready(clients[name]), name
        nats_server.start()
        for name, client in clients.items():
            await eventually(lambda: ready(client), 20, f"{name} ready again")


async def test_the_work_queue_heals_after_nats_restarts_with_an_empty_store(nats_server):
    """The stream and stream-red's consumer are gone with the store: /ready says so until the component
    has made them again on its own, and terms queued then are processed, without a restart."""
    async with serving("stream-red", component_config("stream-red", nats_server.url)) as (service, client):
        assert await readiness(client) == (200, {"status": "ready", "app": "stream-red"})
        assert (await client.post("/terms", json={"term": "x*(y+z)"})).status_code == 202
        await eventually(lambda: service.processed == 1, 20, "the first term processed")

        nats_server.stop()
        shutil.rmtree(nats_server.store_dir / "jetstream")  # an empty store
        await eventually(lambda: unready(client), 20, "/ready 503 while NATS is away")
        refused = await client.post("/terms", json={"term": "a*(b+c)"})
        assert refused.status_code == 503 and "NATS disconnected" in refused.json()["error"]
        nats_server.start()
        await eventually(lambda: ready(client), 20, "/ready 200 again")
        assert await consumer_lag(nats_server.url, "stream-red") == 0  # the consumer exists again

        queued = await client.post("/terms", json={"term": "a*(b+c)"})
        assert queued.status_code == 202, queued.text
        await eventually(lambda: service.processed == 2, 20, "the term queued after the restart processed")


async def test_a_consumer_deleted_under_a_running_component_is_made_again(nats_server):
    async with serving("stream-green", component_config("stream-green", nats_server.url)) as (service, client):
        await eventually(lambda: ready(client), 20, "stream-green ready")
        nc = await natsclient.connect(nats_server.url)
        try:
            await nc.jetstream().delete_consumer(natsclient.WORK_STREAM, "stream-green")

            async def consumer_back() -> bool:
                try:
                    return (await nc.jetstream().consumer_info(natsclient.WORK_STREAM, "stream-green")).name == "stream-green"
                except Exception:
                    return False

            await eventually(consumer_back, 10, "the consumer made again by the periodic check")
        finally:
            await nc.close()
        assert (await client.post("/terms", json={"term": "x + 0"})).status_code == 202
        await eventually(lambda: service.processed == 1, 20, "a term processed through the new consumer")


async def test_a_stream_component_started_before_jetstream_answers_waits_for_it(tmp_path):
    """A NATS cluster just formed may not answer for a stream it has just made ("stream not found", seen on
    the rig's real pods): the component stays up and unready until JetStream answers, instead of crashing
    at start into a restart with back-off. Here JetStream is off at first, then on, on the same port."""
    without = EmbeddedNats(tmp_path / "nats", config="")  # no jetstream block: its API has no responders
    without.start()
    try:
        async with serving("stream-red", component_config("stream-red", without.url)) as (service, client):
            status, body = await readiness(client)
            assert status == 503 and any("JetStream" in reason for reason in body["reasons"]), body
            without.stop()
            with EmbeddedNats(tmp_path / "nats", port=without.port):
                await eventually(lambda: ready(client), 30, "stream-red ready once JetStream answers")
                assert (await client.post("/terms", json={"term": "x*(y+z)"})).status_code == 202
                await eventually(lambda: service.processed == 1, 20, "the term processed")
    finally:
        without.stop()


# --- credentials the server refuses --------------------------------------------------------------------


@pytest.fixture
def guarded_nats(tmp_path):
    """A real nats-server that takes only user agentnet with password right-one."""
    server = EmbeddedNats(tmp_path / "guarded", args=("--user", "agentnet", "--pass", "right-one"))
    server.start()
    yield server
    server.stop()


def credentials(directory: Path, password: str) -> Path:
    directory.mkdir()
    (directory / "user").write_text("agentnet")
    (directory / "password").write_text(password)
    return directory


@pytest.mark.parametrize("command", [["component", "crdt-service"], ["agent", "--agents", "0"]])
def test_wrong_credentials_keep_the_process_up_and_unready(guarded_nats, tmp_path, command):
    config = tmp_path / "network.json"
    config.write_text(json.dumps(network_document(9)))
    port = free_port()
    process = subprocess.Popen(
        [AGENTNET, *command, "--config", str(config), "--nats-url", guarded_nats.url,
         "--nats-credentials-dir", str(credentials(tmp_path / "creds", "wrong-one")),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"

        def refused():
            assert process.poll() is None, process.communicate()[1]
            try:
                response = httpx.get(f"{base}/ready", timeout=1)
            except httpx.HTTPError:
                return None
            return response.status_code == 503 and response.json()["reasons"] == [natsclient.NATS_AUTHORIZATION]

        wait_for(refused, 30, "/ready naming the authorization failure")
        assert httpx.get(f"{base}/health", timeout=1).status_code == 200
        assert process.poll() is None  # it stays up (alive, not ready) and keeps trying
    finally:
        process.kill()
        process.wait(10)


async def test_the_right_credentials_make_the_component_ready(guarded_nats, tmp_path):
    config = component_config("crdt-service", guarded_nats.url,
                              nats_credentials_dir=str(credentials(tmp_path / "creds", "right-one")))
    async with serving("crdt-service", config) as (_, client):
        assert await readiness(client) == (200, {"status": "ready", "app": "crdt-service"})


# --- settings the component refuses ----------------------------------------------------------------------


@pytest.mark.parametrize("component, settings, message", [
    ("egraph-service", {"SATURATION_TIMEOUT_MS": "0"},
     "components[egraph-service].settings.SATURATION_TIMEOUT_MS must be > 0, got 0"),
    ("stream-red", {"BATCH_SIZE": "many"}, "components[stream-red].settings.BATCH_SIZE must be an integer, got many"),
    ("transduction-2tdx", {"VERS_ENDPOINT": "ftp://elsewhere"}, "components[transduction-2tdx].settings.VERS_ENDPOINT must be"),
])  # fmt: skip
def test_a_refused_setting_ends_the_component_at_start(tmp_path, component, settings, message):
    document = network_document(9)
    document["components"][component]["settings"] = settings
    config = tmp_path / "network.json"
    config.write_text(json.dumps(document))
    port = free_port()
    result = subprocess.run(
        [AGENTNET, "component", component, "--config", str(config), "--nats-url", "nats://127.0.0.1:1",
         "--host", "127.0.0.1", "--port", str(port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr


def test_no_component_module_imports_nats_at_import():
    """nats-py takes a second or more to import under load: natsclient loads it off the event loop, so a
    process answers /health meanwhile. A module-level `import nats...` in a component undoes that (one in
    streams.py did)."""
    from agentnet_runtime.catalogue import COMPONENT_NAMES
    from agentnet_runtime.components import module_name

    modules = "; ".join(f"import {module_name(name)}" for name in COMPONENT_NAMES)
    check = f"import sys; {modules}; print(sorted(m for m in sys.modules if m == 'nats' or m.startswith('nats.')))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


async def test_a_timer_ends_when_a_request_it_made_swallowed_the_cancel():
    """nats-py's request waits with asyncio.wait_for, which in Python 3.11 returns a reply that arrives together
    with a cancel and drops the cancel; a timer that went on would then keep stop() waiting forever (CI:
    'skill-verification did not stop within 30 s'). A real nats-server cannot be timed to make the reply and the
    cancel meet, so here a future stands in for the reply and both come in one step of the event loop."""
    replies: list[asyncio.Future] = []
    asked = asyncio.Event()

    async def request() -> str:
        replies.append(asyncio.get_running_loop().create_future())
        asked.set()
        return await asyncio.wait_for(replies[-1], 10)

    timer = asyncio.create_task(every(0.001, request, "test"))
    await asked.wait()
    replies[-1].set_result("reply")
    timer.cancel()
    done, _ = await asyncio.wait([timer], timeout=2)
    assert timer in done and timer.cancelled() and len(replies) == 1


async def test_stopping_cancels_again_a_task_whose_retry_loop_took_the_cancel_for_a_refused_connection():
    """nats-py's first connect retries forever on OSError, waiting with asyncio.wait_for: a cancel that meets a
    refused connection in one loop step comes back as that OSError, and the loop goes on (CI: an agent with NATS
    away did not stop within 30 s of SIGTERM). Made to meet here, with a future for the connection attempt."""
    attempts: list[asyncio.Future] = []
    tried = asyncio.Event()

    async def connect_forever() -> None:
        while True:
            attempts.append(asyncio.get_running_loop().create_future())
            tried.set()
            try:
                await asyncio.wait_for(attempts[-1], 10)
            except OSError:
                continue

    connecting = asyncio.create_task(connect_forever())
    await tried.wait()
    attempts[-1].set_exception(ConnectionRefusedError())
    async with asyncio.timeout(5):  # inline, so its first cancel lands in the same step as the refusal
        await natsclient.cancel_until_done([connecting], every=0.1)
    assert connecting.cancelled() and len(attempts) == 2
