"""The real cert-manager, built from its Go module by tests/certmanager/build.sh (its controllers
for Issuers, Certificates and the CertificateRequests SelfSigned and CA issuers sign), with the
module's own CRDs, run against the rig's control plane.

Its webhook is not run: it only defaults and checks what agentnet's Certificates already spell out,
and the API server still checks them against the CRDs' schema. Nor is its cainjector (nothing here
has a caBundle to fill). It runs with --enable-certificate-owner-ref, so the Secrets it writes go
with their Certificate.
"""

from __future__ import annotations

from pathlib import Path

from agentnet_operator import names
from rig import wait_established
from rig.gomodule import RunningController, build_script


def build() -> Path:
    """The cert-manager controller binary, built (or found) in the cache."""
    return build_script("certmanager")


def crds() -> Path:
    """The directory of the module's own CRD manifests (deploy/crds); no build."""
    return build_script("certmanager", "--crds")


class RunningCertManager(RunningController):
    """cert-manager's controllers as a subprocess against `kubeconfig`, watching every namespace."""

    def __init__(self, binary: Path, kubeconfig: Path, log: Path):
        super().__init__([str(binary), f"--kubeconfig={kubeconfig}", "--enable-certificate-owner-ref"], log,
                         "cert-manager", timeout=120)


def install_crds(kubectl) -> None:
    """Apply the real CRDs (server-side) and wait until the API server serves Certificates."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds()))
    wait_established(kubectl, names.CERTIFICATE_CRD)


def uninstall_crds(kubectl) -> None:
    """Delete the CRDs (and so every Issuer and Certificate): operators go back to their own CA."""
    kubectl("delete", "--ignore-not-found", "--wait", "-f", str(crds()))
