"""The guides' settings (settings.py): every component's typed, frozen settings with the guides'
names, units and defaults; the environment over network.json over the defaults; a wrong value
refused at start naming the variable and its bound; processes started with the variables use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from component_support import component_config
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from runtime_support import network_document

from agentnet_runtime import components
from agentnet_runtime import settings as settings_module
from agentnet_runtime.catalogue import BY_NAME
from agentnet_runtime.config import AgentSettings, ConfigError, load_config
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse
from agentnet_runtime.natsbin import free_port
from agentnet_runtime.settings import AgentEnvironment
from rig import answers, wait_for

pytestmark = pytest.mark.timeout(120)

AGENTNET = str(Path(sys.executable).with_name("agentnet"))


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch):
    """Every setting's variable unset, so only what a test sets is read."""
    models = [model for model in vars(settings_module).values() if isinstance(model, type) and issubclass(model, BaseSettings)]
    names = {field.upper() for model in models for field in model.model_fields} | {"NATS_URL", "AGENTNET_NATS_URL"}
    for name in names:
        monkeypatch.delenv(name, raising=False)


def settings_of(component: str, **given: str):
    return components.create(component, component_config(component, settings=given or None)).settings


# --- names, units, defaults -------------------------------------------------------------------------------


@pytest.mark.parametrize("component, field, default", [
    ("crdt-service", "cache_size_mb", 50),
    ("egraph-service", "saturation_timeout_ms", 5_000),
    ("skill-verification", "num_agents", 17),
    ("transduction-2tdx", "max_latency_ms", 100),
    ("transduction-2tdx", "vers_endpoint", None),
    ("dashboard", "metrics_refresh_ms", 1_000),
    ("duck-colors", "algorithm", "gay-jl-golden-spiral"),
    ("interaction-timeline", "storage", "duckdb"),
    ("interaction-timeline", "semantics", "append-only"),
    ("stream-red", "color", "RED"), ("stream-red", "polarity", "positive"),
    ("stream-blue", "color", "BLUE"), ("stream-blue", "polarity", "negative"),
    ("stream-green", "color", "GREEN"), ("stream-green", "polarity", "neutral"),
])  # fmt: skip
def test_the_guides_defaults(component, field, default):
    settings = settings_of(component)
    assert getattr(settings, field) == default
    assert settings.component_id == component
    assert settings.model_dump()[field] == default  # what GET / shows


