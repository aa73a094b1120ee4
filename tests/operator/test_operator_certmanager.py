"""A managed NATS cluster's TLS from cert-manager (certmanager.py): the Issuer and Certificate chain
the operator writes, the NATS pods and clients mounting what cert-manager writes from it, the
servers restarting on a renewal only, and the status saying which path issues the certificates.
tests/e2e/test_e2e_certmanager.py runs it with the real cert-manager on real pods."""

from __future__ import annotations

import asyncio
import copy
import fnmatch
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import PASSWORD, SECRETS, load_example, network_from
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_operator import certmanager, names, nats_children, tls
from agentnet_operator.certmanager import FromCertManager
from agentnet_operator.children import desired_children
from agentnet_operator.cluster import replacement
from agentnet_operator.model import AgentNetwork
from agentnet_operator.status import compute_status

CM = names.CERT_MANAGER_API_VERSION
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def network_with(name: str = "ramanujan", namespace: str = "demo", **nats: Any) -> AgentNetwork:
    body = load_example("network.yaml")
    body["metadata"]["name"] = name
    body["spec"]["nats"] = {"managed": True, **nats}
    return network_from(body, namespace=namespace)


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def from_cert_manager(network: AgentNetwork, revision: int = 1) -> dict[tuple[str, str], dict[str, Any]]:
    return by_key(desired_children(network, nats_password=PASSWORD, nats_tls=FromCertManager(revision)))


def restart_digest(objects: dict[tuple[str, str], dict[str, Any]]) -> str:
    template = objects[("StatefulSet", "ramanujan-nats")]["spec"]["template"]
    return template["metadata"]["annotations"][names.ANNOTATION_CONFIG_DIGEST]


