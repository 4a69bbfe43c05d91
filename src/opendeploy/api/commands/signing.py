"""The server's own certificates: the deployment-spec signer and the ``--tls`` self-signed cert.

The official agent only accepts a deployment specification as ``PKCS7/JSON``: a PEM PKCS#7
SignedData with the JSON inside. It verifies with ``NOVERIFY`` and ignores the outcome
(agent-behaviour §1.3), so a self-signed signer created on first start is enough; it lives in the
data directory (mode 0600) so every restart signs with the same certificate.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

SIGNER_FILE = "spec-signer.pem"


def self_signed(common_name: str, names: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """A new P-256 key and a 10-year self-signed certificate for ``names``; (key, cert) PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
    )
    # Its own CA too, so that clients may trust it directly (ca_bundle, SSL_CERT_FILE) under
    # strict X.509 checking, which wants CA:TRUE, key usage and key identifiers on an anchor.
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically with mode 0600 from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass(frozen=True)
class SpecSigner:
    """Signs deployment specifications as PEM PKCS#7 SignedData (data embedded)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SpecSigner:
        """The signer kept in ``<data_dir>/spec-signer.pem`` (created on first use)."""
        path = data_dir / SIGNER_FILE
        if not path.exists():
            key_pem, cert_pem = self_signed("OpenDeploy deployment specification signer")
            write_private(path, key_pem + cert_pem)
        blob = path.read_bytes()
        key = serialization.load_pem_private_key(blob, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: the signer key is not an EC key")
        return cls(key, x509.load_pem_x509_certificate(blob))

    def sign(self, data: bytes) -> str:
        """``data`` inside a PEM PKCS#7 SignedData, as ``OpenSSL::PKCS7.sign(…, BINARY)``."""
        signed = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(data)
            .add_signer(self.cert, self.key, hashes.SHA256())
            .sign(serialization.Encoding.PEM, [pkcs7.PKCS7Options.Binary])
        )
        return signed.decode("ascii")
