"""The server's bundle store: blobs named by the SHA-256 of their content.

Content addressing makes the store simple to get right: a blob never changes once written, two
uploads of the same bundle are one blob, and writers need no locks (each writes a private temporary
file and renames it into place; the same name always means the same bytes). ``LocalBlobStore``
keeps blobs on the server's disk; ``S3BlobStore`` puts them in a bucket when one disk is not enough
(several server replicas, large fleets), as the design says.

Both read their input in fixed chunks, so memory stays bounded whatever the blob size. The object
index (bucket/key → blob) of the S3-subset front lives elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, cast

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from opendeploy.errors import BundleError

__all__ = [
    "BlobInfo",
    "BlobNotFoundError",
    "BlobStore",
    "BlobStoreUnavailableError",
    "LocalBlobStore",
    "S3BlobStore",
]

_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
# S3BlobStore spools uploads in memory up to this size, then on disk.
_SPOOL_MAX = 8 * 1024 * 1024


class BlobNotFoundError(BundleError, LookupError):
    """No blob has this SHA-256."""


class BlobStoreUnavailableError(BundleError):
    """The (remote) store refused or failed a call: down, slow beyond its retries, misconfigured."""


@dataclass(frozen=True)
class BlobInfo:
    """What a stored blob is: its SHA-256 (its name), size in bytes and MD5 (both hex)."""

    sha256: str
    size: int
    md5: str

    @property
    def etag(self) -> str:
        """The ETag S3 gives a single-part upload of these bytes (their MD5, unquoted)."""
        return self.md5


class BlobStore(Protocol):
    """A content-addressed store of bundles (see the module docstring)."""

    def put_stream(self, stream: IO[bytes], *, expected_sha256: str | None = None) -> BlobInfo:
        """Store everything ``stream`` yields; refuse it if ``expected_sha256`` does not match."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """Open a blob for reading; raise :class:`BlobNotFoundError` if it is not there."""
        ...

    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove a blob; removing one that is not there is not an error."""
        ...

    def path_for(self, sha256: str) -> Path | None:
        """The blob's file on this host if the store has one (lets the agent link, not copy)."""
        ...


def check_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lower-case hex digits (a blob name), else raise ValueError."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256: {sha256!r} is not 64 lower-case hex digits")
    return sha256


class _Digests:
    """SHA-256, MD5 and size of a stream, updated chunk by chunk."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        self.md5.update(chunk)
        self.size += len(chunk)

    def info(self, expected_sha256: str | None) -> BlobInfo:
        info = BlobInfo(self.sha256.hexdigest(), self.size, self.md5.hexdigest())
        if expected_sha256 is not None and info.sha256 != expected_sha256:
            raise BundleError(
                f"sha256: the uploaded bytes hash to {info.sha256}, "
                f"not the expected {expected_sha256}"
            )
        return info


def _copy(stream: IO[bytes], out: IO[bytes]) -> _Digests:
    digests = _Digests()
    while chunk := stream.read(_CHUNK):
        digests.update(chunk)
        out.write(chunk)
    return digests


class LocalBlobStore:
    """Blobs as read-only files ``<root>/sha256/<2 hex>/<62 hex>`` on the local disk.

    A put writes ``<root>/sha256/.tmp-*`` (same file system, so the rename is atomic), fsyncs it,
    renames it to its name and fsyncs the directory. Readers therefore see a whole blob or none;
    concurrent puts of the same content both succeed and leave one file.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._base = self.root / "sha256"

    def __repr__(self) -> str:
        return f"LocalBlobStore(root={str(self.root)!r})"

    def _path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self._base / sha256[:2] / sha256[2:]

    def put_stream(self, stream: IO[bytes], *, expected_sha256: str | None = None) -> BlobInfo:
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        self._base.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self._base, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                info = _copy(stream, out).info(expected_sha256)
                out.flush()
                os.fsync(out.fileno())
            # Never changed once written; owner-only, as everything in the server's data dir.
            os.chmod(tmp, 0o400)
            target = self._path(info.sha256)
            target.parent.mkdir(exist_ok=True, mode=0o700)
            if target.exists():
                os.unlink(tmp)  # same name, same bytes: keep the blob already there
            else:
                os.replace(tmp, target)
                _fsync_dir(target.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return info

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self._path(sha256), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"sha256: no blob {sha256} in {self._base}") from exc

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def path_for(self, sha256: str) -> Path | None:
        path = self._path(sha256)
        return path if path.is_file() else None

    def info(self, sha256: str) -> BlobInfo:
        """Size and MD5 of a stored blob (read back in chunks)."""
        with self.open(sha256) as f:
            digests = _Digests()
            while chunk := f.read(_CHUNK):
                digests.update(chunk)
        return digests.info(sha256)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (file systems that refuse a directory fsync are fine)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


class S3BlobStore:
    """Blobs as objects ``<prefix>sha256/<hex>`` in one S3 bucket (any S3-compatible store).

    A put spools the stream (in memory up to 8 MiB, then on disk) while hashing it, because the
    key is the hash; it then uploads with ``upload_fileobj`` (multipart for large blobs) unless
    the object is already there. ``client`` is a boto3 S3 client, for instance from
    :func:`opendeploy.revisions.sources.s3.s3_client`.
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.client = client

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def key_for(self, sha256: str) -> str:
        """The object key of a blob."""
        return f"{self.prefix}sha256/{check_sha256(sha256)}"

    def put_stream(self, stream: IO[bytes], *, expected_sha256: str | None = None) -> BlobInfo:
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX) as spool:
            info = _copy(stream, spool).info(expected_sha256)
            if not self.exists(info.sha256):
                spool.seek(0)
                key = self.key_for(info.sha256)
                with self._errors(key):
                    self.client.upload_fileobj(spool, self.bucket, key)
        return info

    def open(self, sha256: str) -> BinaryIO:
        key = self.key_for(sha256)
        try:
            with self._errors(key):
                response = self.client.get_object(Bucket=self.bucket, Key=key)
        except BundleError as exc:
            if _is_not_found(exc.__cause__):
                raise BlobNotFoundError(f"sha256: no blob {sha256} in {self}") from exc
            raise
        # botocore's StreamingBody is an io.IOBase with read(), close() and a context manager.
        return cast(BinaryIO, response["Body"])

    def exists(self, sha256: str) -> bool:
        key = self.key_for(sha256)
        try:
            with self._errors(key):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except BundleError as exc:
            if _is_not_found(exc.__cause__):
                return False
            raise
        return True

    def delete(self, sha256: str) -> None:
        key = self.key_for(sha256)
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def path_for(self, sha256: str) -> Path | None:
        check_sha256(sha256)
        return None

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise BlobStoreUnavailableError(f"blob store s3://{self.bucket}/{key}: {exc}") from exc


def _is_not_found(exc: BaseException | None) -> bool:
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or error.get("Code") in ("404", "NoSuchKey", "NotFound")
