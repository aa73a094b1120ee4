"""Test rig: real parts (Kubernetes control plane, nats-server) for the suite."""

import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

# Set to run the suite against an existing cluster (kind or any other) instead of the local rig.
EXISTING_KUBECONFIG = os.environ.get("AGENTNET_TEST_KUBECONFIG")


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
    """Until the API server serves a CRD just applied. Not `kubectl wait --for=condition=Established`:
    it fails at once ("accessor error") when the CRD has no status conditions yet."""
    jsonpath = "jsonpath={.status.conditions[?(@.type=='Established')].status}"
    wait_for(lambda: kubectl("get", f"crd/{crd}", "-o", jsonpath) == "True", timeout, f"CRD {crd} Established")


def answers(process: subprocess.Popen, url: str, log: Path | None = None) -> bool:
    """Whether `url` answers 200 yet; fails at once (with the tail of `log`) if `process` has exited."""
    assert process.poll() is None, f"{process.args[0]} exited" + (f":\n{log.read_text()[-3000:]}" if log else "")
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