def test_the_guides_units_reach_the_components(monkeypatch):
    """Each variable in the guides' unit, as the component uses it."""
    for name, value in {"CACHE_SIZE_MB": "2", "SATURATION_TIMEOUT_MS": "250", "NUM_AGENTS": "5",
                        "MAX_LATENCY_MS": "300", "METRICS_REFRESH_MS": "400"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    crdt = components.create("crdt-service", component_config("crdt-service"))
    assert crdt.cache.max_bytes == 2 * 2**20  # megabytes (MiB), not entries
    egraph = components.create("egraph-service", component_config("egraph-service"))
    assert egraph.answers.timeout_ms == 250 and (egraph.settings.saturation_timeout_ms, egraph.answers.node_limit) == (250, 10_000)
    assert len(components.create("skill-verification", component_config("skill-verification")).verifiers) == 5
    assert components.create("transduction-2tdx", component_config("transduction-2tdx")).budget == pytest.approx(0.3)
    assert components.create("dashboard", component_config("dashboard")).metrics_interval == pytest.approx(0.4)


def test_the_environment_wins_over_network_json_which_wins_over_the_networks_defaults(monkeypatch):
    # The dashboard's heartbeat interval defaults to the agents' own (0.2 s in the tests' network).
    assert settings_of("dashboard").heartbeat_interval == component_config("dashboard").agent.heartbeat_interval
    assert settings_of("dashboard", heartbeat_interval="0.7").heartbeat_interval == 0.7
    assert settings_of("dashboard", HEARTBEAT_INTERVAL="0.7").heartbeat_interval == 0.7  # either case
    monkeypatch.setenv("HEARTBEAT_INTERVAL", "0.9")
    assert settings_of("dashboard", heartbeat_interval="0.7").heartbeat_interval == 0.9
    monkeypatch.setenv("HEARTBEAT_INTERVAL", "")  # empty: not set
    assert settings_of("dashboard", heartbeat_interval="0.7").heartbeat_interval == 0.7


def test_settings_are_frozen():
    settings = settings_of("egraph-service")
    with pytest.raises(ValidationError, match="frozen"):
        settings.saturation_timeout_ms = 1


# --- refused, naming the variable and the bound ---------------------------------------------------------


@pytest.mark.parametrize("component, name, value, message", [
    ("egraph-service", "SATURATION_TIMEOUT_MS", "-5", "SATURATION_TIMEOUT_MS must be > 0, got -5"),
    ("egraph-service", "SATURATION_TIMEOUT_MS", "1.5", "SATURATION_TIMEOUT_MS must be an integer, got 1.5"),
    ("crdt-service", "CACHE_SIZE_MB", "0", "CACHE_SIZE_MB must be > 0, got 0"),
    ("crdt-service", "CACHE_SIZE_MB", "inf", "CACHE_SIZE_MB must be a finite number, got inf"),
    ("crdt-service", "CACHE_SIZE_MB", "lots", "CACHE_SIZE_MB must be a number, got lots"),
    ("skill-verification", "NUM_AGENTS", "0", "NUM_AGENTS must be >= 1, got 0"),
    ("skill-verification", "NUM_AGENTS", "2000", "NUM_AGENTS must be <= 1001, got 2000"),
    ("transduction-2tdx", "MAX_LATENCY_MS", "0", "MAX_LATENCY_MS must be > 0, got 0"),
    ("transduction-2tdx", "VERS_ENDPOINT", "ftp://x", "VERS_ENDPOINT must be an http(s) URL"),
    ("dashboard", "METRICS_REFRESH_MS", "-1", "METRICS_REFRESH_MS must be > 0, got -1"),
    ("dashboard", "UPDATE_INTERVAL", "2", "UPDATE_INTERVAL must be <= 1, got 2"),
    ("dashboard", "METRICS_SOURCE", "prometheus", "METRICS_SOURCE must be 'auto', 'registry' or 'urls', got prometheus"),
    ("duck-colors", "ALGORITHM", "rainbow", "ALGORITHM must be 'gay-jl-golden-spiral', got rainbow"),
    ("interaction-timeline", "STORAGE", "postgres", "STORAGE must be 'duckdb', got postgres"),
    ("interaction-timeline", "SEMANTICS", "mutable", "SEMANTICS must be 'append-only', got mutable"),
    ("stream-red", "COLOR", "BLUE", "COLOR must be RED for stream-red, got BLUE"),
    ("stream-red", "POLARITY", "neutral", "POLARITY must be positive for stream-red, got neutral"),
    ("stream-blue", "COMPONENT_ID", "stream-red", "COMPONENT_ID must be stream-blue for stream-blue, got stream-red"),
])  # fmt: skip
def test_a_wrong_variable_is_refused_naming_itself_and_its_bound(monkeypatch, component, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        components.create(component, component_config(component))
    assert str(refused.value).startswith(message)


def _bounds():
    """(component, variable, a value past the bound, the message) for every bound of every setting."""
    for component in BY_NAME:
        model = type(settings_of(component))
        for field, info in model.model_fields.items():
            for rule in info.metadata:
                for kind, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                    bound = getattr(rule, kind, None)
                    if bound is None:
                        continue
                    past = bound if kind in ("gt", "lt") else bound + 1 if kind == "le" else bound - 1 if bound >= 1 or bound == 0 else 0
                    yield pytest.param(component, field.upper(), past, f"{field.upper()} must be {op} {bound:g}, got {past:g}",
                                       id=f"{component}-{field}-{kind}")  # fmt: skip


@pytest.mark.parametrize("component, name, value, message", list(_bounds()))
def test_every_bound_is_refused_with_its_message(monkeypatch, component, name, value, message):
    monkeypatch.setenv(name, f"{value:g}")
    with pytest.raises(ConfigError) as refused:
        components.create(component, component_config(component))
    assert str(refused.value) == message


def test_a_wrong_network_json_setting_names_its_key():
    with pytest.raises(ConfigError, match=r"^components\[egraph-service\]\.settings\.saturation_timeout_ms must be > 0, got 0$"):
        settings_of("egraph-service", saturation_timeout_ms="0")
    with pytest.raises(ConfigError, match=r"^components\[skill-verification\]\.settings\.verifiers is not a setting of "
                                          r"skill-verification \(known: COMPONENT_ID, NUM_AGENTS, "):
        settings_of("skill-verification", verifiers="17")


@given(st.integers(-10**6, 10**6))
def test_any_saturation_timeout_is_taken_or_refused_by_its_bound(value):
    os.environ["SATURATION_TIMEOUT_MS"] = str(value)  # hypothesis runs many examples in one test: no monkeypatch
    try:
        if value > 0:
            assert settings_of("egraph-service").saturation_timeout_ms == value
        else:
            with pytest.raises(ConfigError, match=rf"^SATURATION_TIMEOUT_MS must be > 0, got {value}$"):
                settings_of("egraph-service")
    finally:
        del os.environ["SATURATION_TIMEOUT_MS"]


# --- the agents and NATS ---------------------------------------------------------------------------------


def test_guide_001s_agent_variables_in_milliseconds_below_the_flags(monkeypatch):
    monkeypatch.setenv("SYNC_INTERVAL", "250")
    monkeypatch.setenv("MAX_BUFFER_SIZE", "1000")
    monkeypatch.setenv("AGENT_ID", "3")
    environment = AgentEnvironment.read()
    assert environment.agent_id == 3
    settings = environment.agent_settings(AgentSettings())
    assert (settings.sync_interval, settings.max_buffered_events) == (0.25, 1000)
    assert environment.agent_settings(AgentSettings(), sync_interval=2.0).sync_interval == 2.0  # a flag wins
    monkeypatch.delenv("SYNC_INTERVAL")
    assert AgentEnvironment.read().agent_settings(AgentSettings()).sync_interval == 5.0  # the guide's 5000 ms
    monkeypatch.setenv("SYNC_INTERVAL", "-1")
    with pytest.raises(ConfigError, match=r"^SYNC_INTERVAL must be >= 0, got -1$"):
        AgentEnvironment.read()


def test_the_guides_nats_url_is_read_when_the_operators_is_not_set():
    network = component_config("crdt-service").network
    assert load_config(env={"NATS_URL": "nats://guide:4222"}, network=network, agent_ids=()).nats_url == "nats://guide:4222"
    both = {"NATS_URL": "nats://guide:4222", "AGENTNET_NATS_URL": "nats://operator:4222"}
    assert load_config(env=both, network=network, agent_ids=()).nats_url == "nats://operator:4222"


# --- processes started with the variables -----------------------------------------------------------------


def start(command: list[str], tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / "network.json"
    config.write_text(json.dumps(network_document(9)))
    log = tmp_path / "process.log"
    with log.open("w") as out:
        process = subprocess.Popen([AGENTNET, *command, "--config", str(config), "--host", "127.0.0.1"],
                                   stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})  # fmt: skip
    return process, log


def test_crdt_service_started_with_cache_size_mb_bounds_its_cache_in_bytes(tmp_path, nats_server):
    port, bound_mb = free_port(), 0.01  # 10 KiB: a few merges
    process, log = start(["component", "crdt-service", "--nats-url", nats_server.url, "--port", str(port)], tmp_path,
                         {"CACHE_SIZE_MB": str(bound_mb)})  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(process, f"{base}/ready", log), 60, "crdt-service to be ready")
        with httpx.Client(base_url=base, timeout=10) as client:
            for i in range(40):  # distinct events: each merge is a new cache entry
                state = EGraph(f"r{i}")
                state.add_term(parse(f"x{i}*(y+{i})"))
                assert client.post("/merge", json={"states": [state.to_wire()]}).status_code == 200
            cache = client.get("/health").json()["cache"]
    finally:
        process.terminate()
        process.wait(30)
    assert cache["maxBytes"] == int(bound_mb * 2**20)
    assert 0 < cache["bytes"] <= cache["maxBytes"] and cache["evictions"] > 0


def test_agents_started_with_agent_id_host_that_agent(tmp_path):
    port = free_port()
    process, log = start(["agent", "--nats-url", "nats://127.0.0.1:1", "--port", str(port)], tmp_path,
                         {"AGENT_ID": "4", "SYNC_INTERVAL": "250"})  # fmt: skip
    try:
        wait_for(lambda: answers(process, f"http://127.0.0.1:{port}/health", log), 60, "the agent to answer")
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
    finally:
        process.terminate()
        process.wait(30)
    assert health["agents"] == [4]


def test_a_wrong_variable_ends_the_process_at_start_naming_it(tmp_path):
    process, log = start(["component", "egraph-service", "--port", str(free_port())], tmp_path, {"SATURATION_TIMEOUT_MS": "-5"})
    assert process.wait(60) == 1
    assert "Error: SATURATION_TIMEOUT_MS must be > 0, got -5" in log.read_text()
