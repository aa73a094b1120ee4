"""A managed NATS cluster's TLS from the real cert-manager (tests/rig/certmanager.py: its controllers
built from its Go module, its CRDs), on real pods, with the operator installed by Helm under the
chart's RBAC.

cert-manager is installed while the operator already runs: the operator notices its Certificate
CRD and, for a new network, writes a self-signed Issuer, a CA Certificate, a CA Issuer and the
servers' Certificate instead of making a CA itself. The Certificates become Ready, the three NATS
servers serve cert-manager's certificate (to clients and over their verified routes), the agents
converge; when cert-manager renews the certificate the servers restart onto the new one. Afterwards
the CRDs are deleted again, so the rig's other tests run the operator's own CA."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes import client

from agentnet_operator import names, tls
from e2e_support import E2E, agent_pod, converged, get_network, in_pod, is_ready, post_from_pod, pods_ready
from rig import EXISTING_KUBECONFIG, wait_for
from rig.certmanager import RunningCertManager, build, install_crds, uninstall_crds

pytestmark = E2E
NETWORK, AGENTS, SERVERS = "certs", 4, 3
CM_GROUP, CM_VERSION = names.CERT_MANAGER_API_VERSION.split("/")
TIMEOUT = 600  # pods on a busy 2-core node


@pytest.fixture(scope="module")
def cert_manager(kubeconfig: Path, kubectl, installed_operator, tmp_path_factory) -> Iterator[None]:
    """cert-manager's CRDs installed and its controllers running, after the operator started; on an
    existing cluster that already serves Certificates, its own cert-manager as it is."""
    if EXISTING_KUBECONFIG and names.CERTIFICATE_CRD in kubectl("get", "crd", "-o", "name"):
        yield
        return
    install_crds(kubectl)
    running = RunningCertManager(build(), kubeconfig, tmp_path_factory.mktemp("cert-manager") / "log")
    try:
        yield
    finally:
        running.stop()
        print(f"cert-manager log (tail):\n{running.log.read_text()[-4000:]}")
        uninstall_crds(kubectl)


def certs_network(image: str) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": NETWORK},
            "spec": {"agents": AGENTS, "topology": {"kind": "ring"}, "image": image,
                     "components": [{"name": "stream-red"}], "nats": {"managed": True, "replicas": SERVERS}}}


def certificate(k8s: client.ApiClient, ns: str, name: str) -> dict:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(CM_GROUP, CM_VERSION, ns, "certificates", name)


def cert_ready(k8s: client.ApiClient, ns: str, name: str, revision: int = 1) -> dict | None:
    found = certificate(k8s, ns, name)
    status = found.get("status") or {}
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
    return found if ready and status.get("revision") == revision else None


def fingerprint(pem: str) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)).hexdigest()


def secret_text(core: client.CoreV1Api, ns: str, name: str) -> tuple[client.V1Secret, dict[str, str]]:
    secret = core.read_namespaced_secret(name, ns)
    return secret, {k: base64.b64decode(v).decode() for k, v in secret.data.items()}


# Run in a pod of the network: a TLS handshake with one NATS server as its clients make it (the
# server's INFO in plain text, then TLS, verified with the CA the pod mounts); prints the
# sha256 of the certificate the server showed.
SERVED_CERTIFICATE = r"""
import hashlib, os, socket, ssl, sys
host = sys.argv[1]
context = ssl.create_default_context(cafile=os.environ["AGENTNET_NATS_CA_FILE"])
with socket.create_connection((host, 4222), timeout=20) as raw:
    info = b""
    while not info.endswith(b"\r\n"):
        info += raw.recv(1)
    assert info.startswith(b"INFO ") and b'"tls_required":true' in info, info
    with context.wrap_socket(raw, server_hostname=host) as secure:
        print(hashlib.sha256(secure.getpeercert(binary_form=True)).hexdigest())
