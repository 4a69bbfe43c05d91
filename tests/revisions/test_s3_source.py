"""S3 bundles, fetched from a real ``moto_server`` process on loopback."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from opendeploy.errors import BundleError
from opendeploy.revisions.archive import unpack_bundle
from opendeploy.revisions.sources import (
    RevisionSource,
    S3Credentials,
    S3Source,
    SourceSettings,
    parse_s3_location,
    source_for_revision,
)
from opendeploy.revisions.sources.s3 import s3_client
from opendeploy.testing.proxy import AnswerDroppingProxy
from tests.revisions.servers import CREDENTIALS, free_port, moto_server, s3

FAST = {"connect_timeout": 2.0, "read_timeout": 5.0, "max_attempts": 1}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def client(endpoint: str) -> Any:
    return s3(endpoint)


@pytest.fixture(scope="module")
def bucket(client: Any) -> str:
    client.create_bucket(Bucket="bundles")
    return "bundles"


@pytest.fixture(scope="module")
def versioned(client: Any) -> str:
    client.create_bucket(Bucket="versioned")
    client.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    return "versioned"


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _source(endpoint: str, bucket: str, key: str, **kwargs: Any) -> S3Source:
    options = {**FAST, "credentials": CREDENTIALS, **kwargs}
    return S3Source(bucket, key, "zip", endpoint_url=endpoint, **options)


def test_fetch_by_key_streams_the_object_and_it_unpacks(
    endpoint: str, client: Any, bucket: str, tmp_path: Path
) -> None:
    data = _zip({"appspec.yml": "version: 0.0\nos: linux\n", "app/run.sh": "echo hi\n"})
    client.put_object(Bucket=bucket, Key="apps/web.zip", Body=data)
    dest = tmp_path / "bundle.tar"
    dest.symlink_to(tmp_path / "previous-bundle")  # a link left by a local revision is replaced

    source: RevisionSource = _source(endpoint, bucket, "apps/web.zip")
    source.fetch(dest)

    assert not dest.is_symlink()
    assert dest.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["bundle.tar"]  # no .part file left over
    unpack_bundle(dest, source.bundle_type, tmp_path / "archive")
    assert (tmp_path / "archive" / "app" / "run.sh").read_text() == "echo hi\n"


def test_fetch_by_version(endpoint: str, client: Any, versioned: str, tmp_path: Path) -> None:
    v1 = client.put_object(Bucket=versioned, Key="b.zip", Body=_zip({"v": "1"}))["VersionId"]
    client.put_object(Bucket=versioned, Key="b.zip", Body=_zip({"v": "2"}))

    _source(endpoint, versioned, "b.zip", version=v1).fetch(tmp_path / "old")
    _source(endpoint, versioned, "b.zip").fetch(tmp_path / "new")

    assert zipfile.ZipFile(tmp_path / "old").read("v") == b"1"
    assert zipfile.ZipFile(tmp_path / "new").read("v") == b"2"


def test_unknown_version_is_a_clear_error(
    endpoint: str, client: Any, versioned: str, tmp_path: Path
) -> None:
    client.put_object(Bucket=versioned, Key="c.zip", Body=b"x")
    source = _source(endpoint, versioned, "c.zip", version="not-a-version")
    with pytest.raises(BundleError, match=r"s3://versioned/c.zip \(version not-a-version\)"):
        source.fetch(tmp_path / "bundle.tar")


def test_etag_match_quoted_or_not(endpoint: str, client: Any, bucket: str, tmp_path: Path) -> None:
    data = _zip({"a": "b"})
    etag = client.put_object(Bucket=bucket, Key="e.zip", Body=data)["ETag"]
    assert etag.startswith('"') and etag.strip('"') == hashlib.md5(data).hexdigest()

    _source(endpoint, bucket, "e.zip", etag=etag).fetch(tmp_path / "quoted")
    _source(endpoint, bucket, "e.zip", etag=etag.strip('"')).fetch(tmp_path / "bare")

    assert (tmp_path / "quoted").read_bytes() == (tmp_path / "bare").read_bytes() == data


def test_etag_mismatch_uses_the_official_wording_and_writes_nothing(
    endpoint: str, client: Any, bucket: str, tmp_path: Path
) -> None:
    actual = client.put_object(Bucket=bucket, Key="m.zip", Body=b"new")["ETag"].strip('"')
    wanted = "0" * 32
    with pytest.raises(BundleError) as info:
        _source(endpoint, bucket, "m.zip", etag=f'"{wanted}"').fetch(tmp_path / "bundle.tar")
    assert str(info.value) == (
        f"Expected deployment artifact bundle etag {wanted} but was actually {actual}"
    )
    assert list(tmp_path.iterdir()) == []


def test_multipart_etag_is_compared_but_not_taken_for_an_md5(
    endpoint: str, client: Any, bucket: str, tmp_path: Path
) -> None:
    part1, part2 = b"a" * (256 * 1024), b"b" * 1000
    upload = client.create_multipart_upload(Bucket=bucket, Key="multi.zip")["UploadId"]
    parts = []
    for number, body in enumerate((part1, part2), start=1):
        etag = client.upload_part(
            Bucket=bucket, Key="multi.zip", UploadId=upload, PartNumber=number, Body=body
        )["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    etag = client.complete_multipart_upload(
        Bucket=bucket, Key="multi.zip", UploadId=upload, MultipartUpload={"Parts": parts}
    )["ETag"]
    assert etag.strip('"').endswith("-2")

    _source(endpoint, bucket, "multi.zip", etag=etag).fetch(tmp_path / "bundle.tar")

    assert (tmp_path / "bundle.tar").read_bytes() == part1 + part2
    with pytest.raises(BundleError, match="Expected deployment artifact bundle etag"):
        _source(endpoint, bucket, "multi.zip", etag="abc-2").fetch(tmp_path / "again")


def test_missing_key_and_bucket_name_endpoint_bucket_and_key(
    endpoint: str, bucket: str, tmp_path: Path
) -> None:
    with pytest.raises(BundleError) as info:
        _source(endpoint, bucket, "nope.zip").fetch(tmp_path / "bundle.tar")
    assert f"s3://{bucket}/nope.zip at {endpoint} does not exist: NoSuchKey" in str(info.value)
    with pytest.raises(BundleError, match="s3://no-such-bucket/k.zip .* does not exist"):
        _source(endpoint, "no-such-bucket", "k.zip").fetch(tmp_path / "bundle.tar")
    assert list(tmp_path.iterdir()) == []


def test_endpoint_down_fails_fast_with_the_override_hint(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(BundleError) as info:
        _source(endpoint, "b", "k.zip").fetch(tmp_path / "bundle.tar")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert message.startswith(f"cannot connect to the S3 endpoint {endpoint} to download s3://b/k")
    assert message.endswith("Try using s3 endpoint override.")


def test_the_s3_proxy_setting_is_used(
    endpoint: str, client: Any, bucket: str, tmp_path: Path
) -> None:
    client.put_object(Bucket=bucket, Key="p.zip", Body=b"x")
    proxy = f"http://127.0.0.1:{free_port()}"  # a proxy that is down: the fetch must fail
    source = source_for_revision(
        {
            "RevisionType": "S3",
            "S3Revision": {"Bucket": bucket, "Key": "p.zip", "BundleType": "zip"},
        },
        settings=SourceSettings(
            s3_endpoint_url=endpoint,
            s3_proxy=proxy,
            s3_credentials=CREDENTIALS,
            s3_connect_timeout=2,
            s3_max_attempts=1,
        ),
    )
    with pytest.raises(BundleError, match="cannot connect to the S3 endpoint"):
        source.fetch(tmp_path / "bundle.tar")


def _moto_auth(endpoint: str, after: str) -> None:
    """Turn moto's request authentication on ("0") or off ("inf")."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=after.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form body would hide the data from moto
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_wrong_credentials_and_missing_permission_are_refused(
    endpoint: str, client: Any, bucket: str, tmp_path: Path
) -> None:
    client.put_object(Bucket=bucket, Key="secret.zip", Body=b"x")
    # An IAM user without any policy, made while authentication is still off.
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    nobody = S3Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    _moto_auth(endpoint, "0")
    try:
        with pytest.raises(
            BundleError,
            match=r"access to s3://bundles/secret.zip at .* was "
            r"refused \(InvalidAccessKeyId",
        ):
            _source(
                endpoint, bucket, "secret.zip", credentials=S3Credentials("AKIABAD", "x")
            ).fetch(tmp_path / "bundle.tar")
        with pytest.raises(BundleError, match=r"refused \(AccessDenied.*s3:GetObject"):
            _source(endpoint, bucket, "secret.zip", credentials=nobody).fetch(
                tmp_path / "bundle.tar"
            )
    finally:
        _moto_auth(endpoint, "inf")


