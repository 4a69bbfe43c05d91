"""The ``openssl`` command, for tests that judge certificates and signatures as OpenSSL does
(the library the official agent's Ruby uses)."""

from __future__ import annotations

import subprocess


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``openssl ARGS`` (not checked: callers judge the exit status)."""
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True)


def compat_subject(cert_pem: bytes) -> str:
    """The certificate's subject as OpenSSL's compat text (``subject=/C=…/CN=…``), which is what
    the official agent compares (Ruby's ``OpenSSL::X509::Name#to_s``)."""
    done = openssl("x509", "-noout", "-subject", "-nameopt", "compat", stdin=cert_pem)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().strip()
