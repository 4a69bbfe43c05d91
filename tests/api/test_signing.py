"""The deployment-spec signer: the subject official agents pin, kept across restarts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from opendeploy.api.commands.signing import (
    SIGNER_CA_FILE,
    SIGNER_FILE,
    SpecSigner,
    signer_subject,
)


def _openssl_text(name: x509.Name) -> str:
    """The name as OpenSSL's compat text, which the official agent compares (``Name#to_s``)."""
    return "".join(f"/{a.rfc4514_attribute_name}={a.value!s}" for a in name)


def test_subjects_are_the_ones_the_agent_pins() -> None:
    assert _openssl_text(signer_subject("eu-west-1")) == (
        "/C=US/ST=Washington/L=Seattle/O=Amazon.com, Inc."
        "/CN=codedeploy-signer-eu-west-1.amazonaws.com"
    )
    assert _openssl_text(signer_subject("cn-north-1")) == (
        "/C=CN/ST=Beijing/L=Beijing/O=Amazon Connect Technology Services (Beijing) Co., Ltd."
        "/CN=codedeploy-signer-cn-north-1.amazonaws.com.cn"
    )


def test_the_signer_is_made_once_and_its_certificate_published(tmp_path: Path) -> None:
    first = SpecSigner.load_or_create(tmp_path, "us-east-1")
    assert first.cert.subject == signer_subject("us-east-1")
    assert (tmp_path / SIGNER_FILE).stat().st_mode & 0o777 == 0o600
    published = (tmp_path / SIGNER_CA_FILE).read_bytes()
    assert published == first.cert.public_bytes(serialization.Encoding.PEM)
    assert b"PRIVATE KEY" not in published
    (tmp_path / SIGNER_CA_FILE).unlink()  # lost: written again on the next start
    again = SpecSigner.load_or_create(tmp_path, "us-east-1")
    assert again.cert == first.cert
    assert (tmp_path / SIGNER_CA_FILE).read_bytes() == published


def test_a_signer_of_another_subject_is_replaced_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = SpecSigner.load_or_create(tmp_path, "us-east-1")
    with caplog.at_level(logging.WARNING):
        new = SpecSigner.load_or_create(tmp_path, "eu-central-1")
    assert new.cert.subject == signer_subject("eu-central-1") and new.cert != old.cert
    assert SIGNER_CA_FILE in caplog.text and "eu-central-1" in caplog.text
    assert (tmp_path / SIGNER_CA_FILE).read_bytes() == new.cert.public_bytes(
        serialization.Encoding.PEM
    )


class _Shared:
    """The replicas' shared secrets (``store.server_secrets``), in memory."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        return self.values.setdefault(name, self.values.get(name) or make())

    def replace(self, name: str, value: str) -> None:
        self.values[name] = value


def test_replicas_sharing_secrets_sign_with_the_first_ones_existing_signer(
    tmp_path: Path,
) -> None:
    # A server that ran alone keeps its signer when it becomes the first replica: its agents
    # trust that certificate already. The next replica takes the same one over its own file.
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    alone = SpecSigner.load_or_create(tmp_path / "a", "us-east-1")
    other = SpecSigner.load_or_create(tmp_path / "b", "us-east-1")
    shared = _Shared()
    first = SpecSigner.load_or_create(tmp_path / "a", "us-east-1", shared)
    second = SpecSigner.load_or_create(tmp_path / "b", "us-east-1", shared)
    assert first.cert == alone.cert == second.cert != other.cert
    for d in ("a", "b"):
        assert (tmp_path / d / SIGNER_CA_FILE).read_bytes() == (
            tmp_path / "a" / SIGNER_CA_FILE
        ).read_bytes()
    # A replica for another region replaces the shared one (and says so).
    moved = SpecSigner.load_or_create(tmp_path / "c", "eu-west-1", shared)
    assert moved.cert.subject == signer_subject("eu-west-1")
    assert SpecSigner.load_or_create(tmp_path / "b", "eu-west-1", shared).cert == moved.cert
