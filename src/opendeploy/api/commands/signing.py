"""The server's own certificates: the deployment-spec signer and the ``--tls`` self-signed cert.

The official agent only accepts a deployment specification as ``PKCS7/JSON``: a PEM PKCS#7
SignedData with the JSON inside. How strictly it checks depends on its version. Some verify
with ``NOVERIFY`` and ignore the outcome (agent-behaviour §1.3). Others (both versions of
``deployment_specification.rb`` read for this, one from before ``Local File`` revisions and one
from after) verify the signature with ``NOCHAIN`` against the CA file they ship
(``certs/host-agent-deployment-signer-ca-chain.pem``), want exactly one certificate in the
message, and pin its subject to the region's signer:
``/C=US/ST=Washington/L=Seattle/O=Amazon.com, Inc./CN=codedeploy-signer-<region>.amazonaws.com``
(a Beijing subject for ``cn-*`` regions). So the signer made on first start is self-signed with
that subject for the server's region, and its certificate alone is written to
:data:`SIGNER_CA_FILE` in the data directory: copied over the agent's CA file, it is the trust
anchor the strict check needs. The key lives in the data directory (mode 0600), so every restart
signs with the same certificate; a signer made for another region is replaced. Replicas sharing
a database share one signer too (stored there by the first), so an agent that trusts one trusts
them all.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

SIGNER_FILE = "spec-signer.pem"
#: The signer's certificate alone, named as the official agent's CA file, for agents to trust.
SIGNER_CA_FILE = "host-agent-deployment-signer-ca-chain.pem"

#: The name of the signer in the replicas' shared secrets (``store.server_secrets``).
SHARED_SIGNER = "spec-signer"

log = logging.getLogger(__name__)


class SharedSecrets(Protocol):
    """Values every replica of one database reads alike (``store.server_secrets``)."""

    def get_or_create(self, name: str, make: Callable[[], str]) -> str: ...

    def replace(self, name: str, value: str) -> None: ...


def signer_subject(region: str) -> x509.Name:
    """The subject the official agent pins for the deployment-spec signer of ``region``."""
    return _pinned_subject(region, lambda domain: f"codedeploy-signer-{region}.{domain}")


def endpoint_subject(region: str) -> x509.Name:
    """The subject the official agent pins for the TLS certificate of the Command API endpoint
    (its start-up check in ``codedeploy_control.rb``, some versions)."""
    return _pinned_subject(region, lambda domain: f"codedeploy-commands.{region}.{domain}")


def _pinned_subject(region: str, common_name: Callable[[str], str]) -> x509.Name:
    if region.startswith("cn-"):
        country, state, city = "CN", "Beijing", "Beijing"
        org = "Amazon Connect Technology Services (Beijing) Co., Ltd."
        domain = "amazonaws.com.cn"
    else:
        country, state, city = "US", "Washington", "Seattle"
        org = "Amazon.com, Inc."
        domain = "amazonaws.com"
    # In this order: the agent compares OpenSSL's "/C=…/ST=…/L=…/O=…/CN=…" text of the name.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, state),
            x509.NameAttribute(NameOID.LOCALITY_NAME, city),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name(domain)),
        ]
    )


def self_signed(common_name: str | x509.Name, names: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """A new P-256 key and a 10-year self-signed certificate for ``names``; (key, cert) PEM.

    ``common_name`` is the subject's CN, or the whole subject."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = (
        common_name
        if isinstance(common_name, x509.Name)
        else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
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


def subject_of(cert_pem: bytes) -> x509.Name:
    """The subject of the (first) certificate in ``cert_pem``."""
    return x509.load_pem_x509_certificate(cert_pem).subject


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
    def load_or_create(
        cls, data_dir: Path, region: str, shared: SharedSecrets | None = None
    ) -> SpecSigner:
        """The signer for ``region`` (created on first use, or when the one kept has another
        subject), kept in ``<data_dir>/spec-signer.pem``; its certificate is (re)written to
        ``<data_dir>/`` :data:`SIGNER_CA_FILE`.

        ``shared``: where every replica of the database reads the one signer (the database).
        The first replica stores its own (the file's, if it has one: agents may trust it
        already); the others take that one and overwrite their file with it."""
        path = data_dir / SIGNER_FILE
        subject = signer_subject(region)
        signer = cls._load(path.read_bytes(), path) if path.exists() else None
        if signer is not None and signer.cert.subject != subject:
            log.warning(
                "replacing the deployment-spec signer of %s (%s) with one for region %s:"
                " agents that trust the old certificate need %s again",
                path,
                signer.cert.subject.rfc4514_string(),
                region,
                data_dir / SIGNER_CA_FILE,
            )
            signer = None
        if shared is not None:
            local = signer
            pem = shared.get_or_create(
                SHARED_SIGNER, lambda: (local or cls._new(subject)).pem().decode("ascii")
            )
            signer = cls._load(pem.encode("ascii"), SHARED_SIGNER)
            if signer.cert.subject != subject:
                log.warning(
                    "the deployment-spec signer shared by the replicas is for %s, this server"
                    " runs for region %s: replacing it (every replica must run for one region)",
                    signer.cert.subject.rfc4514_string(),
                    region,
                )
                signer = cls._new(subject)
                shared.replace(SHARED_SIGNER, signer.pem().decode("ascii"))
        elif signer is None:
            signer = cls._new(subject)
        if not path.exists() or path.read_bytes() != signer.pem():
            write_private(path, signer.pem())
        ca = data_dir / SIGNER_CA_FILE
        cert_pem = signer.certificate_pem().encode("ascii")
        if not ca.exists() or ca.read_bytes() != cert_pem:
            write_private(ca, cert_pem)
        return signer

    @classmethod
    def _new(cls, subject: x509.Name) -> SpecSigner:
        key_pem, cert_pem = self_signed(subject)
        return cls._load(key_pem + cert_pem, "new signer")

    def pem(self) -> bytes:
        """Key and certificate, PEM (what the file and the shared row hold)."""
        key_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key_pem + self.cert.public_bytes(serialization.Encoding.PEM)

    def certificate_pem(self) -> str:
        """The signer's certificate alone (PEM): what agents trust specifications by."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @classmethod
    def _load(cls, blob: bytes, where: object) -> SpecSigner:
        key = serialization.load_pem_private_key(blob, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{where}: the signer key is not an EC key")
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
