"""Test rig: real parts (Kubernetes control plane, nats-server) for the suite."""

import os
import time
from collections.abc import Callable

# Set to run the suite against an existing cluster (kind or any other) instead of the local rig.
EXISTING_KUBECONFIG = os.environ.get("AGENTNET_TEST_KUBECONFIG")


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll until `predicate()` is truthy and return its value; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
