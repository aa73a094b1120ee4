"""The real cert-manager, built from its Go module by tests/certmanager/build.sh (its controllers
for Issuers, Certificates and the CertificateRequests SelfSigned and CA issuers sign), with the
module's own CRDs, run against the rig's control plane.

Its webhook is not run: it only defaults and checks what agentnet's Certificates already spell out,
and the API server still checks them against the CRDs' schema. Nor is its cainjector (nothing here
has a caBundle to fill). It runs with --enable-certificate-owner-ref, so the Secrets it writes go
with their Certificate.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from agentnet_operator import names
from rig import answers, wait_for
from rig.controlplane import die_with_parent, free_port, stop_process

BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "certmanager" / "build.sh"
BUILD_TIMEOUT = 3600  # a cold build takes minutes on a busy 2-core machine


def _build(*args: str) -> Path:
    result = subprocess.run(["bash", str(BUILD_SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"tests/certmanager/build.sh {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def build() -> Path:
    """The cert-manager controller binary, built (or found) in the cache."""
    return _build()


def crds() -> Path:
    """The directory of the module's own CRD manifests (deploy/crds); no build."""
    return _build("--crds")


class RunningCertManager:
    """cert-manager's controllers as a subprocess against `kubeconfig`, watching every namespace."""

    def __init__(self, binary: Path, kubeconfig: Path, log: Path):
        probe_port = free_port()
        self.log = log
        self.process = subprocess.Popen(
            [str(binary), f"--kubeconfig={kubeconfig}", f"--health-probe-bind-address=127.0.0.1:{probe_port}",
             "--enable-certificate-owner-ref"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        wait_for(lambda: answers(self.process, f"http://127.0.0.1:{probe_port}/readyz", log), 120,
                 "cert-manager's readiness probe")

    def stop(self) -> None:
        stop_process(self.process)


def install_crds(kubectl) -> None:
    """Apply the real CRDs (server-side) and wait until the API server serves Certificates."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds()))
    kubectl("wait", "--for=condition=Established", f"crd/{names.CERTIFICATE_CRD}", "--timeout=60s")


def uninstall_crds(kubectl) -> None:
    """Delete the CRDs (and so every Issuer and Certificate): operators go back to their own CA."""
    kubectl("delete", "--ignore-not-found", "--wait", "-f", str(crds()))
