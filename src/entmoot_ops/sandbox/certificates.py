"""The sandbox's own certificate authority, and the certificates it signs: the HTTPS listener in front of the API
serves one (as the ALB serves ACM's), PostgreSQL's ``ssl = on`` another. Faults re-issue the listener's with a short
life or another host name; the suite trusts this CA through ``[tls] ca_file``, as it would a private CA."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, UTC
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# The names the sandbox's endpoints are reached by: https://localhost:PORT, and the bare loopback address.
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path

    def pem(self) -> tuple[bytes, bytes]:
        return self.cert.read_bytes(), self.key.read_bytes()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Entmoot sandbox"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)  # PostgreSQL refuses a key that others can read


class Authority:
    """A CA made at the sandbox's start, in ``directory``; ``ca.pem`` is what a client trusts."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        self.name = _name("Entmoot sandbox CA")
        self.certificate = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
                            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                         content_commitment=False, key_encipherment=False,
                                                         data_encipherment=False, key_agreement=False,
                                                         encipher_only=False, decipher_only=False), critical=True)
                            .sign(self.key, hashes.SHA256()))
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem: str, *, names: tuple[str, ...] = LOOPBACK_NAMES, days: float = 90) -> Issued:
        """A server certificate for ``names`` (DNS names or IP addresses), valid for ``days`` from now; written as
        ``stem.pem`` and ``stem.key``, replacing what was there."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        not_after = now + timedelta(days=days)
        alternatives = [x509.IPAddress(ipaddress.ip_address(n)) if n.replace(".", "").isdigit() else x509.DNSName(n)
                        for n in names]
        certificate = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(self.name)
                       .public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - timedelta(minutes=5)).not_valid_after(not_after)
                       .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
                       .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                       .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                       .sign(self.key, hashes.SHA256()))
        issued = Issued(cert=self.directory / f"{stem}.pem", key=self.directory / f"{stem}.key")
        issued.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, issued.key)
        return issued
