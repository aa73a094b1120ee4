"""Shared fixtures of the operator's unit tests (no cluster)."""

from __future__ import annotations

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
