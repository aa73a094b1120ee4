"""Shared fixtures of the operator's tests: unit tests (no cluster), and the CRD and
a running operator for the tests against a real API server."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentnet_operator import names
from rig import EXISTING_KUBECONFIG, wait_established
from rig.operator import RunningOperator

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CRDS = REPO / "crds"
RESYNC_SECONDS = 1.0  # the operator fixture's resync period

PASSWORD = "p" * 24
UID = "0b1c2d3e-0000-4000-8000-000000000001"


def _tls():
    from datetime import UTC, datetime

    from agentnet_operator.tls import TlsMaterial, issue_ca, issue_server

    now = datetime.now(UTC)
    ca_cert, ca_key = issue_ca("test CA", now)
    return TlsMaterial(ca_cert, ca_key, *issue_server(ca_cert, ca_key, ["nats.test"], now))


TLS = _tls()  # a real CA and certificate, made once for the unit tests
SECRETS = {"nats_password": PASSWORD, "nats_tls": TLS}  # desired_children's secrets of a managed NATS cluster


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


# --- against a real API server ------------------------------------------------------


@pytest.fixture(scope="session")
def agentnet_crd(kubectl):
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    wait_established(kubectl, names.CRD_NAME)


@pytest.fixture
def operator(agentnet_crd, kubeconfig, namespace, tmp_path) -> Iterator[RunningOperator]:
    running = RunningOperator(kubeconfig, tmp_path / "operator.log", namespace=namespace,
                              resync_seconds=RESYNC_SECONDS)
    yield running
    running.stop()
    print(f"operator log (tail):\n{running.log.read_text()[-4000:]}")  # shown when the test failed


@pytest.fixture
def audit_log(kubeconfig) -> Path | None:
    """The local rig's audit log of every write; None on an existing cluster."""
    return None if EXISTING_KUBECONFIG else kubeconfig.parent / "audit.log"
