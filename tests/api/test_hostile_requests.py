"""Forged and oversized requests against a real server process: refused as 4xx, never a 500,
and refused before they cost the server memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from opendeploy.testing.server import RunningServer, running_server

NON_ASCII_SIGNATURE = "é" * 64


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("hostile") / "server") as srv:
        yield srv


def _signed(
    server: RunningServer, method: str, url: str, body: bytes, headers: dict[str, str], s3: bool
) -> dict[str, str]:
    """The headers botocore signs ``body`` with, for the server's admin key."""
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    if s3:
        S3SigV4Auth(credentials, "s3", server.region).add_auth(request)
    else:
        SigV4Auth(credentials, "codedeploy", server.region).add_auth(request)
    return {k: str(v) for k, v in request.headers.items()}


def _with_signature(headers: dict[str, str], signature: str) -> dict[bytes, bytes]:
    """``headers`` as bytes (UTF-8), the Authorization's signature replaced."""
    auth = headers["Authorization"]
    head, _, _old = auth.rpartition("Signature=")
    out = _as_bytes(headers)
    out[b"Authorization"] = f"{head}Signature={signature}".encode()
    return out


def _text(headers: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in headers.items()}


def _as_bytes(headers: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in headers.items()}


def test_a_non_ascii_sigv4_signature_is_refused_as_400(server: RunningServer) -> None:
    body = b"{}"
    headers = _signed(
        server,
        "POST",
        f"{server.endpoint}/",
        body,
        {
            "X-Amz-Target": "CodeDeploy_20141006.ListApplications",
            "Content-Type": "application/x-amz-json-1.1",
        },
        s3=False,
    )
    response = httpx.post(
        f"{server.endpoint}/", content=body, headers=_with_signature(headers, NON_ASCII_SIGNATURE)
    )
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "InvalidSignatureException"


def test_a_non_ascii_signature_to_the_cbor_route_is_refused(server: RunningServer) -> None:
    url = f"{server.endpoint}/service/CodeDeploy_20141006/operation/ListApplications"
    headers = _signed(
        server,
        "POST",
        url,
        b"",
        {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
        s3=False,
    )
    response = httpx.post(url, content=b"", headers=_with_signature(headers, "ü" * 64))
    assert 400 <= response.status_code < 500


def test_a_non_ascii_signature_or_payload_hash_to_the_s3_front_is_refused(
    server: RunningServer,
) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket="hostile-non-ascii")
    url = f"{server.endpoint}/hostile-non-ascii/key.zip"
    body = b"bundle bytes"
    headers = _signed(server, "PUT", url, body, {}, s3=True)
    response = httpx.put(url, content=body, headers=_with_signature(headers, "ß" * 64))
    assert response.status_code == 403, response.text
    assert b"SignatureDoesNotMatch" in response.content

    forged = _as_bytes(headers)
    forged[b"X-Amz-Content-SHA256"] = ("ä" * 64).encode()
    response = httpx.put(url, content=body, headers=forged)
    assert 400 <= response.status_code < 500, response.text
    response = httpx.get(
        url, headers=_with_signature(_signed(server, "GET", url, b"", {}, True), "ö")
    )
    assert 400 <= response.status_code < 500, response.text


# -- memory before authentication ----------------------------------------------------------------

BIG = 300 * 1024 * 1024
#: What an unsigned request may add to the server's peak resident memory.
PREAUTH_GROWTH_LIMIT = 32 * 1024 * 1024


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    chunk = b"x" * size
    for _ in range(total // size):
        yield chunk


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_an_unsigned_300_mib_body_is_refused_before_it_is_read(server: RunningServer) -> None:
    """Every route that reads a body (awsJson, CBOR, an S3 upload, instance credentials, hook
    output), with and without a length, and a forged signature by a real key: refused as 4xx,
    the server's peak memory barely moves."""
    server.client("s3").create_bucket(Bucket="hostile-big")
    json_headers = {
        "X-Amz-Target": "CodeDeploy_20141006.ListApplications",
        "Content-Type": "application/x-amz-json-1.1",
    }
    cbor_url = f"{server.endpoint}/service/CodeDeploy_20141006/operation/ListApplications"
    forged = _text(
        _with_signature(
            _signed(server, "POST", f"{server.endpoint}/", b"", json_headers, s3=False), "0" * 64
        )
    )
    s3_url = f"{server.endpoint}/hostile-big/big.zip"
    forged_s3 = _text(_with_signature(_signed(server, "PUT", s3_url, b"x", {}, s3=True), "0" * 64))
    before = peak_rss(server.process.pid)
    with httpx.Client(timeout=120) as http:
        cases: tuple[tuple[str, str, dict[str, str], bool], ...] = (
            ("POST", f"{server.endpoint}/", json_headers, True),
            ("POST", f"{server.endpoint}/", json_headers, False),
            ("POST", f"{server.endpoint}/", {"Content-Length": str(10 << 20)}, True),
            ("POST", cbor_url, {"Content-Type": "application/cbor"}, False),
            ("POST", f"{server.endpoint}/", forged, False),
            ("PUT", s3_url, {}, True),
            ("PUT", s3_url, {}, False),
            ("PUT", s3_url, forged_s3, False),
            ("POST", f"{server.endpoint}/opendeploy/v1/instance-credentials", {}, True),
            ("POST", f"{server.endpoint}/opendeploy/v1/instance-credentials", {}, False),
            ("GET", f"{server.endpoint}/opendeploy/v1/deployments/d-AAAAAAAAA/output", {}, False),
            # The Alertmanager receiver reads nothing before its bearer token checks out.
            ("POST", f"{server.endpoint}/opendeploy/v1/alertmanager", {}, True),
            ("POST", f"{server.endpoint}/opendeploy/v1/alertmanager", {}, False),
        )
        for method, url, headers, length in cases:
            size = BIG
            sent = dict(headers)
            if length:
                declared = sent.get("Content-Length") or str(BIG)
                size = int(declared)
                sent["Content-Length"] = declared
            response = http.request(method, url, content=_chunks(size), headers=sent)
            assert 400 <= response.status_code < 500, (method, url, response.text[:300])
    growth = peak_rss(server.process.pid) - before
    assert growth < PREAUTH_GROWTH_LIMIT, f"peak grew by {growth / 2**20:.1f} MiB"
    assert not list((server.data_dir / "bundles").rglob(".s3-body-*"))
