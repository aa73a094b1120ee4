"""TLS of a managed NATS cluster without cert-manager: a CA the operator makes and keeps in a
Secret, and the servers' certificate it signs, renewed before they expire.

Pure functions of PEM text and the time: the reconcile reads what the Secrets hold, `ensure`
returns what they should hold (the same objects when nothing is due, so nothing is written).
A certificate is renewed once RENEW_AT of its lifetime has passed; the CA lives ten years, the
servers' certificate 90 days (cert-manager's defaults for a leaf).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = timedelta(days=3650)
CERT_LIFETIME = timedelta(days=90)
RENEW_AT = 2 / 3  # of a certificate's lifetime
COMMON_NAME_LIMIT = 64  # characters (RFC 5280's ub-common-name)
CLOCK_SKEW = timedelta(minutes=5)  # notBefore this far back: a node whose clock is behind still accepts it


@dataclass(frozen=True)
class TlsMaterial:
    """PEM text: the CA's certificate and key, and the servers' certificate and key it signed."""

    ca_cert: str
    ca_key: str
    cert: str
    key: str


def _certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def renewal_due(pem: str, now: datetime) -> bool:
    """Whether RENEW_AT of the certificate's lifetime has passed at `now` (timezone-aware)."""
    cert = _certificate(pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= start + (end - start) * RENEW_AT


def dns_names(pem: str) -> list[str]:
    """The DNS names a certificate is for (its subjectAltName)."""
    san = _certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=sign, crl_sign=sign, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                         decipher_only=False)  # fmt: skip


def _common_name(text: str) -> str:
    """A subject's common name, which X.509 caps at 64 characters (a long namespace passes it); clients
    check the SubjectAltNames, so a shortened one still names the same thing, and its hash tells them apart."""
    if len(text) <= COMMON_NAME_LIMIT:
        return text
    return f"{text[:COMMON_NAME_LIMIT - 13]}~{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def issue_ca(common_name: str, now: datetime) -> tuple[str, str]:
    """A self-signed CA: (certificate, key) as PEM."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(common_name))])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(sign=True), critical=True)
            .sign(key, hashes.SHA256()))  # fmt: skip
    return _pem_cert(cert), _pem_key(key)


def issue_server(ca_cert: str, ca_key: str, names: list[str], now: datetime) -> tuple[str, str]:
    """A certificate for `names` signed by the CA: (certificate, key) as PEM. It serves clients and
    is also the client certificate of a route (servers verify each other), so it has both usages."""
    if not names:
        raise ValueError("a server certificate needs at least one DNS name")
    issuer = _certificate(ca_cert)
    signer = serialization.load_pem_private_key(ca_key.encode(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = _new_key()
    end = min(now + CERT_LIFETIME, issuer.not_valid_after_utc)  # never outlives its CA
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(names[0]))]))
            .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(signer, hashes.SHA256()))  # fmt: skip
    return _pem_cert(cert), _pem_key(key)


def signed_by(cert: str, ca_cert: str) -> bool:
    """Whether the CA's key signed the certificate."""
    try:
        _certificate(cert).verify_directly_issued_by(_certificate(ca_cert))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ensure(current: TlsMaterial | None, ca_name: str, names: list[str], now: datetime) -> TlsMaterial:
    """What the Secrets should hold at `now`: `current` itself while it is good, else renewed.

    The CA is made anew when missing, unreadable or due; the servers' certificate when the CA
    changed, or it is due, not the CA's, or for other names."""
    ca_cert, ca_key = (current.ca_cert, current.ca_key) if current else ("", "")
    try:
        ca_good = bool(ca_cert) and not renewal_due(ca_cert, now)
    except ValueError:
        ca_good = False
    if not ca_good:
        ca_cert, ca_key = issue_ca(ca_name, now)
    if current is not None and ca_good:
        try:
            if (signed_by(current.cert, ca_cert) and not renewal_due(current.cert, now)
                    and sorted(dns_names(current.cert)) == sorted(names)):
                return current
        except (ValueError, x509.ExtensionNotFound):
            pass  # unreadable: made anew below
    cert, key = issue_server(ca_cert, ca_key, names, now)
    return TlsMaterial(ca_cert=ca_cert, ca_key=ca_key, cert=cert, key=key)