def test_a_self_signed_issuer_signs_the_ca_whose_issuer_signs_the_servers_certificate() -> None:
    network = network_with()
    objects = certmanager.tls_objects(network, nats_children.certificate_names(network))
    assert [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects] == [
        (CM, "Issuer", "ramanujan-nats-selfsigned"), (CM, "Certificate", "ramanujan-nats-ca"),
        (CM, "Issuer", "ramanujan-nats-ca"), (CM, "Certificate", "ramanujan-nats-tls")]  # each after what it names
    selfsigned, ca, ca_issuer, served = (o["spec"] for o in objects)
    assert selfsigned == {"selfSigned": {}}
    assert ca["isCA"] is True and ca["issuerRef"] == {"name": "ramanujan-nats-selfsigned", "kind": "Issuer",
                                                     "group": "cert-manager.io"}
    assert ca_issuer == {"ca": {"secretName": ca["secretName"]}}
    assert served["issuerRef"]["name"] == "ramanujan-nats-ca" and "isCA" not in served
    # the Secrets have the names the operator's own path gives them: the pods do not change with the path
    assert (ca["secretName"], served["secretName"]) == (names.nats_ca_name("ramanujan"), names.nats_tls_name("ramanujan"))
    assert served["dnsNames"] == nats_children.certificate_names(network)
    assert served["usages"] == ["digital signature", "server auth", "client auth"]  # a route's client too
    # lifetimes and renewal as tls.py's: both paths renew alike
    assert (ca["duration"], served["duration"]) == ("87600h", "2160h")
    assert tls.CA_LIFETIME.total_seconds() == 87600 * 3600 and tls.CERT_LIFETIME.total_seconds() == 2160 * 3600
    assert served["renewBeforePercentage"] == ca["renewBeforePercentage"] == 33  # renewed at 2/3 of a lifetime
    assert served["privateKey"] == {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
    for obj in objects:  # owned by the network: garbage-collected with it, watched as its children
        meta = obj["metadata"]
        assert meta["namespace"] == "demo" and meta["ownerReferences"][0]["uid"] == network.metadata.uid
        assert meta["ownerReferences"][0]["controller"] is True
        assert meta["labels"][names.LABEL_MANAGED_BY] == names.MANAGED_BY
    # cert-manager's Secrets carry the network's labels, so the operator's watch sees them
    assert served["secretTemplate"]["labels"] == objects[3]["metadata"]["labels"]


def test_no_certificate_without_a_name() -> None:
    with pytest.raises(ValueError, match="at least one DNS name"):
        certmanager.tls_objects(network_with(), [])


def test_with_cert_manager_the_operator_writes_no_key_and_the_pods_mount_what_cert_manager_writes() -> None:
    generated = by_key(desired_children(network_with(), **SECRETS))
    objects = from_cert_manager(network_with())
    assert ("Secret", "ramanujan-nats-ca") not in objects and ("Secret", "ramanujan-nats-tls") not in objects
    assert ("Certificate", "ramanujan-nats-tls") in objects and ("Issuer", "ramanujan-nats-ca") in objects
    assert not [o for o in generated.values() if o["apiVersion"] == CM]
    # The same pods on either path: servers mount the Secret of the servers' Certificate, clients its ca.crt.
    for kind, name in (("StatefulSet", "ramanujan-nats"), ("StatefulSet", "ramanujan-agents"),
                       ("Deployment", "ramanujan-stream-red")):
        pod, other = (o[(kind, name)]["spec"]["template"]["spec"] for o in (objects, generated))
        assert pod["volumes"] == other["volumes"] and pod["containers"][0]["env"] == other["containers"][0]["env"]
    # The Certificates come before the StatefulSet whose pods mount their Secret.
    order = [key for key in objects]
    assert order.index(("Certificate", "ramanujan-nats-tls")) < order.index(("StatefulSet", "ramanujan-nats"))


def test_servers_restart_when_cert_manager_renews_their_certificate_and_not_when_it_first_issues_it() -> None:
    network = network_with()
    unissued = restart_digest(from_cert_manager(network, certmanager.revision(None)))
    first = {"status": {"revision": 1, "conditions": [{"type": "Ready", "status": "True"}]}}
    assert restart_digest(from_cert_manager(network, certmanager.revision(first))) == unissued
    renewed = {"status": {"revision": 2}}
    assert restart_digest(from_cert_manager(network, certmanager.revision(renewed))) != unissued
    assert restart_digest(from_cert_manager(network, 1)) != restart_digest(by_key(desired_children(network, **SECRETS)))


def test_readiness_as_cert_manager_reports_it() -> None:
    assert certmanager.ready({}) == (False, "not issued yet")
    assert certmanager.ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}) == (True, "")
    failing = {"status": {"conditions": [{"type": "Issuing", "status": "True"}, {
        "type": "Ready", "status": "False", "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist"}]}}
    assert certmanager.ready(failing) == (False, "DoesNotExist: Issuing certificate as Secret does not exist")


def crd(*, served: bool = True, established: str = "True", version: str = "v1") -> dict[str, Any]:
    return {"metadata": {"name": names.CERTIFICATE_CRD},
            "spec": {"versions": [{"name": version, "served": served, "storage": True}]},
            "status": {"conditions": [{"type": "NamesAccepted", "status": "True"},
                                      {"type": "Established", "status": established}]}}


def test_cert_manager_counts_as_installed_once_its_certificate_crd_is_established_and_serves_v1() -> None:
    assert certmanager.crd_served(crd())
    assert not certmanager.crd_served(crd(served=False))
    assert not certmanager.crd_served(crd(established="False"))
    assert not certmanager.crd_served(crd(version="v1alpha2"))
    assert not certmanager.crd_served({"metadata": {"name": names.CERTIFICATE_CRD}})  # just created


def observed(objects: dict[tuple[str, str], dict[str, Any]], certificate_status: dict[str, Any]) -> list[dict[str, Any]]:
    """The children as the API server holds them: workloads ready, the Certificate as cert-manager left it."""
    out = []
    for obj in copy.deepcopy(list(objects.values())):
        replicas = obj.get("spec", {}).get("replicas", 1)
        if obj["kind"] in ("StatefulSet", "Deployment"):
            obj["status"] = {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
                             "updatedReplicas": replicas, "availableReplicas": replicas,
                             "currentRevision": "r1", "updateRevision": "r1"}
        if obj["kind"] == "Certificate" and obj["metadata"]["name"] == "ramanujan-nats-tls":
            obj["status"] = certificate_status
        obj["metadata"]["generation"] = 1
        out.append(obj)
    return out


