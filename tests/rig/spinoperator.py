"""The real spin-operator (SpinKube), built from its Go module by tests/spinoperator/build.sh,
with the module's own CRDs (SpinApp, SpinAppExecutor), run against the rig's control plane.

It runs with its admission webhooks off (its `--enable-webhooks` flag defaults to false): the
webhooks need a serving certificate (cert-manager in SpinKube's install) and only default and
check what agentnet's SpinApps already spell out (executor, replicas). What it cannot do here
is run the pods: SpinKube's containerd-shim-spin is not obtainable, so its Deployments' pods
ask for a RuntimeClass no node serves.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rig import answers, wait_for
from rig.controlplane import die_with_parent, free_port, stop_process

BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "spinoperator" / "build.sh"
BUILD_TIMEOUT = 3600  # a cold build takes minutes on a busy 2-core machine
CRD_NAMES = ("spinapps.core.spinkube.dev", "spinappexecutors.core.spinkube.dev")


def _build(*args: str) -> Path:
    result = subprocess.run(["bash", str(BUILD_SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"tests/spinoperator/build.sh {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def build() -> Path:
    """The spin-operator binary, built (or found) in the cache."""
    return _build()


def crds() -> Path:
    """The directory of the module's own CRD manifests (SpinApp, SpinAppExecutor); no build."""
    return _build("--crds")


class RunningSpinOperator:
    """spin-operator as a subprocess against `kubeconfig`, watching every namespace."""

    def __init__(self, binary: Path, kubeconfig: Path, log: Path):
        probe_port = free_port()
        self.log = log
        self.process = subprocess.Popen(
            [str(binary), f"--kubeconfig={kubeconfig}", "--metrics-bind-address=0",
             f"--health-probe-bind-address=127.0.0.1:{probe_port}", "--leader-elect=false"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        wait_for(lambda: answers(self.process, f"http://127.0.0.1:{probe_port}/readyz", log), 60,
                 "spin-operator's readiness probe")

    def stop(self) -> None:
        stop_process(self.process)


def install_crds(kubectl) -> None:
    """Apply the real CRDs (server-side, so a second apply by another test changes nothing) and
    wait until the API server serves them."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds()))
    for crd in CRD_NAMES:
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
