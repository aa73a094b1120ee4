"""Configuration: the same names and data the operator writes, environment first, flags override."""

from __future__ import annotations

import json

import pytest
from runtime_support import network_document

from agentnet_operator import names
from agentnet_runtime import config as runtime_config
from agentnet_runtime.config import ConfigError, NatsAuth, NetworkConfig, Retention, load_config


def test_environment_names_match_the_operator():
    for name in dir(names):
        if name.startswith("ENV_") and hasattr(runtime_config, name):
            assert getattr(runtime_config, name) == getattr(names, name), name
    used = ["ENV_POD_INDEX", "ENV_AGENTS_PER_POD", "ENV_CONFIG", "ENV_NATS_URL", "ENV_NATS_CREDENTIALS_DIR",
            "ENV_HTTP_PORT", "ENV_DATA_DIR", "ENV_POD_NAME", "ENV_NETWORK"]  # fmt: skip
    assert all(getattr(runtime_config, n) == getattr(names, n) for n in used)
    assert runtime_config.DEFAULT_CONFIG_PATH == f"{names.CONFIG_DIR}/{names.CONFIG_KEY}"


def test_pod_environment_gives_the_pod_its_block_of_agents(tmp_path):
    document = network_document(9)
    document["agentsPerPod"] = 4
    path = tmp_path / "network.json"
    path.write_text(json.dumps(document))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "user").write_text("agentnet\n")
    (creds / "password").write_text("secret\n")
    env = {
        names.ENV_CONFIG: str(path), names.ENV_POD_INDEX: "2", names.ENV_NATS_URL: "nats://nats:4222",
        names.ENV_NATS_CREDENTIALS_DIR: str(creds), names.ENV_HTTP_PORT: "9090", names.ENV_POD_NAME: "ramanujan-agents-2",
    }  # fmt: skip
    config = load_config(env)
    assert config.agent_ids == (8,)  # pod 2 of 4-agent blocks in a 9-agent network: just agent 8
    assert config.nats_url == "nats://nats:4222" and config.http_port == 9090 and config.data_dir is None
    assert config.nats_auth.connect_options() == {"user": "agentnet", "password": "secret"}
    assert config.pod_name == "ramanujan-agents-2"
    flags = load_config(env, pod_index=0, agents_per_pod=3, http_port=1234, nats_url="nats://other:4222", data_dir=str(tmp_path))
    assert flags.agent_ids == (0, 1, 2) and flags.http_port == 1234 and flags.nats_url == "nats://other:4222"
    assert flags.data_dir == tmp_path


def test_token_and_creds_files(tmp_path):
    (tmp_path / "token").write_text("t0k3n")
    assert NatsAuth.from_dir(str(tmp_path)).connect_options() == {"token": "t0k3n"}
    (tmp_path / "creds").write_text("-----BEGIN NATS USER JWT-----")
    assert NatsAuth.from_dir(str(tmp_path)).connect_options() == {"user_credentials": str(tmp_path / "creds")}
    assert NatsAuth.from_dir(None).connect_options() == {}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["nodes"][3].update(colour="PURPLE"), "nodes[3].colour must be one of RED, BLUE, GREEN"),
        (lambda d: d["nodes"][1].update(neighbours=[1]), "nodes[1].neighbours must be other agent ids"),
        (lambda d: d.pop("nodes"), "malformed network config"),
        (lambda d: d.update(retention=[]), "retention must be an object"),
        (lambda d: d.update(retention={"maxNodes": 999}), "retention.maxNodes must be an integer >= 1000"),
        (lambda d: d.update(retention={"maxNodes": 5000.5}), "retention.maxNodes must be an integer >= 1000"),
        (lambda d: d.update(retention={"timeline": 7}), "retention.timeline must be an object"),
        (lambda d: d.update(retention={"timeline": {"maxAgeSeconds": 0}}), "retention.timeline.maxAgeSeconds must be an integer >= 1"),
        (lambda d: d.update(retention={"timeline": {"maxEvents": True}}), "retention.timeline.maxEvents must be an integer >= 1"),
    ],
)
def test_bad_network_config_is_refused_by_name(change, message):
    document = network_document(9)
    change(document)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        NetworkConfig.from_json(document)


def test_bad_environment_is_refused_by_name(tmp_path):
    path = tmp_path / "network.json"
    path.write_text(json.dumps(network_document(9)))
    with pytest.raises(ConfigError, match="AGENTNET_POD_INDEX must be an integer"):
        load_config({names.ENV_CONFIG: str(path), names.ENV_POD_INDEX: "two"})
    with pytest.raises(ConfigError, match="hosts no agents"):
        load_config({names.ENV_CONFIG: str(path), names.ENV_POD_INDEX: "9"})
    with pytest.raises(ConfigError, match="cannot read the network config"):
        load_config({names.ENV_CONFIG: str(tmp_path / "missing.json")})


def test_retention_is_read_from_network_json_and_missing_parts_take_the_defaults():
    document = network_document(9)
    document.pop("retention", None)
    assert NetworkConfig.from_json(document).retention == Retention(None, 604_800, 1_000_000)
    document["retention"] = {"maxNodes": 5000, "timeline": {"maxAgeSeconds": 3600, "maxEvents": 100}}
    assert NetworkConfig.from_json(document).retention == Retention(5000, 3600, 100)
    document["retention"] = {"maxNodes": None, "timeline": {"maxEvents": 100}}
    assert NetworkConfig.from_json(document).retention == Retention(None, 604_800, 100)
