"""The network's API token Secret and spec.limits reach every agent and component pod (children.py), in
the variables the runtime's guard reads (settings.GuardSettings)."""

from __future__ import annotations

import base64

import pytest
from conftest import SECRETS, network_from
from pydantic import ValidationError

from agentnet_operator import names
from agentnet_operator.children import api_token_secret, desired_children, new_secret_value
from agentnet_runtime.settings import GuardSettings

TOKEN = "t" * 32


def _network(**spec):
    return network_from({"metadata": {"name": "ring"}, "spec": {"agents": 3, "topology": {"kind": "ring"}, **spec}})


def _containers(objects):
    for obj in objects:
        template = obj.get("spec", {}).get("template")
        if template and obj["metadata"]["name"] != names.nats_name("ring"):
            yield obj["metadata"]["name"], template["spec"]["containers"][0]


def test_every_pod_reads_the_token_from_the_networks_secret_and_the_limits_from_the_spec():
    network = _network(limits={"maxBodyBytes": 65536, "maxTermDepth": 40, "rateLimit": {"requests": 7, "periodSeconds": 9}})
    objects = desired_children(network, **SECRETS, api_token=TOKEN)
    secret = next(o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == names.api_token_name("ring"))
    assert base64.b64decode(secret["data"][names.API_TOKEN_KEY]).decode() == TOKEN
    assert secret["metadata"]["ownerReferences"][0]["controller"] is True
    pods = dict(_containers(objects))
    assert len(pods) == 1 + 11  # the agents and the eleven components
    for name, container in pods.items():
        env = {e["name"]: e for e in container["env"]}
        assert env["AGENTNET_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "ring-api-token", "key": "token"}, name
        read = {field: env[GuardSettings.env_name(field)]["value"] for field in GuardSettings.model_fields if field != "api_token"}
        assert read == {"max_body_bytes": "65536", "max_term_depth": "40", "max_term_size": "10000",
                        "rate_limit_requests": "7", "rate_limit_period_seconds": "9"}, name
        assert GuardSettings(**read).max_term_depth == 40  # what the pod's guard will hold


def test_the_defaults_are_guide_001s_rate_and_the_runtimes_limits():
    limits = _network().spec.limits.guard_settings()
    assert limits["rate_limit_requests"] == 100 and limits["rate_limit_period_seconds"] == 60
    defaults = GuardSettings()
    assert (limits["max_body_bytes"], limits["max_term_depth"], limits["max_term_size"]) == (
        defaults.max_body_bytes, defaults.max_term_depth, defaults.max_term_size)


def test_without_a_token_there_is_no_secret_and_a_bad_token_is_refused():
    assert not any(o["kind"] == "Secret" and o["metadata"]["name"] == "ring-api-token"
                   for o in desired_children(_network(), **SECRETS))
    assert len(new_secret_value()) >= 32 and new_secret_value() != new_secret_value()
    with pytest.raises(ValueError, match="API token must be 16-128 characters"):
        api_token_secret(_network(), "short")


@pytest.mark.parametrize("limits, field", [
    ({"maxTermDepth": 301}, "maxTermDepth"),
    ({"maxBodyBytes": 10}, "maxBodyBytes"),
    ({"rateLimit": {"requests": -1}}, "requests"),
])  # fmt: skip
def test_limits_out_of_bounds_are_refused_by_name(limits, field):
    with pytest.raises(ValidationError, match=field):
        _network(limits=limits)


def test_a_component_may_not_set_the_guards_variables():
    with pytest.raises(ValidationError, match=r"name is set by the operator and cannot be overridden \(AGENTNET_\*"):
        _network(components=[{"name": "crdt-service", "env": [{"name": "AGENTNET_MAX_BODY_BYTES", "value": "1"}]}])