def test_status_says_who_issues_the_certificates_and_waits_for_cert_manager() -> None:
    network = network_with()
    objects = from_cert_manager(network)
    waiting = compute_status(network, observed(objects, {}), now=NOW)
    assert waiting["nats"]["certificates"] == "cert-manager" and waiting["nats"]["ready"] is False
    ready = {c["type"]: c for c in waiting["conditions"]}["Ready"]
    assert ready["status"] == "False" and "Certificate ramanujan-nats-tls: not issued yet" in ready["message"]
    issued = compute_status(network, observed(objects, {"revision": 1, "conditions": [
        {"type": "Ready", "status": "True"}]}), now=NOW)
    assert issued["nats"] == {"url": waiting["nats"]["url"], "ready": True, "certificates": "cert-manager"}
    assert {c["type"]: c for c in issued["conditions"]}["Ready"]["status"] == "True"
    generated = compute_status(network, observed(by_key(desired_children(network, **SECRETS)), {}), now=NOW)
    assert generated["nats"]["certificates"] == "operator" and generated["nats"]["ready"] is True


def test_a_secret_of_another_type_is_made_again() -> None:
    """cert-manager's CA Secret is kubernetes.io/tls, the operator's Opaque (type is immutable): when
    cert-manager is gone and the operator makes its own CA, the Secret is deleted and made again."""
    ours = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "ramanujan-nats-ca"}}
    assert replacement(ours, {**ours, "type": "kubernetes.io/tls"}) == "Background"
    assert replacement(ours, ours) is None
    assert replacement({**ours, "type": "kubernetes.io/tls"}, {**ours, "type": "kubernetes.io/tls"}) is None


NAME = st.from_regex(r"[a-z][a-z0-9]{0,14}", fullmatch=True)
NAMESPACE = st.from_regex(r"[a-z][-a-z0-9]{0,50}[a-z0-9]", fullmatch=True)


@settings(max_examples=50)
@given(name=NAME, namespace=NAMESPACE, replicas=st.sampled_from([1, 3, 5, 9]))
def test_the_servers_certificate_names_every_server_and_its_cas_name_fits_x509(
        name: str, namespace: str, replicas: int) -> None:
    network = network_with(name, namespace, replicas=replicas)
    objects = certmanager.tls_objects(network, nats_children.certificate_names(network))
    dns_names = objects[3]["spec"]["dnsNames"]
    for host in nats_children.server_hosts(network):  # what clients and routes dial
        assert any(fnmatch.fnmatchcase(host, pattern) and host.count(".") == pattern.count(".")
                   for pattern in dns_names), host
    assert len(objects[1]["spec"]["commonName"]) <= tls.COMMON_NAME_LIMIT


def test_the_operator_follows_cert_manager_being_installed_and_removed_unless_told_not_to() -> None:
    """The Certificate CRD's watch events switch the path and resync every network; other CRDs do nothing."""
    from kubernetes import client

    from agentnet_operator.cluster import Cluster
    from agentnet_operator.handlers import Controller

    async def events(controller: Controller) -> list[tuple[bool | None, set]]:
        controller.networks[("demo", "ramanujan")] = {}
        seen = []
        for type_, body, name in (("ADDED", crd(established="False"), names.CERTIFICATE_CRD),
                                  ("MODIFIED", crd(), names.CERTIFICATE_CRD),
                                  ("ADDED", crd(), "issuers.cert-manager.io"),
                                  ("DELETED", crd(), names.CERTIFICATE_CRD)):
            controller.queue.waiting.clear()
            await controller.on_crd(type=type_, body=body, name=name)
            seen.append((controller.cert_manager, set(controller.queue.waiting)))
        return seen

    queued = {("demo", "ramanujan")}
    following = asyncio.run(events(Controller(Cluster(client.ApiClient()))))
    assert following == [(False, queued), (True, queued), (True, set()), (False, queued)]
    told_not_to = asyncio.run(events(Controller(Cluster(client.ApiClient()), use_cert_manager=False)))
    assert told_not_to == [(False, set())] * 4
