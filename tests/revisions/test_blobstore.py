"""The content-addressed bundle store: on local disk, and in an S3 bucket (a real moto_server)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opendeploy.errors import BundleError
from opendeploy.revisions.blobstore import (
    BlobInfo,
    BlobNotFoundError,
    BlobStore,
    LocalBlobStore,
    S3BlobStore,
)
from opendeploy.revisions.sources import s3_client
from tests.revisions.servers import CREDENTIALS, moto_server


class _Pattern(io.RawIOBase):
    """``size`` bytes of a repeating pattern, produced on demand (never held in memory)."""

    def __init__(self, size: int, seed: bytes = b"bundle") -> None:
        self._left = size
        self._block = (hashlib.sha256(seed).digest() * 2048)[: 64 * 1024]
        self.digest = hashlib.sha256()
        self.md5 = hashlib.md5()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), len(self._block), self._left)
        buffer[:n] = self._block[:n]
        self.digest.update(self._block[:n])
        self.md5.update(self._block[:n])
        self._left -= n
        return n


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    client = s3_client(endpoint_url=endpoint, credentials=CREDENTIALS, max_attempts=1)
    client.create_bucket(Bucket="blobs")
    return client


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "store")
    prefix = f"t{os.urandom(4).hex()}"  # a fresh namespace per test in the shared bucket
    return S3BlobStore("blobs", prefix, client=request.getfixturevalue("s3"))


def test_put_open_exists_delete(store: BlobStore) -> None:
    data = b"a bundle\n" * 100
    info = store.put_stream(io.BytesIO(data))

    assert info == BlobInfo(_sha(data), len(data), hashlib.md5(data).hexdigest())
    assert info.etag == info.md5
    assert store.exists(info.sha256)
    with store.open(info.sha256) as f:
        assert f.read() == data

    store.delete(info.sha256)
    assert not store.exists(info.sha256)
    with pytest.raises(BlobNotFoundError, match=f"no blob {info.sha256}"):
        store.open(info.sha256)
    store.delete(info.sha256)  # deleting again is fine


def test_empty_blob(store: BlobStore) -> None:
    info = store.put_stream(io.BytesIO(b""))
    assert (info.sha256, info.size) == (_sha(b""), 0)
    with store.open(info.sha256) as f:
        assert f.read() == b""


def test_expected_sha256_mismatch_stores_nothing(store: BlobStore, tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(BundleError, match=f"not the expected {wrong}"):
        store.put_stream(io.BytesIO(b"data"), expected_sha256=wrong)
    assert not store.exists(_sha(b"data"))
    assert store.put_stream(io.BytesIO(b"data"), expected_sha256=_sha(b"data")).size == 4


@pytest.mark.parametrize("name", ["../../etc/passwd", "A" * 64, "abc", ""])
def test_names_must_be_sha256_hex(store: BlobStore, name: str) -> None:
    for call in (store.open, store.exists, store.delete, store.path_for):
        with pytest.raises(ValueError, match="is not 64 lower-case hex digits"):
            call(name)


def test_local_layout_and_same_content_twice_is_one_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    a = store.put_stream(io.BytesIO(b"same"))
    b = store.put_stream(io.BytesIO(b"same"))

    assert a == b
    path = store.path_for(a.sha256)
    assert path == tmp_path / "sha256" / a.sha256[:2] / a.sha256[2:]
    assert path.read_bytes() == b"same"
    assert not os.access(path, os.W_OK) or os.geteuid() == 0  # read-only (root may write anyway)
    assert [p.name for p in (tmp_path / "sha256").rglob("*") if p.is_file()] == [a.sha256[2:]]
    assert store.info(a.sha256) == a
    assert store.path_for("f" * 64) is None


def test_concurrent_puts_of_the_same_and_other_content(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    payloads = [b"shared" * 50_000] * 6 + [f"own {i}".encode() * 50_000 for i in range(4)]
    results: list[BlobInfo] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(payloads))

    def put(data: bytes) -> None:
        barrier.wait()
        try:
            results.append(store.put_stream(io.BytesIO(data)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len({r.sha256 for r in results}) == 5
    files = [p for p in (tmp_path / "sha256").rglob("*") if p.is_file()]
    assert len(files) == 5  # no temporary files left behind
    for data in set(payloads):
        with store.open(_sha(data)) as f:
            assert f.read() == data


def test_big_stream_uses_bounded_memory(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    stream = _Pattern(48 * 1024 * 1024)
    tracemalloc.start()
    try:
        info = store.put_stream(io.BufferedReader(stream))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 48 * 1024 * 1024
    assert info.sha256 == stream.digest.hexdigest()
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a 48 MiB blob"


def test_s3_store_keys_etag_and_dedup(s3: Any) -> None:
    store = S3BlobStore("blobs", "dedup", client=s3)  # the trailing slash is added
    a = store.put_stream(io.BytesIO(b"bundle bytes"))
    store.put_stream(io.BytesIO(b"bundle bytes"))

    listed = s3.list_objects_v2(Bucket="blobs", Prefix="dedup/")["Contents"]
    assert [o["Key"] for o in listed] == [f"dedup/sha256/{a.sha256}"]
    assert listed[0]["ETag"].strip('"') == a.etag
    assert store.path_for(a.sha256) is None


def test_s3_store_large_blob_goes_through_a_spool_and_multipart(s3: Any) -> None:
    store = S3BlobStore("blobs", "large", client=s3)
    stream = _Pattern(9 * 1024 * 1024 + 123, seed=b"large")
    info = store.put_stream(io.BufferedReader(stream))

    assert info.sha256 == stream.digest.hexdigest()
    head = s3.head_object(Bucket="blobs", Key=store.key_for(info.sha256))
    assert head["ContentLength"] == info.size
    assert "-" in head["ETag"]  # uploaded in parts
    digest = hashlib.sha256()
    with store.open(info.sha256) as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == info.sha256


def test_s3_store_errors_name_the_bucket(s3: Any) -> None:
    store = S3BlobStore("no-such-bucket", client=s3)
    with pytest.raises(BundleError, match="blob store s3://no-such-bucket/sha256/"):
        store.put_stream(io.BytesIO(b"x"))