class _LyingS3(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint whose bytes do not match the ETag it claims (a damaged transfer)."""

    def do_GET(self) -> None:
        body = b"damaged bytes"
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.md5(b"the real bundle").hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_bytes_that_do_not_match_a_single_part_etag_are_refused(tmp_path: Path) -> None:
    dest = tmp_path / "bundle.tar"
    dest.write_bytes(b"previous bundle")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LyingS3)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(BundleError, match="the download is damaged"):
            _source(endpoint, "b", "k.zip").fetch(dest)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert [p.name for p in tmp_path.iterdir()] == ["bundle.tar"]  # no .part left behind
    assert dest.read_bytes() == b"previous bundle"


def test_revision_env_unsets_what_is_not_given() -> None:
    source = S3Source("b", "k.zip", "zip", etag="e")
    assert source.revision_env() == {
        "BUNDLE_BUCKET": "b",
        "BUNDLE_KEY": "k.zip",
        "BUNDLE_VERSION": None,
        "BUNDLE_ETAG": "e",
    }


def test_repr_and_settings_hide_secrets() -> None:
    secret = S3Credentials("AKIA", "very-secret", "token")
    assert "very-secret" not in repr(secret) and "token" not in repr(secret)
    assert "very-secret" not in repr(SourceSettings(s3_credentials=secret, github_token="t"))


@pytest.mark.parametrize(
    ("location", "bucket", "key", "version", "etag"),
    [
        ("s3://b/k.zip", "b", "k.zip", None, None),
        ("s3://b/dir/sub/k.tgz?versionId=v1", "b", "dir/sub/k.tgz", "v1", None),
        ("s3://b/k?etag=abc&versionId=v2", "b", "k", "v2", "abc"),
        ("S3://b/k", "b", "k", None, None),
    ],
)
def test_parse_s3_location(
    location: str, bucket: str, key: str, version: str | None, etag: str | None
) -> None:
    loc = parse_s3_location(location)
    assert (loc.bucket, loc.key, loc.version, loc.etag) == (bucket, key, version, etag)


@pytest.mark.parametrize("location", ["s3://bucket", "s3://bucket/", "s3:///key", "https://b/k"])
def test_bad_s3_locations_get_the_official_message(location: str) -> None:
    with pytest.raises(BundleError) as info:
        parse_s3_location(location)
    assert str(info.value) == (
        f"s3 location {location} not in the expected format of 's3://bucket/key'"
    )


def test_unknown_query_parameter_is_refused() -> None:
    with pytest.raises(BundleError, match="unknown query parameter 'version'"):
        parse_s3_location("s3://b/k?version=1")


def test_from_location(endpoint: str, client: Any, versioned: str, tmp_path: Path) -> None:
    v = client.put_object(Bucket=versioned, Key="loc.zip", Body=b"zz")["VersionId"]
    source = S3Source.from_location(
        f"s3://{versioned}/loc.zip?versionId={v}",
        "zip",
        endpoint_url=endpoint,
        credentials=CREDENTIALS,
        **FAST,
    )
    assert source.version == v
    source.fetch(tmp_path / "bundle.tar")
    assert (tmp_path / "bundle.tar").read_bytes() == b"zz"


def test_directory_is_not_an_s3_bundle_type() -> None:
    with pytest.raises(BundleError, match="BundleType: directory is not possible"):
        S3Source("b", "k", "directory")


def test_clients_with_the_same_explicit_keys_are_reused_and_rotated_keys_get_a_new_one() -> None:
    first = S3Credentials("AKIDREUSE", "secret-1")
    a = s3_client(endpoint_url="http://127.0.0.1:9", credentials=first)
    assert (
        s3_client(
            endpoint_url="http://127.0.0.1:9", credentials=S3Credentials("AKIDREUSE", "secret-1")
        )
        is a
    )
    rotated = s3_client(
        endpoint_url="http://127.0.0.1:9", credentials=S3Credentials("AKIDREUSE", "secret-2")
    )
    assert rotated is not a
    assert rotated._request_signer._credentials.secret_key == "secret-2"
    assert s3_client(endpoint_url="http://127.0.0.1:10", credentials=first) is not a


# -- retries: a store that restarts or cuts a download ---------------------------------------------


def test_a_download_cut_midway_resumes_where_it_stopped(
    endpoint: str, client: Any, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    client.put_object(Bucket=bucket, Key="cut.zip", Body=data)
    with AnswerDroppingProxy(endpoint) as proxy:
        proxy.cut("GET", after_bytes=1024 * 1024)
        _source(proxy.endpoint, bucket, "cut.zip", retry_seconds=30).fetch(tmp_path / "b")
        gets = [r for op, r in proxy.requests if op == "GET"]
    assert (tmp_path / "b").read_bytes() == data
    assert gets == [None, "bytes=1048576-"]
    assert not list(tmp_path.glob(".b.*.part"))


def test_a_store_that_answers_nothing_for_a_while_is_tried_again(
    endpoint: str, client: Any, bucket: str, tmp_path: Path
) -> None:
    """More lost answers than botocore's own attempts: the source's retries carry it."""
    client.put_object(Bucket=bucket, Key="later.zip", Body=b"bundle")
    with AnswerDroppingProxy(endpoint) as proxy:
        proxy.drop("GET", times=5)
        with pytest.raises(BundleError, match="cannot"):
            _source(proxy.endpoint, bucket, "later.zip").fetch(tmp_path / "once")
        proxy.drop("GET", times=5)
        _source(proxy.endpoint, bucket, "later.zip", retry_seconds=30).fetch(tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b"bundle"


def test_a_refusal_is_not_tried_again(endpoint: str, bucket: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(BundleError, match="does not exist"):
        _source(endpoint, bucket, "missing.zip", retry_seconds=30).fetch(tmp_path / "b")
    assert time.monotonic() - started < 5
