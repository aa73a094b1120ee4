"""Shared fixtures of the operator's unit tests (no cluster)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CRDS = REPO / "crds"

PASSWORD = "p" * 24
UID = "0b1c2d3e-0000-4000-8000-000000000001"


def load_example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


def network_from(body: dict[str, Any], *, namespace: str = "demo", uid: str = UID, generation: int = 1):
    from agentnet_operator.model import AgentNetwork

    body = {
        **body,
        "metadata": {**body.get("metadata", {}), "namespace": namespace, "uid": uid, "generation": generation},
    }
    return AgentNetwork.from_body(body)


@pytest.fixture
def example_network():
    """examples/network.yaml as the operator would read it."""
    return network_from(load_example("network.yaml"))


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server does: fill in defaults, recursively, also inside defaulted values."""
    if isinstance(value, dict) and schema.get("type") == "object":
        value = dict(value)
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
        if "additionalProperties" in schema:
            value = {k: apply_defaults(schema["additionalProperties"], v) for k, v in value.items()}
    elif isinstance(value, list) and schema.get("type") == "array":
        value = [apply_defaults(schema["items"], v) for v in value]
    return value
