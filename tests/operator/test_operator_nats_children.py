"""The managed NATS cluster's objects (nats_children) and its TLS (tls): what the operator
writes, and that the very configuration it writes runs as a real cluster of nats-servers on
loopback (rig.natscluster): routes verified by TLS, streams on three servers, plain text refused."""

from __future__ import annotations

import asyncio
import base64
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import SECRETS, load_example, network_from
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentnet_operator import children, names, nats_children, tls
from agentnet_operator.children import desired_children
from agentnet_operator.model import AgentNetwork
from agentnet_runtime import natsclient
from rig.natscluster import LoopbackCluster

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def network_with(**nats: Any) -> AgentNetwork:
    body = load_example("network.yaml")
    body["spec"]["nats"] = {"managed": True, **nats}
    return network_from(body)


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def server_config(objects: dict[tuple[str, str], dict[str, Any]]) -> str:
    data = objects[("Secret", "ramanujan-nats")]["data"][names.NATS_SECRET_CONFIG]
    return base64.b64decode(data).decode()


# --- the model ----------------------------------------------------------------------------------


def test_three_servers_by_default_one_allowed_two_refused_naming_the_field() -> None:
    assert network_with().spec.nats.replicas == 3 and network_with().spec.stream_replicas == 3
    assert network_with(replicas=1).spec.stream_replicas == 1
    assert network_with(replicas=7).spec.stream_replicas == 3  # min(3, servers)
    with pytest.raises(ValidationError) as refused:
        network_with(replicas=2)
    assert refused.value.errors()[0]["loc"][-3:] == ("spec", "nats", "replicas")
    assert "1 or at least 3" in str(refused.value)
    with pytest.raises(ValidationError, match="less than or equal to 9"):
        network_with(replicas=10)
    external = network_from({**load_example("network.yaml"), "spec": {
        **load_example("network.yaml")["spec"], "nats": {"url": "nats://nats.infra:4222"}}})
    assert external.spec.stream_replicas == 1  # its size is not the network's to know


# --- the objects ----------------------------------------------------------------------------------


def test_a_cluster_of_three_routed_through_the_headless_service() -> None:
    objects = by_key(desired_children(network_with(), **SECRETS))
    sts = objects[("StatefulSet", "ramanujan-nats")]["spec"]
    assert sts["replicas"] == 3 and sts["podManagementPolicy"] == "Parallel"
    assert sts["serviceName"] == "ramanujan-nats-headless"
    config = server_config(objects)
    hosts = [f"ramanujan-nats-{k}.ramanujan-nats-headless.demo.svc" for k in range(3)]
    for host in hosts:
        assert f'"nats-route://{host}:6222"' in config
    assert "no_advertise: true" in config and 'name: "ramanujan"' in config
    assert config.count("tls {") == 2 and config.count("verify: true") == 1  # clients and routes; routes verified
    assert "server_name: $SERVER_NAME" in config
    (container,) = sts["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "SERVER_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    # JetStream's store on a claim per server
    assert [t["metadata"]["name"] for t in sts["volumeClaimTemplates"]] == [names.VOLUME_DATA]
    # clients get every server, by a name the certificate covers
    url = children.nats_url(network_with())
    assert url == ",".join(f"tls://{host}:4222" for host in hosts)
    names_covered = nats_children.certificate_names(network_with())
    assert all(f"*.{host.split('.', 1)[1]}" in names_covered for host in hosts)


def test_a_single_server_has_no_routes_and_no_budget() -> None:
    objects = by_key(desired_children(network_with(replicas=1), **SECRETS))
    assert "cluster {" not in server_config(objects)
    assert objects[("StatefulSet", "ramanujan-nats")]["spec"]["replicas"] == 1
    assert ("PodDisruptionBudget", "ramanujan-nats") not in objects
    assert children.nats_url(network_with(replicas=1)).count("tls://") == 1


def test_budget_and_spread_keep_a_majority_of_servers() -> None:
    objects = by_key(desired_children(network_with(), **SECRETS))
    pdb = objects[("PodDisruptionBudget", "ramanujan-nats")]["spec"]
    selector = names.selector_labels("ramanujan", names.ROLE_NATS, app=names.NATS_APP_NAME)
    assert pdb["maxUnavailable"] == 1 and pdb["selector"] == {"matchLabels": selector}
    pod = objects[("StatefulSet", "ramanujan-nats")]["spec"]["template"]["spec"]
    assert pod["topologySpreadConstraints"] == [{**nats_children.DEFAULT_SPREAD, "labelSelector": {"matchLabels": selector}}]
    # the user's own spread wins
    own = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}
    objects = by_key(desired_children(network_with(scheduling={"topologySpreadConstraints": [own]}), **SECRETS))
    pod = objects[("StatefulSet", "ramanujan-nats")]["spec"]["template"]["spec"]
    assert [c["topologyKey"] for c in pod["topologySpreadConstraints"]] == ["topology.kubernetes.io/zone"]


