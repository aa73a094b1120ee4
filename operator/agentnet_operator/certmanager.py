"""TLS of a managed NATS cluster from cert-manager, when its Certificate CRD is served: the
objects the network owns, as pure functions of the spec.

| object | what |
|---|---|
| Issuer `<net>-nats-selfsigned` | self-signed: signs the CA only |
| Certificate `<net>-nats-ca` | the network's CA (isCA), written by cert-manager to Secret `<net>-nats-ca` |
| Issuer `<net>-nats-ca` | signs with that CA |
| Certificate `<net>-nats-tls` | the servers' certificate for every server's DNS name, written to Secret `<net>-nats-tls` with the CA's certificate (ca.crt) |

So the Secrets the NATS pods and the clients mount have the names and keys of the operator's own
path (tls.py): the pods do not change with the path. Lifetimes and renewal are tls.py's, so both
paths renew alike. A per-network chain, not a cluster-wide issuer: each network trusts its own CA only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from agentnet_operator import names
from agentnet_operator.children import child_metadata
from agentnet_operator.model import AgentNetwork
from agentnet_operator.tls import CA_LIFETIME, CERT_LIFETIME, RENEW_AT, _common_name

PRIVATE_KEY = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}  # as tls.py's keys
# The servers' certificate serves clients and is a route's client certificate (servers verify each other).
SERVER_USAGES = ["digital signature", "server auth", "client auth"]
FIRST_REVISION = 1  # status.revision of a Certificate's first issuance


@dataclass(frozen=True)
class FromCertManager:
    """A managed cluster's TLS comes from cert-manager; revision: of the servers' Certificate."""

    revision: int = FIRST_REVISION


def _duration(lifetime: timedelta) -> str:
    """A Go duration in whole hours, as cert-manager's API takes it."""
    return f"{int(lifetime.total_seconds()) // 3600}h"


def _issuer_ref(name: str) -> dict[str, str]:
    return {"name": name, "kind": names.ISSUER_KIND, "group": names.CERT_MANAGER_API_VERSION.split("/")[0]}


def _object(network: AgentNetwork, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": names.CERT_MANAGER_API_VERSION, "kind": kind,
            "metadata": child_metadata(network, name, names.ROLE_NATS, app=names.NATS_APP_NAME), "spec": spec}


def _certificate(network: AgentNetwork, name: str, issuer: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A Certificate whose Secret (named as it) carries the network's labels: the operator watches
    it as it does its own Secrets."""
    return _object(network, names.CERTIFICATE_KIND, name, {
        "secretName": name,
        "secretTemplate": {"labels": names.labels(network.name, names.ROLE_NATS, app=names.NATS_APP_NAME)},
        "issuerRef": _issuer_ref(issuer),
        "privateKey": dict(PRIVATE_KEY),
        "renewBeforePercentage": round((1 - RENEW_AT) * 100),
        **spec,
    })


def tls_objects(network: AgentNetwork, dns_names: list[str]) -> list[dict[str, Any]]:
    """The Issuers and Certificates of the network's NATS TLS, in apply order (each after what it
    refers to). dns_names: what the servers' certificate is for."""
    if not dns_names:
        raise ValueError("the servers' Certificate needs at least one DNS name")
    net = network.name
    selfsigned, ca = names.nats_selfsigned_name(net), names.nats_ca_name(net)
    return [
        _object(network, names.ISSUER_KIND, selfsigned, {"selfSigned": {}}),
        _certificate(network, ca, selfsigned, {
            "isCA": True, "commonName": _common_name(f"{net}.{network.namespace} NATS CA"),
            "duration": _duration(CA_LIFETIME)}),
        _object(network, names.ISSUER_KIND, ca, {"ca": {"secretName": ca}}),
        _certificate(network, names.nats_tls_name(net), ca, {
            "dnsNames": list(dns_names), "usages": list(SERVER_USAGES), "duration": _duration(CERT_LIFETIME)}),
    ]


def revision(certificate: Mapping[str, Any] | None) -> int:
    """How many times cert-manager has issued the Certificate (status.revision); before the first
    issuance the first, so the NATS servers start once on it and restart only when it is renewed."""
    return int(((certificate or {}).get("status") or {}).get("revision") or FIRST_REVISION)


def ready(certificate: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether cert-manager reports the Certificate Ready, and its reason and message when not."""
    for condition in (certificate.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return True, ""
            return False, f"{condition.get('reason', 'NotReady')}: {condition.get('message', '')}".rstrip(": ")
    return False, "not issued yet"


def crd_served(crd: Mapping[str, Any]) -> bool:
    """Whether a CustomResourceDefinition (cert-manager's Certificate) is Established and serves the
    version the operator writes."""
    version = names.CERT_MANAGER_API_VERSION.split("/")[1]
    served = any(v.get("name") == version and v.get("served") for v in (crd.get("spec") or {}).get("versions") or ())
    established = any(c.get("type") == "Established" and c.get("status") == "True"
                      for c in (crd.get("status") or {}).get("conditions") or ())
    return served and established
