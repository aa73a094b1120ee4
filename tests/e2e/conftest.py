"""Fixtures for the tests on real pods: the runtime image on the node, the operator
installed by its Helm chart (a real pod, cluster-wide, in its own namespace) and
namespaces whose pods run on the rig's real node.

Every test module here marks its tests `pytest.mark.xdist_group("real-node")`
(E2E in e2e_support): they run one after another on one worker, because real containers on two cores are the scarce resource, and
they share one installed operator. The other workers meanwhile run the rest of
the suite, whose namespaces (t-*) the installed operator is told to leave alone.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from agentnet_runtime import __version__
from rig import EXISTING_KUBECONFIG, health, images, rig_logs, wait_for

from e2e_support import OPERATOR_NAMESPACE, OPERATOR_REPLICAS, RELEASE, pods_ready

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "agentnet"
# On an existing cluster the image must be there already (kind: `kind load docker-image`).
IMAGE_ENV = "AGENTNET_TEST_IMAGE"


LOG_LINES = 30  # of each container (probes' access lines left out), beside a failed test's report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test on real pods reports the last lines of its namespace's and the operator's logs too:
    a CI run is not kept, and what a pod logged is what explains most timeouts there."""
    report = yield
    funcargs = getattr(item, "funcargs", {})
    if report.when == "call" and report.failed and "real_namespace" in funcargs:
        namespaces = [funcargs["real_namespace"], *([OPERATOR_NAMESPACE] if "installed_operator" in funcargs else [])]
        report.sections.append(("pod logs", health.pod_logs(funcargs["k8s"], namespaces, LOG_LINES)))
        report.sections.append(("the cluster's nodes and system pods", health.report(funcargs["k8s"], rig_logs())))
    return report


@pytest.fixture(scope="session")
def runtime_image() -> str:
    """The agentnet image every pod of these tests runs (built by `make image`; the rig
    imported it into its node's containerd at start)."""
    if EXISTING_KUBECONFIG:
        return os.environ.get(IMAGE_ENV, f"ghcr.io/agentnet/agentnet-runtime:{__version__}")
    return images.runtime().reference


@pytest.fixture(scope="session")
def installed_operator(k8s: client.ApiClient, helm: Callable[..., str], runtime_image: str) -> Iterator[str]:
    """`helm install` of the chart: the operator runs as a pod in its own namespace,
    watching every namespace but the other tests' (t-*, which run their own operator)."""
    repository, tag = runtime_image.rsplit(":", 1)
    helm("install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
         "--set-string", f"image.repository={repository}", "--set-string", f"image.tag={tag}",
         "--set", "ignoreNamespaces={t-*}", "--set", "operator.resyncSeconds=10", "--wait", "--timeout", "300s")
    core = client.CoreV1Api(k8s)
    wait_for(lambda: pods_ready(core, OPERATOR_NAMESPACE, f"app.kubernetes.io/instance={RELEASE}",
                                 OPERATOR_REPLICAS), 120, "the operator pods to be Ready")
    yield OPERATOR_NAMESPACE
    helm("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait", check=False)
    core.delete_namespace(OPERATOR_NAMESPACE)


@pytest.fixture
def real_namespace(request: pytest.FixtureRequest, k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace whose pods run on the real node, deleted afterwards."""
    health.wait_until_healthy(k8s)
    core = client.CoreV1Api(k8s)
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{stem}-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items),
             30, f"the default ServiceAccount in {name}")
    yield name
    core.delete_namespace(name)
