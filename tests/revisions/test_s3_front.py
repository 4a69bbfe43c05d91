"""The S3 front of the bundle store, through real boto3 clients against a loopback server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from starlette.requests import Request

from opendeploy.api.s3 import chunked
from opendeploy.api.s3.body import BodySpool
from opendeploy.api.s3.errors import SignatureDoesNotMatchError
from opendeploy.api.s3.objects import BundleBuckets, multipart_etag
from opendeploy.api.s3.routes import _receive
from opendeploy.api.sigv4 import derive_signing_key
from opendeploy.revisions.blobstore import LocalBlobStore
from opendeploy.server import create_server
from opendeploy.settings import ServerSettings
from opendeploy.store.database import Store
from tests.revisions.s3_front_server import (
    FrontServer,
    front_server,
    self_signed_cert,
    serve_tls,
)

MIB = 1024 * 1024
BUCKET = "bundles"


@pytest.fixture
def front(tmp_path: Path, database_url: str) -> Iterator[FrontServer]:
    with front_server(tmp_path / "data", database_url) as server:
        yield server


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_put_get_head_list_delete(front: FrontServer) -> None:
    s3 = front.s3()
    put = s3.put_object(Bucket=BUCKET, Key="app/one.zip", Body=b"hello", ContentType="app/zip")
    assert put["ETag"] == f'"{hashlib.md5(b"hello").hexdigest()}"'
    assert put["VersionId"]
    got = s3.get_object(Bucket=BUCKET, Key="app/one.zip")
    assert got["Body"].read() == b"hello"
    assert (got["ETag"], got["VersionId"], got["ContentType"]) == (
        put["ETag"],
        put["VersionId"],
        "app/zip",
    )
    head = s3.head_object(Bucket=BUCKET, Key="app/one.zip")
    assert head["ContentLength"] == 5
    s3.put_object(Bucket=BUCKET, Key="app/two.zip", Body=b"2")
    s3.put_object(Bucket=BUCKET, Key="other/x", Body=b"3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="app/")
    assert [o["Key"] for o in listed["Contents"]] == ["app/one.zip", "app/two.zip"]
    grouped = s3.list_objects_v2(Bucket=BUCKET, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["app/", "other/"]
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, PaginationConfig={"PageSize": 1}
    )
    assert [o["Key"] for page in pages for o in page["Contents"]] == [
        "app/one.zip",
        "app/two.zip",
        "other/x",
    ]
    s3.head_bucket(Bucket=BUCKET)
    s3.delete_object(Bucket=BUCKET, Key="app/one.zip")
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=BUCKET, Key="app/one.zip")
    assert _code(missing) == "NoSuchKey"
    with pytest.raises(ClientError) as no_bucket:
        s3.get_object(Bucket="nothere", Key="k")
    assert _code(no_bucket) == "NoSuchBucket"


def test_every_put_is_a_new_version_and_old_versions_survive_a_delete(front: FrontServer) -> None:
    s3 = front.s3()
    first = s3.put_object(Bucket=BUCKET, Key="k", Body=b"v1")["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key="k", Body=b"v2")["VersionId"]
    assert first != second
    assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"v2"
    deleted = s3.delete_object(Bucket=BUCKET, Key="k")
    assert deleted["DeleteMarker"] is True
    assert s3.get_object(Bucket=BUCKET, Key="k", VersionId=first)["Body"].read() == b"v1"
    s3.delete_object(Bucket=BUCKET, Key="k", VersionId=first)
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket=BUCKET, Key="k", VersionId=first)
    assert _code(gone) == "NoSuchVersion"


def test_range_requests(front: FrontServer) -> None:
    s3 = front.s3()
    s3.put_object(Bucket=BUCKET, Key="r", Body=b"0123456789")
    assert s3.get_object(Bucket=BUCKET, Key="r", Range="bytes=2-4")["Body"].read() == b"234"
    assert s3.get_object(Bucket=BUCKET, Key="r", Range="bytes=7-")["Body"].read() == b"789"
    assert s3.get_object(Bucket=BUCKET, Key="r", Range="bytes=-3")["Body"].read() == b"789"
    partial = s3.get_object(Bucket=BUCKET, Key="r", Range="bytes=8-100")
    assert partial["ContentRange"] == "bytes 8-9/10"
    # Read to the end: a body left unread keeps its connection out of the pool until the
    # garbage collector closes the socket (an intermittent ResourceWarning).
    assert partial["Body"].read() == b"89"
    with pytest.raises(ClientError) as bad:
        s3.get_object(Bucket=BUCKET, Key="r", Range="bytes=10-")
    assert _code(bad) == "InvalidRange"


def test_multipart_upload_and_ranged_download(front: FrontServer, tmp_path: Path) -> None:
    s3 = front.s3()
    data = os.urandom(11 * MIB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_file(str(source), BUCKET, "big.bin", Config=config)
    parts = [data[i : i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    expected = multipart_etag([hashlib.md5(p).hexdigest() for p in parts])
    assert s3.head_object(Bucket=BUCKET, Key="big.bin")["ETag"] == f'"{expected}"'
    target = tmp_path / "back.bin"
    s3.download_file(BUCKET, "big.bin", str(target), Config=config)  # ranged GETs
    assert target.read_bytes() == data
    # the parts' temporary blobs are gone; only the whole object's blob is left
    assert not front.store.bundle_objects.blob_in_use(hashlib.sha256(parts[0]).hexdigest())
    assert not front.blobs.exists(hashlib.sha256(parts[0]).hexdigest())


def test_multipart_errors(front: FrontServer) -> None:
    s3 = front.s3()
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="m")["UploadId"]
    small = s3.upload_part(Bucket=BUCKET, Key="m", UploadId=upload, PartNumber=1, Body=b"a")
    last = s3.upload_part(Bucket=BUCKET, Key="m", UploadId=upload, PartNumber=2, Body=b"b")
    parts = [
        {"PartNumber": 1, "ETag": small["ETag"]},
        {"PartNumber": 2, "ETag": last["ETag"]},
    ]
    with pytest.raises(ClientError) as too_small:
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key="m", UploadId=upload, MultipartUpload={"Parts": parts}
        )
    assert _code(too_small) == "EntityTooSmall"
    wrong = [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]
    with pytest.raises(ClientError) as invalid:
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key="m", UploadId=upload, MultipartUpload={"Parts": wrong}
        )
    assert _code(invalid) == "InvalidPart"
    one = s3.complete_multipart_upload(
        Bucket=BUCKET, Key="m", UploadId=upload, MultipartUpload={"Parts": parts[1:]}
    )
    assert one["ETag"] == f'"{multipart_etag([hashlib.md5(b"b").hexdigest()])}"'
    assert s3.get_object(Bucket=BUCKET, Key="m")["Body"].read() == b"b"
    aborted = s3.create_multipart_upload(Bucket=BUCKET, Key="m")["UploadId"]
    s3.abort_multipart_upload(Bucket=BUCKET, Key="m", UploadId=aborted)
    with pytest.raises(ClientError) as gone:
        s3.upload_part(Bucket=BUCKET, Key="m", UploadId=aborted, PartNumber=1, Body=b"x")
    assert _code(gone) == "NoSuchUpload"


def test_auth_errors_are_s3_errors(front: FrontServer) -> None:
    front.s3().put_object(Bucket=BUCKET, Key="k", Body=b"x")
    wrong_secret = front.s3(key=(front.access_key_id, "not-the-secret"))
    with pytest.raises(ClientError) as mismatch:
        wrong_secret.get_object(Bucket=BUCKET, Key="k")
    assert _code(mismatch) == "SignatureDoesNotMatch"
    assert mismatch.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = front.s3(key=("AKIAUNKNOWNUNKNOWN00", "secret"))
    with pytest.raises(ClientError) as no_key:
        unknown.put_object(Bucket=BUCKET, Key="k", Body=b"x")
    assert _code(no_key) == "InvalidAccessKeyId"


def test_instance_keys_may_read_but_not_write(front: FrontServer) -> None:
    front.s3().put_object(Bucket=BUCKET, Key="bundle.zip", Body=b"zip")
    instance = front.s3(key=front.store.access_keys.create(principal="host-1", kind="instance"))
    assert instance.get_object(Bucket=BUCKET, Key="bundle.zip")["Body"].read() == b"zip"
    instance.head_object(Bucket=BUCKET, Key="bundle.zip")
    denied_calls: tuple[Callable[[], object], ...] = (
        lambda: instance.put_object(Bucket=BUCKET, Key="bundle.zip", Body=b"evil"),
        lambda: instance.delete_object(Bucket=BUCKET, Key="bundle.zip"),
        lambda: instance.create_multipart_upload(Bucket=BUCKET, Key="x"),
        lambda: instance.list_objects_v2(Bucket=BUCKET),
    )
    for call in denied_calls:
        with pytest.raises(ClientError) as denied:
            call()
        assert _code(denied) == "AccessDenied"


def test_content_md5_and_checksum_mismatches_are_refused(front: FrontServer) -> None:
    s3 = front.s3()
    wrong_md5 = "AAAAAAAAAAAAAAAAAAAAAA=="
    with pytest.raises(ClientError) as bad:
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"data", ContentMD5=wrong_md5)
    assert _code(bad) == "BadDigest"
    with pytest.raises(ClientError) as bad_crc:
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"data", ChecksumCRC32="AAAAAA==")
    assert _code(bad_crc) == "BadDigest"


def test_presigned_get(front: FrontServer) -> None:
    import urllib.request

    front.s3().put_object(Bucket=BUCKET, Key="p k", Body=b"presigned")
    s3 = front.s3(signature_version="s3v4")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "p k"})
    assert "X-Amz-Signature" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"presigned"


def test_aws_chunked_bodies_over_tls(tmp_path: Path, sqlite_url: str) -> None:
    """botocore over HTTPS sends STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer."""
    import boto3
    from botocore.config import Config

    server = create_server(ServerSettings(data_dir=tmp_path / "data", database_url=sqlite_url))
    key_id, secret = server.credentials.access_key_id, server.credentials.secret_access_key
    cert, key = self_signed_cert(tmp_path)
    sent: list[dict[str, Any]] = []
    with serve_tls(server.app, cert, key) as endpoint:
        s3 = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            verify=str(cert),
            config=Config(s3={"addressing_style": "path"}),
        )
        s3.meta.events.register(
            "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
        )
        data = os.urandom(300_000)
        s3.put_object(Bucket=BUCKET, Key="chunked", Body=data)
        assert s3.get_object(Bucket=BUCKET, Key="chunked")["Body"].read() == data
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in sent[0].items()}
    assert headers["X-Amz-Content-SHA256"] == chunked.UNSIGNED_TRAILER
    assert headers["Content-Encoding"] == "aws-chunked"
    assert headers["X-Amz-Trailer"] == "x-amz-checksum-crc32"


# The worked example of AWS's "Signature Calculations for the Authorization Header: Transferring
# Payload in Multiple Chunks" (66,560 bytes of 'a' in 64 KiB chunks, signed chunk by chunk).
_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_EXAMPLE_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
_EXAMPLE_CHUNKS = [
    (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]


def _example_body(signatures: list[tuple[int, str]]) -> bytes:
    body = b""
    for size, signature in signatures:
        body += f"{size:x};chunk-signature={signature}\r\n".encode() + b"a" * size + b"\r\n"
    return body


def _example_decoder() -> chunked.AwsChunkedDecoder:
    signing = chunked.ChunkSigning(
        signing_key=derive_signing_key(_EXAMPLE_SECRET, "20130524", "us-east-1", "s3"),
        timestamp="20130524T000000Z",
        scope="20130524/us-east-1/s3/aws4_request",
        seed_signature=_EXAMPLE_SEED,
    )
    return chunked.AwsChunkedDecoder(chunked.SIGNED, signing)


def test_signed_chunks_of_the_aws_example_decode() -> None:
    decoder = _example_decoder()
    body = _example_body(_EXAMPLE_CHUNKS)
    out = b"".join(decoder.feed(body[i : i + 1000]) for i in range(0, len(body), 1000))
    assert out == b"a" * 66560
    assert decoder.finish() == {}


def test_a_tampered_chunk_fails_its_signature() -> None:
    decoder = _example_decoder()
    body = _example_body(_EXAMPLE_CHUNKS).replace(b"a" * 10, b"b" * 10, 1)
    with pytest.raises(SignatureDoesNotMatchError):
        decoder.feed(body)


def test_a_truncated_chunked_body_is_incomplete() -> None:
    decoder = _example_decoder()
    decoder.feed(_example_body(_EXAMPLE_CHUNKS[:1]))
    with pytest.raises(Exception, match="did not provide the number of bytes"):
        decoder.finish()


def test_a_20_mb_upload_streams_in_bounded_memory(tmp_path: Path, sqlite_url: str) -> None:
    """Body -> spool -> blob store -> index, in process, with tracemalloc watching."""
    size, piece = 20 * MIB, b"z" * 65536
    store = Store.open(sqlite_url)
    try:
        buckets = BundleBuckets(store.bundle_objects, LocalBlobStore(tmp_path / "blobs"))

        async def receive() -> Any:
            for sent in range(0, size, len(piece)):
                yield {"type": "http.request", "body": piece, "more_body": sent + len(piece) < size}

        messages = receive()

        async def next_message() -> Any:
            return await messages.__anext__()

        request = Request({"type": "http", "method": "PUT", "headers": []}, next_message)
        tracemalloc.start()
        try:
            with BodySpool(tmp_path / "spool", max_size=size) as spool:
                asyncio.run(_receive(request, spool, None))
                record = buckets.put_object(BUCKET, "big", spool, content_type=None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        store.close()
    assert record.size == size
    assert peak < 8 * MIB, f"peak {peak} bytes for a {size}-byte upload"
