"""Fixtures on real parts: a Kubernetes control plane shared by the whole run,
a fresh namespace per test, and a real nats-server per test.

The control plane is the local rig (tests/rig/controlplane.py), started once per
run even under pytest-xdist (the first worker that needs it starts it; the others
reuse it) and stopped when the run ends — or when the run is killed, because its
supervisor watches this process. Set AGENTNET_TEST_KUBECONFIG to run the same
suite against an existing cluster (kind or any other) instead.
"""

import fcntl
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from kubernetes import client, config

from agentnet_runtime.core import compiled_modules
from agentnet_runtime.natsbin import EmbeddedNats

from rig import EXISTING_KUBECONFIG, RIG_DIR_ENV, RIG_OWNER_ENV, controlplane, health, rig_logs, wait_for
from rig.node import fake_node_namespace

# No per-example deadline anywhere: it is a timed assert, and it failed property tests whenever the
# machine was busy (speed is measured in `make bench`).
settings.register_profile("agentnet", deadline=None)
settings.load_profile("agentnet")


def pytest_sessionstart(session: pytest.Session) -> None:
    # An edited engine module is not what runs until it is compiled again (setup.py).
    stale = [name for name, path in compiled_modules().items()
             if path.with_name(f"{name}.py").stat().st_mtime > path.stat().st_mtime]
    if stale:
        raise pytest.UsageError(f"agentnet_runtime.core: {', '.join(sorted(stale))} changed since compiled; "
                                "run `make setup` to compile them again")


def pytest_configure(config: pytest.Config) -> None:
    # Runs in the controller before xdist spawns its workers, which inherit the
    # environment: one rig directory and one owner process for the whole run.
    if not hasattr(config, "workerinput") and RIG_DIR_ENV not in os.environ:
        os.environ[RIG_DIR_ENV] = tempfile.mkdtemp(prefix="agentnet-rig-")
        os.environ[RIG_OWNER_ENV] = str(os.getpid())
        config.stash[_owns_rig] = True


def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[_failed] = session.testsfailed


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_owns_rig, False):
        if config.stash.get(_failed, 0):
            _print_rig_health(config)
        rig_dir = Path(os.environ.pop(RIG_DIR_ENV))
        controlplane.down(rig_dir / "controlplane")
        shutil.rmtree(rig_dir, ignore_errors=True)


_owns_rig = pytest.StashKey[bool]()
_failed = pytest.StashKey[int]()


def _print_rig_health(config: pytest.Config) -> None:
    """After a run with failures, the state of the rig's node and system pods as the run left them: a CI
    run is not kept, and a rig gone wrong explains many failures at once. Printed last, after the summary."""
    kubeconfig = Path(os.environ[RIG_DIR_ENV]) / "controlplane" / "kubeconfig"
    if not controlplane.running(kubeconfig.parent):
        return  # no test started the rig
    try:
        text = health.report(config_client(kubeconfig), rig_logs())
    except Exception as error:  # the API server itself gone: say that
        text = f"(no report: {error!r})"
    print(f"\n===== the rig at the end of this run =====\n{text}", flush=True)


def config_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def rig_bin() -> Path:
    """Directory of the pinned binaries (kubectl, helm, kube-apiserver, ...)."""
    return controlplane.build_binaries()


@pytest.fixture(scope="session")
def kubeconfig(rig_bin: Path) -> Path:
    if EXISTING_KUBECONFIG:
        return Path(EXISTING_KUBECONFIG)
    rig_dir = Path(os.environ[RIG_DIR_ENV])
    with open(rig_dir / "controlplane.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker starts it, the rest wait and reuse it
        return controlplane.up(rig_dir / "controlplane", watch_pid=int(os.environ[RIG_OWNER_ENV]))


@pytest.fixture(scope="session")
def prometheus_bin() -> Path:
    """A real Prometheus binary, built from its Go module once and cached."""
    from rig.prometheus import build_prometheus

    return build_prometheus()


@pytest.fixture(scope="session")
def k8s(kubeconfig: Path) -> client.ApiClient:
    return config_client(kubeconfig)


def _cli(binary: Path, kubeconfig: Path) -> Callable[..., str]:
    def run(*args: str, input: str | None = None, check: bool = True) -> str:
        result = subprocess.run([str(binary), f"--kubeconfig={kubeconfig}", *args],
                                input=input, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"{binary.name} {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result.stdout
    return run


@pytest.fixture(scope="session")
def kubectl(rig_bin: Path, kubeconfig: Path) -> Callable[..., str]:
    return _cli(rig_bin / "kubectl", kubeconfig)


@pytest.fixture(scope="session")
def helm(rig_bin: Path, kubeconfig: Path) -> Callable[..., str]:
    return _cli(rig_bin / "helm", kubeconfig)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace named after the test, deleted afterwards. Its pods go to
    kwok's fake node: most tests check objects, and hundreds of real containers
    would not fit on two cores (real_namespace is for real pods)."""
    health.wait_until_healthy(k8s)
    core = client.CoreV1Api(k8s)
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{stem}-{secrets.token_hex(3)}"
    core.create_namespace(fake_node_namespace(name))

    def default_service_account_exists() -> bool:
        return any(sa.metadata.name == "default"
                   for sa in core.list_namespaced_service_account(name).items)

    wait_for(default_service_account_exists, 30, f"the default ServiceAccount in {name}")
    yield name
    core.delete_namespace(name)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A real nats-server with JetStream on a free loopback port; stop() and start()
    again keep its port and store, so tests can take NATS away mid-run."""
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    yield server
    server.stop()