"""

# The names of the servers one server has routes to (several connections each: nats-server pools them).
ROUTES = r"""
import httpx, json, sys
routes = httpx.get(f"http://{sys.argv[1]}:8222/routez", timeout=10).json()["routes"]
print(json.dumps(sorted({r["remote_name"] for r in routes})))
"""


def agent_url(agent: int) -> str:
    return f"http://{agent_pod(NETWORK, agent)}.{names.agents_name(NETWORK)}:8080/agent/{agent}/message"


def served_fingerprints(kubectl, ns: str, pod: str) -> list[str]:
    hosts = [names.nats_pod_host(NETWORK, ns, k) for k in range(SERVERS)]
    return [in_pod(kubectl, ns, pod, SERVED_CERTIFICATE, host).strip().splitlines()[-1] for host in hosts]


def test_nats_tls_from_cert_manager_on_real_pods(k8s, kubectl, cert_manager, real_namespace, runtime_image):
    ns, core = real_namespace, client.CoreV1Api(k8s)
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(certs_network(runtime_image)))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), TIMEOUT, "the network to be Ready")
    network = get_network(k8s, ns, NETWORK)
    assert network["status"]["nats"]["certificates"] == "cert-manager"
    events = core.list_namespaced_event(ns, field_selector="reason=Certificates").items
    assert [e.message for e in events] == ["NATS TLS certificates from cert-manager"]

    # The chain the operator owns, each Ready or issuing as cert-manager reports it.
    served_name, ca_name = names.nats_tls_name(NETWORK), names.nats_ca_name(NETWORK)
    served = wait_for(lambda: cert_ready(k8s, ns, served_name), 60, "the servers' Certificate Ready")
    ca = wait_for(lambda: cert_ready(k8s, ns, ca_name), 60, "the CA Certificate Ready")
    for obj in (served, ca):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (names.KIND, NETWORK, network["metadata"]["uid"])
    assert served["spec"]["issuerRef"]["name"] == ca_name and ca["spec"]["isCA"] is True
    issuers = client.CustomObjectsApi(k8s).list_namespaced_custom_object(CM_GROUP, CM_VERSION, ns, "issuers")["items"]
    assert {i["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True" for c in i["status"]["conditions"])
            for i in issuers} == {ca_name: True, names.nats_selfsigned_name(NETWORK): True}

    # cert-manager wrote both Secrets (the operator made no CA and holds no key of it).
    secret, pem = secret_text(core, ns, served_name)
    assert secret.type == "kubernetes.io/tls" and secret.metadata.annotations["cert-manager.io/certificate-name"] == served_name
    assert secret.metadata.owner_references[0].kind == names.CERTIFICATE_KIND
    ca_secret, ca_pem = secret_text(core, ns, ca_name)
    assert names.CA_KEY not in ca_pem and ca_secret.metadata.annotations["cert-manager.io/certificate-name"] == ca_name
    assert pem["ca.crt"] == ca_pem["tls.crt"] and tls.signed_by(pem["tls.crt"], pem["ca.crt"])
    assert sorted(tls.dns_names(pem["tls.crt"])) == sorted(served["spec"]["dnsNames"])

    # Every server shows that certificate to a client verifying it with the CA the pods mount, and
    # the servers route to each other (their routes verify the same certificates).
    stream_red = f"deploy/{names.component_name(NETWORK, 'stream-red')}"
    assert served_fingerprints(kubectl, ns, stream_red) == [fingerprint(pem["tls.crt"])] * SERVERS
    servers = [f"{names.nats_name(NETWORK)}-{k}" for k in range(SERVERS)]
    for k, server in enumerate(servers):
        routes = in_pod(kubectl, ns, stream_red, ROUTES, names.nats_pod_host(NETWORK, ns, k)).strip().splitlines()[-1]
        assert json.loads(routes) == [other for other in servers if other != server], f"{server}'s routes"

    # The agents talk over that NATS cluster and converge.
    for agent, term in enumerate(["x*(y+z)", "a+(b+c)"]):
        assert post_from_pod(kubectl, ns, stream_red, agent_url(agent), {"term": term})["status"] == 202
    before = wait_for(lambda: converged(k8s, ns, NETWORK, AGENTS), 300, "the agents to converge")

    # cert-manager renews the servers' certificate (as `cmctl renew` asks it to): the servers restart
    # onto the new one, one at a time, and the agents still converge.
    kubectl("-n", ns, "patch", "certificate", served_name, "--subresource=status", "--type=json", "-p", json.dumps([
        {"op": "add", "path": "/status/conditions/-", "value": {
            "type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
            "message": "renewal asked by the test", "lastTransitionTime": "2026-01-01T00:00:00Z"}}]))
    wait_for(lambda: cert_ready(k8s, ns, served_name, revision=2), 120, "the renewed Certificate (revision 2)")
    _, renewed = secret_text(core, ns, served_name)
    assert fingerprint(renewed["tls.crt"]) != fingerprint(pem["tls.crt"])
    nats_selector = f"{names.LABEL_INSTANCE}={NETWORK},{names.LABEL_COMPONENT}={names.ROLE_NATS}"

    def serving_renewed() -> bool:
        if not pods_ready(core, ns, nats_selector, SERVERS):
            return False
        try:
            return served_fingerprints(kubectl, ns, stream_red) == [fingerprint(renewed["tls.crt"])] * SERVERS
        except AssertionError:  # a server between two pods of the rolling restart: not reachable for a moment
            return False

    wait_for(serving_renewed, TIMEOUT, "every NATS server serving the renewed certificate", interval=5)
    assert post_from_pod(kubectl, ns, stream_red, agent_url(3), {"term": "p*(q*r)"})["status"] == 202
    after = wait_for(lambda: converged(k8s, ns, NETWORK, AGENTS), 300, "the agents to converge after the renewal")
    assert after[0]["digest"] != before[0]["digest"]
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), TIMEOUT, "the network Ready after the renewal")
