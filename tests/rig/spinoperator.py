"""The real spin-operator (SpinKube), built from its Go module by tests/spinoperator/build.sh,
with the module's own CRDs (SpinApp, SpinAppExecutor), run against the rig's control plane.

It runs with its admission webhooks off (its `--enable-webhooks` flag defaults to false): the
webhooks need a serving certificate (cert-manager in SpinKube's install) and only default and
check what agentnet's SpinApps already spell out (executor, replicas). What it cannot do here
is run the pods: SpinKube's containerd-shim-spin is not obtainable, so its Deployments' pods
ask for a RuntimeClass no node serves.
"""

from __future__ import annotations

from pathlib import Path

from rig import wait_established
from rig.gomodule import RunningController, build_script

CRD_NAMES = ("spinapps.core.spinkube.dev", "spinappexecutors.core.spinkube.dev")


def build() -> Path:
    """The spin-operator binary, built (or found) in the cache."""
    return build_script("spinoperator")


def crds() -> Path:
    """The directory of the module's own CRD manifests (SpinApp, SpinAppExecutor); no build."""
    return build_script("spinoperator", "--crds")


class RunningSpinOperator(RunningController):
    """spin-operator as a subprocess against `kubeconfig`, watching every namespace."""

    def __init__(self, binary: Path, kubeconfig: Path, log: Path):
        super().__init__([str(binary), f"--kubeconfig={kubeconfig}", "--metrics-bind-address=0",
                          "--leader-elect=false"], log, "spin-operator")


def install_crds(kubectl) -> None:
    """Apply the real CRDs (server-side, so a second apply by another test changes nothing) and
    wait until the API server serves them."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds()))
    for crd in CRD_NAMES:
        wait_established(kubectl, crd)
