"""Test rig: real parts (Kubernetes control plane, nats-server) for the suite."""

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

# Set to run the suite against an existing cluster (kind or any other) instead of the local rig.
EXISTING_KUBECONFIG = os.environ.get("AGENTNET_TEST_KUBECONFIG")
# The directory of this run's rig and the process that owns it (tests/conftest.py sets both).
RIG_DIR_ENV, RIG_OWNER_ENV = "AGENTNET_RIG_DIR", "AGENTNET_RIG_OWNER_PID"


def rig_logs() -> Path | None:
    """The log directory of this run's rig (kube-proxy.log, kubelet.log, ...); None on an existing cluster."""
    if EXISTING_KUBECONFIG or RIG_DIR_ENV not in os.environ:
        return None
    return Path(os.environ[RIG_DIR_ENV]) / "controlplane" / "logs"


def wait_for(predicate: Callable[[], object], timeout: float, what: str | Callable[[], str], interval: float = 0.2):
    """Poll until `predicate()` is truthy and return its value; fail naming `what` (a callable: what it says then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def wait_established(kubectl: Callable[..., str], crd: str, timeout: float = 60) -> None:
    """Until the API server serves a CRD just applied. Neither `kubectl wait --for=condition=Established`
    ("accessor error") nor a jsonpath filter ("<nil> is not array") copes with a CRD that has no
    status conditions yet, so the conditions are read as JSON."""
    wait_for(lambda: condition_true(json.loads(kubectl("get", f"crd/{crd}", "-o", "json")), "Established"),
             timeout, f"CRD {crd} Established")


def condition_true(body: dict, kind: str) -> bool:
    """Whether an object's status has condition `kind` with status True (none yet: False)."""
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (body.get("status") or {}).get("conditions") or [])


def answers(process: subprocess.Popen, url: str, log: Path | None = None) -> bool:
    """Whether `url` answers 200 yet; fails at once (with the tail of `log`) if `process` has exited."""
    assert process.poll() is None, f"{process.args[0]} exited" + (f":\n{log.read_text()[-3000:]}" if log else "")
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
