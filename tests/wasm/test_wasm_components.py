"""The Spin components on a real Wasm runtime: each build/wasm-wasmtime/<component>.wasm (built here by
scripts/wasm/build.py --host wasmtime, a copy from its cache when the sources are unchanged: the Spin
build but for the version of wasi:config/store it imports) served by `wasmtime serve`,
and the same component as the Python process serves it (its Service's app, started as the component
tests start it), answer every case of wasm_cases.CASES alike: the status and the fields each case
expects, then the whole body field by field but for what the case says depends on state or timing."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from components.component_support import component_config, serving
from wasm_cases import CASES, VERIFICATION_SETTINGS, Case

from agentnet_runtime.catalogue import BY_NAME
from agentnet_runtime.config import ConfigError
from agentnet_runtime.wasm.wasmtime import WasmtimeServer, cache_config

REPO = Path(__file__).resolve().parents[2]
# Kept between runs: compiling an 18 MB component takes wasmtime about a minute on a busy machine.
WASMTIME_CACHE = Path.home() / ".cache" / "agentnet" / "wasmtime"
SETTINGS = {"skill-verification": VERIFICATION_SETTINGS}


def built(component: str) -> Path:
    subprocess.run([sys.executable, str(REPO / "scripts" / "wasm" / "build.py"), "--host", "wasmtime", component],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)  # fmt: skip
    return REPO / "build" / "wasm-wasmtime" / f"{component}.wasm"


def environment(component: str) -> dict[str, str]:
    return {name.upper(): str(value) for name, value in SETTINGS.get(component, {}).items()}


@pytest.fixture(scope="session")
def wasm_url() -> Iterator[Any]:
    """component -> the URL of its .wasm under wasmtime serve (started on first use, once per worker)."""
    servers: dict[str, WasmtimeServer] = {}

    def url(component: str) -> str:
        if component not in servers:
            server = WasmtimeServer(built(component), env=environment(component), cache=WASMTIME_CACHE)
            server.start()  # kept once it answers: a server that failed to start fails its one test, not all
            servers[component] = server
        return servers[component].url

    yield url
    for server in servers.values():
        server.stop()


def without(answer: Any, paths: tuple[str, ...]) -> Any:
    """`answer` less the fields at `paths` ("a.b", "results[].elapsedMs")."""
    answer = copy.deepcopy(answer)

    def drop(value: Any, parts: list[str]) -> None:
        head, rest = parts[0], parts[1:]
        if head.endswith("[]"):
            for item in value.get(head[:-2], []) if isinstance(value, dict) else []:
                drop(item, rest)
        elif isinstance(value, dict) and head in value:
            if rest:
                drop(value[head], rest)
            else:
                del value[head]

    for path in paths:
        drop(answer, path.split("."))
    return answer


def request_arguments(case: Case) -> dict[str, Any]:
    if case.body is None:
        return {}
    content = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    return {"content": content, "headers": {"content-type": "application/json"}}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=pytest.mark.xdist_group(f"wasm-{c.component}")) for c in CASES])
async def test_the_wasm_component_answers_as_the_python_one(case: Case, wasm_url, nats_server):
    config = component_config(case.component, nats_server.url, settings=SETTINGS.get(case.component))
    async with serving(case.component, config) as (_, python):
        from_python = await python.request(case.method, case.path, **request_arguments(case), timeout=120)
    prefix = BY_NAME[case.component].route  # as Spin routes it: /egraph/saturate
    async with httpx.AsyncClient(base_url=wasm_url(case.component)) as wasm:
        from_wasm = await wasm.request(case.method, prefix + case.path, **request_arguments(case), timeout=120)

    for side, answer in (("python", from_python), ("wasm", from_wasm)):
        assert answer.status_code == case.status, f"{side}: {answer.status_code} {answer.text[:500]}"
        assert answer.headers["content-type"].startswith("application/json"), side
        body = answer.json()
        assert {key: body.get(key) for key in case.expect} == case.expect, f"{side}: {body}"
    assert without(from_wasm.json(), case.ignore) == without(from_python.json(), case.ignore)


@pytest.mark.xdist_group("wasm-egraph-service")
def test_a_setting_is_refused_with_the_same_words(monkeypatch, tmp_path):
    """The Python process refuses to start; the Spin component, which starts per request, answers 500 saying the same."""
    monkeypatch.setenv("SATURATION_TIMEOUT_MS", "-5")
    from agentnet_runtime.components import create

    with pytest.raises(ConfigError) as refused:
        create("egraph-service", component_config("egraph-service"))
    with WasmtimeServer(built("egraph-service"), env={"SATURATION_TIMEOUT_MS": "-5"}, cache=WASMTIME_CACHE) as server:
        answer = httpx.post(server.url + "/egraph/saturate", json={"term": "x"}, timeout=120)
    assert server.first_status == 500
    assert answer.status_code == 500 and answer.json() == {"error": str(refused.value)}
    assert str(refused.value) == "SATURATION_TIMEOUT_MS must be > 0, got -5"


@pytest.mark.xdist_group("wasm-egraph-service")
def test_a_setting_comes_from_wasi_config_over_the_environment():
    """Spin hands a component its variables through wasi:config/store; wasmtime serve's -S config-var does
    the same. The store's value wins over the environment's, an empty one leaves the environment's, and the
    environment alone still works: each shows in GET /'s settings and /health's timeoutMs."""
    wasm = built("egraph-service")
    env = {"SATURATION_TIMEOUT_MS": "3000", "NODE_LIMIT": "777"}
    for config, timeout in (({"saturation_timeout_ms": "2000"}, 2000), ({"saturation_timeout_ms": ""}, 3000), ({}, 3000)):
        with WasmtimeServer(wasm, env=env, config=config, cache=WASMTIME_CACHE) as server:
            metadata = httpx.get(server.url + "/egraph/", timeout=120).json()
            health = httpx.get(server.url + "/egraph/health", timeout=120).json()
        assert server.first_status == 200, config
        assert metadata["settings"]["saturation_timeout_ms"] == health["timeoutMs"] == timeout, config
        assert metadata["settings"]["node_limit"] == 777, config  # not in the store: the environment's


@pytest.mark.xdist_group("wasm-egraph-service")
def test_a_setting_from_wasi_config_is_refused_as_from_the_environment():
    with WasmtimeServer(built("egraph-service"), config={"saturation_timeout_ms": "-5"}, cache=WASMTIME_CACHE) as server:
        answer = httpx.post(server.url + "/egraph/saturate", json={"term": "x"}, timeout=120)
    assert server.first_status == answer.status_code == 500
    assert answer.json() == {"error": "SATURATION_TIMEOUT_MS must be > 0, got -5"}


def test_servers_started_together_read_their_cache_configuration_whole(tmp_path):
    """Test workers start wasmtime servers at once, each writing the cache configuration the others read:
    one read it empty and exited ("missing field `cache`"), failing a CI run. 200 rounds of 4 starts
    each read it whole (written in place, 5 % of the reads were empty)."""
    read: list[str] = []

    def start(directory: Path) -> None:
        read.append(cache_config(directory).read_text())

    for round_ in range(200):
        starts = [threading.Thread(target=start, args=(tmp_path / str(round_),)) for _ in range(4)]
        for thread in starts:
            thread.start()
        for thread in starts:
            thread.join()
    assert len(read) == 800
    assert [text for text in read if not text.startswith("[cache]")] == []