def test_tls_secrets_servers_mount_all_clients_only_the_ca() -> None:
    objects = by_key(desired_children(network_with(), **SECRETS))
    served = objects[("Secret", "ramanujan-nats-tls")]
    assert served["type"] == "kubernetes.io/tls"
    assert {k: base64.b64decode(v).decode() for k, v in served["data"].items()} == {
        "tls.crt": SECRETS["nats_tls"].cert, "tls.key": SECRETS["nats_tls"].key, "ca.crt": SECRETS["nats_tls"].ca_cert}
    ca = objects[("Secret", "ramanujan-nats-ca")]["data"]
    assert base64.b64decode(ca["ca.key"]).decode() == SECRETS["nats_tls"].ca_key
    server_pod = objects[("StatefulSet", "ramanujan-nats")]["spec"]["template"]["spec"]
    assert {"name": "nats-tls", "secret": {"secretName": "ramanujan-nats-tls"}} in server_pod["volumes"]
    for kind, name in (("StatefulSet", "ramanujan-agents"), ("Deployment", "ramanujan-stream-red")):
        pod = objects[(kind, name)]["spec"]["template"]["spec"]
        (ca_volume,) = [v for v in pod["volumes"] if v["name"] == names.VOLUME_NATS_CA]
        assert ca_volume["secret"] == {"secretName": "ramanujan-nats-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        assert not [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "ramanujan-nats-ca"]


def test_servers_restart_when_their_certificate_or_config_changes_and_only_then() -> None:
    def restart_digest(**kw: Any) -> str:
        objects = by_key(desired_children(network_with(), **{**SECRETS, **kw}))
        return objects[("StatefulSet", "ramanujan-nats")]["spec"]["template"]["metadata"]["annotations"][
            names.ANNOTATION_CONFIG_DIGEST]

    same = restart_digest()
    assert restart_digest() == same
    renewed = tls.ensure(SECRETS["nats_tls"], "test CA", ["other.name"], datetime.now(UTC))
    assert restart_digest(nats_tls=renewed) != same
    assert restart_digest(nats_password="q" * 24) != same


# --- the CA and certificate ----------------------------------------------------------------------


def test_ensure_keeps_what_is_good_and_renews_at_two_thirds_of_a_lifetime() -> None:
    dns = ["*.n-nats-headless.ns.svc", "n-nats"]
    first = tls.ensure(None, "CA", dns, NOW)
    assert tls.signed_by(first.cert, first.ca_cert) and sorted(tls.dns_names(first.cert)) == sorted(dns)
    assert tls.ensure(first, "CA", dns, NOW + timedelta(days=59)) is first
    renewed = tls.ensure(first, "CA", dns, NOW + timedelta(days=61))  # 2/3 of 90 days is 60
    assert renewed.ca_cert == first.ca_cert and renewed.cert != first.cert
    assert tls.signed_by(renewed.cert, first.ca_cert) and not tls.renewal_due(renewed.cert, NOW + timedelta(days=61))
    # other names, another CA's certificate, or text that is no certificate: a new one
    assert tls.ensure(first, "CA", [*dns, "more"], NOW).cert != first.cert
    foreign = tls.ensure(None, "other CA", dns, NOW)
    assert tls.ensure(tls.TlsMaterial(first.ca_cert, first.ca_key, foreign.cert, foreign.key), "CA", dns, NOW).cert \
        != foreign.cert
    broken = tls.ensure(tls.TlsMaterial(first.ca_cert, first.ca_key, "not a certificate", "x"), "CA", dns, NOW)
    assert tls.signed_by(broken.cert, first.ca_cert)
    # the CA itself, once due (2/3 of ten years), is made anew, and so is the certificate it signs
    later = NOW + timedelta(days=2434)
    new_ca = tls.ensure(first, "CA", dns, later)
    assert new_ca.ca_cert != first.ca_cert and tls.signed_by(new_ca.cert, new_ca.ca_cert)


def test_a_long_namespace_still_gets_its_certificates() -> None:
    """X.509 caps a common name at 64 characters; the names of a network in a long namespace pass it
    (the rig's e2e namespaces do), so the names are shortened there and the SANs carry them whole."""
    network = network_from({**load_example("network.yaml"), "metadata": {"name": "ramanujan"}},
                           namespace="e2e-test-the-example-network-runs-converges-b324ed")
    dns = nats_children.certificate_names(network)
    assert max(map(len, dns)) > 64
    material = tls.ensure(None, f"{network.name}.{network.namespace} NATS CA", dns, NOW)
    assert tls.signed_by(material.cert, material.ca_cert) and sorted(tls.dns_names(material.cert)) == sorted(dns)


@settings(max_examples=10)
@given(days=st.integers(0, 3650))
def test_a_certificate_is_due_exactly_after_two_thirds_of_its_lifetime(days: int) -> None:
    cert, _ = tls.issue_ca("CA", NOW)
    start = NOW - tls.CLOCK_SKEW
    lifetime = tls.CA_LIFETIME + tls.CLOCK_SKEW
    at = NOW + timedelta(days=days)
    assert tls.renewal_due(cert, at) == (at >= start + lifetime * tls.RENEW_AT)


def test_a_server_certificate_never_outlives_its_ca() -> None:
    ca_cert, ca_key = tls.issue_ca("CA", NOW - tls.CA_LIFETIME + timedelta(days=10))
    cert, _ = tls.issue_server(ca_cert, ca_key, ["a"], NOW)
    from cryptography import x509

    assert x509.load_pem_x509_certificate(cert.encode()).not_valid_after_utc <= \
        x509.load_pem_x509_certificate(ca_cert.encode()).not_valid_after_utc
    with pytest.raises(ValueError, match="at least one DNS name"):
        tls.issue_server(ca_cert, ca_key, [], NOW)


# --- the configuration, run by real nats-servers ---------------------------------------------------


async def replicated_stream(cluster: LoopbackCluster) -> tuple[int, list[str]]:
    client = await natsclient.connect(cluster.url, cluster.auth("stream-red"))  # it keeps the work queue's stream
    try:
        js = client.jetstream()
        need = natsclient.work_stream(3)
        async with asyncio.timeout(60):
            while True:  # the cluster elects its JetStream leader first
                try:
                    await need.create(js)
                    break
                except Exception:
                    await asyncio.sleep(0.5)
        info = await js.stream_info(natsclient.WORK_STREAM)
        peers = [info.cluster.leader, *(p.name for p in info.cluster.replicas or ())]
        return info.config.num_replicas, sorted(peers)
    finally:
        await client.close()


def test_the_written_configuration_forms_a_tls_cluster_keeping_streams_on_three_servers() -> None:
    with LoopbackCluster(3) as cluster:
        replicas, peers = asyncio.run(replicated_stream(cluster))
        assert replicas == 3 and peers == ["loop-nats-0", "loop-nats-1", "loop-nats-2"]
        logs = [(s.store_dir / "nats-server.log").read_text() for s in cluster.servers]
        assert all("TLS required for client connections" in log for log in logs)


def test_a_connection_without_tls_is_refused() -> None:
    """The server says it requires TLS, and closes a client that goes on in plain text without an answer."""
    with LoopbackCluster(1) as cluster:
        with socket.create_connection(("localhost", cluster.servers[0].port), timeout=10) as plain:
            info = plain.recv(4096)
            assert info.startswith(b"INFO ") and b'"tls_required":true' in info
            auth = cluster.auth("stream-red")  # good credentials, without TLS
            plain.sendall(f'CONNECT {{"user":"{auth.user}","pass":"{auth.password}"}}\r\nPING\r\n'.encode())
            answer = b""
            while chunk := plain.recv(4096):
                answer += chunk
            assert b"PONG" not in answer  # closed, never served


def test_a_single_server_made_before_clusters_is_replaced_keeping_its_pod() -> None:
    """podManagementPolicy cannot change: the old StatefulSet goes with its pods orphaned, the new one adopts them."""
    from agentnet_operator.cluster import replacement

    desired = by_key(desired_children(network_with(), **SECRETS))[("StatefulSet", "ramanujan-nats")]
    before = {**desired, "spec": {k: v for k, v in desired["spec"].items() if k != "podManagementPolicy"}}
    assert replacement(desired, before) == "Orphan"
    assert replacement(desired, {**desired, "spec": {**desired["spec"]}}) is None
