"""Certificates for the local control plane: one CA, a serving certificate for
the API server (and for the real node's kubelet), client certificates per
identity and the service-account key.
"""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
# Names under which in-cluster clients reach the API server.
SERVING_DNS = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local"]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, key, cert: x509.Certificate | None = None) -> None:
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    if cert is not None:
        path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY))


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _san(dns: list[str], ips: list[str]) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips])


def write_pki(directory: Path, api_ips: list[str], clients: dict[str, tuple[str, str | None]],
              servers: dict[str, tuple[str, list[str]]] | None = None) -> None:
    """Write ca.{crt,key}, apiserver.{crt,key}, sa.{key,pub}, <client>.{crt,key}
    and <server>.{crt,key}.

    `api_ips`: the addresses the API server is reached at (loopback, its
    Service IP, the address the real node sees). `clients` maps a file stem to
    (common name, organization) — Kubernetes reads them as user name and group.
    `servers` maps a file stem to (DNS name, IP addresses) of another serving
    certificate (the kubelet's, which the API server verifies).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("agentnet-test-ca")
    ca = (_builder(ca_name, ca_name, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write(directory / "ca", ca_key, ca)

    def issue(stem: str, subject: x509.Name, usage, san: x509.SubjectAlternativeName | None = None):
        key = _key()
        builder = (_builder(subject, ca_name, key.public_key())
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        _write(directory / stem, key, builder.sign(ca_key, hashes.SHA256()))

    issue("apiserver", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, _san(SERVING_DNS, api_ips))
    for stem, (dns_name, ips) in (servers or {}).items():
        issue(stem, _name(dns_name), ExtendedKeyUsageOID.SERVER_AUTH, _san([dns_name], ips))
    for stem, (common_name, organization) in clients.items():
        issue(stem, _name(common_name, organization), ExtendedKeyUsageOID.CLIENT_AUTH)

    sa_key = _key()
    _write(directory / "sa", sa_key)
    (directory / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
