"""S3 semantics over the bundle store: versions, delete markers, multipart uploads, ETags.

:class:`BundleBuckets` joins the object index (``store.bundle_objects``) and the content-addressed
blob store (``revisions.blobstore``). Bytes go to the blob store first and the index row second,
so a row never names a missing blob. A blob is deleted once no version or part names it; a put of
the same bytes racing that deletion is the one window left open (a later put repairs it).

S3 rules kept here, as AWS documents them:
- bucket names: 3–63 characters of lower-case letters, digits, ``.`` and ``-``, starting and
  ending with a letter or digit; keys: 1–1024 bytes of UTF-8;
- ETag of a single PUT: the hex MD5 of the body; of a multipart upload: the hex MD5 of the
  concatenated binary MD5s of its parts, then ``-<number of parts>``;
- multipart: part numbers 1–10,000, every part but the last at least 5 MiB, the list given to
  CompleteMultipartUpload in ascending order with each part's ETag;
- every PUT creates a new version id; DELETE without one adds a delete marker.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, BinaryIO

from opendeploy.api.s3.body import BodySpool
from opendeploy.api.s3.errors import (
    EntityTooSmallError,
    InvalidArgumentError,
    InvalidBucketNameError,
    InvalidPartError,
    InvalidPartOrderError,
    KeyTooLongError,
    MethodNotAllowedError,
    NoSuchBucketError,
    NoSuchKeyError,
    NoSuchUploadError,
    NoSuchVersionError,
)
from opendeploy.revisions.blobstore import BlobInfo, BlobStore
from opendeploy.store.bundle_objects import BundleObjects, ObjectRecord, PartRecord, UploadRecord

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000
DEFAULT_CONTENT_TYPE = "binary/octet-stream"  # what S3 answers when the upload named none
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_READ_CHUNK = 1024 * 1024


def check_bucket_name(name: str) -> str:
    """``name`` if it is a valid S3 bucket name, else InvalidBucketName."""
    if not _BUCKET_NAME.fullmatch(name) or ".." in name:
        raise InvalidBucketNameError(
            f"The specified bucket is not valid: {name!r} must be 3-63 lower-case letters, "
            "digits, '.' or '-', starting and ending with a letter or digit.",
            BucketName=name,
        )
    return name


def check_key(key: str) -> str:
    """``key`` if it is a valid object key (1–1024 bytes of UTF-8)."""
    if not key:
        raise InvalidArgumentError("The object key must not be empty.")
    if len(key.encode("utf-8")) > 1024:
        raise KeyTooLongError("Your key is too long: it exceeds 1024 bytes of UTF-8.", Key=key)
    return key


def multipart_etag(md5s: list[str]) -> str:
    """The ETag S3 gives a multipart upload of parts with these hex MD5s."""
    joined = b"".join(bytes.fromhex(md5) for md5 in md5s)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(md5s)}"


def new_version_id() -> str:
    """An opaque, URL-safe version id (32 characters, like S3's)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class DeleteResult:
    """What DeleteObject answers: the version it removed or created, and whether a marker."""

    version_id: str | None
    delete_marker: bool


class _Chain:
    """Read several blobs one after the other, as one stream (bounded memory)."""

    def __init__(self, blobs: BlobStore, names: list[str]) -> None:
        self._blobs = blobs
        self._names = list(names)
        self._current: BinaryIO | None = None

    def read(self, size: int = -1) -> bytes:
        while True:
            if self._current is None:
                if not self._names:
                    return b""
                self._current = self._blobs.open(self._names.pop(0))
            data = self._current.read(size if size and size > 0 else _READ_CHUNK)
            if data:
                return data
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


class BundleBuckets:
    """The S3 operations of the bundle store front, synchronous (run them off the event loop)."""

    def __init__(
        self,
        index: BundleObjects,
        blobs: BlobStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.index = index
        self.blobs = blobs
        self._clock = clock

    # -- buckets ----------------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> bool:
        """Create ``bucket``; True if it is new (re-creating one's own bucket is allowed)."""
        return self.index.ensure_bucket(check_bucket_name(bucket), now=self._clock())

    def head_bucket(self, bucket: str) -> None:
        """NoSuchBucket unless ``bucket`` exists."""
        if not self.index.bucket_exists(bucket):
            raise NoSuchBucketError("The specified bucket does not exist", BucketName=bucket)

    def buckets(self) -> list[tuple[str, datetime]]:
        return self.index.buckets()

    # -- objects ----------------------------------------------------------------------------

    def put_object(
        self, bucket: str, key: str, body: BodySpool, *, content_type: str | None
    ) -> ObjectRecord:
        """Store ``body`` as a new version of ``key`` (the bucket is created on first use)."""
        check_bucket_name(bucket)
        check_key(key)
        info = self._store(body)
        record = ObjectRecord(
            bucket=bucket,
            key=key,
            version_id=new_version_id(),
            sha256=info.sha256,
            size=info.size,
            etag=info.md5,
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            delete_marker=False,
            created_at=self._clock(),
        )
        self.index.add_version(record)
        return record

    def get_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectRecord:
        """The version to serve; NoSuchBucket / NoSuchKey / NoSuchVersion as S3 answers them.

        A delete marker as current version reads as NoSuchKey (with ``delete_marker`` in the
        error details); asking for a marker by its version id is MethodNotAllowed, as in S3.
        """
        self.head_bucket(bucket)
        if version_id is not None and version_id != "null":
            record = self.index.version(bucket, key, version_id)
            if record is None:
                raise NoSuchVersionError(
                    "The specified version does not exist.", Key=key, VersionId=version_id
                )
            if record.delete_marker:
                raise MethodNotAllowedError(
                    "The specified method is not allowed against this resource.",
                    Method="GET",
                    ResourceType="DeleteMarker",
                    DeleteMarker="true",
                    VersionId=version_id,
                )
            return record
        record = self.index.current(bucket, key)
        if record is None:
            raise NoSuchKeyError("The specified key does not exist.", Key=key)
        if record.delete_marker:
            raise NoSuchKeyError(
                "The specified key does not exist.",
                Key=key,
                DeleteMarker="true",
                VersionId=record.version_id,
            )
        return record

    def open(self, record: ObjectRecord) -> BinaryIO:
        """The bytes of ``record`` (never a delete marker)."""
        assert record.sha256 is not None
        return self.blobs.open(record.sha256)

    def delete_object(self, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
        """Remove a version for good, or (without a version id) add a delete marker."""
        self.head_bucket(bucket)
        if version_id is not None:
            removed = self.index.remove_version(bucket, key, version_id)
            if removed is None:
                # S3 answers 204 for a version that is not there.
                return DeleteResult(version_id=version_id, delete_marker=False)
            if removed.sha256 is not None:
                self._release(removed.sha256)
            return DeleteResult(version_id=version_id, delete_marker=removed.delete_marker)
        marker = ObjectRecord(
            bucket=bucket,
            key=key,
            version_id=new_version_id(),
            sha256=None,
            size=0,
            etag="",
            content_type="",
            delete_marker=True,
            created_at=self._clock(),
        )
        self.index.add_version(marker)
        return DeleteResult(version_id=marker.version_id, delete_marker=True)

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        after: str = "",
        max_keys: int = 1000,
        delimiter: str = "",
    ) -> tuple[list[ObjectRecord | str], bool]:
        """Current objects under ``prefix`` after ``after``, keys and common prefixes (strings,
        when ``delimiter`` groups them) in key order; returns (page, truncated)."""
        self.head_bucket(bucket)
        entries: list[ObjectRecord | str] = []
        cursor = after
        while True:
            rows = self.index.list_current(bucket, prefix=prefix, after=cursor, limit=1000)
            for row in rows:
                cursor = row.key
                entry: ObjectRecord | str = row
                if delimiter:
                    cut = row.key.find(delimiter, len(prefix))
                    if cut >= 0:
                        entry = row.key[: cut + len(delimiter)]
                        if entry <= after or (entries and entries[-1] == entry):
                            continue  # a common prefix already listed (here or on a page before)
                if len(entries) == max_keys:
                    return entries, True
                entries.append(entry)
            if len(rows) < 1000:
                return entries, False

    # -- multipart ---------------------------------------------------------------------------

    def create_upload(self, bucket: str, key: str, *, content_type: str | None) -> str:
        """Start a multipart upload; returns its id."""
        check_bucket_name(bucket)
        check_key(key)
        upload_id = secrets.token_urlsafe(32)
        self.index.create_upload(
            UploadRecord(
                upload_id=upload_id,
                bucket=bucket,
                key=key,
                content_type=content_type or DEFAULT_CONTENT_TYPE,
                created_at=self._clock(),
            )
        )
        return upload_id

    def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: BodySpool
    ) -> str:
        """Store one part (replacing an earlier upload of that number); returns its ETag."""
        self._upload(bucket, key, upload_id)
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise InvalidArgumentError(
                f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive: "
                f"got {part_number}.",
                ArgumentName="partNumber",
                ArgumentValue=str(part_number),
            )
        info = self._store(body)
        part = PartRecord(part_number, info.sha256, info.size, info.md5, self._clock())
        recorded, release = self.index.put_part(upload_id, part)
        if release is not None and release != info.sha256:
            self._release(release)
        if not recorded:
            self._release(info.sha256)
            raise NoSuchUploadError(_NO_SUCH_UPLOAD, UploadId=upload_id)
        return info.md5

    def complete_upload(
        self, bucket: str, key: str, upload_id: str, listed: list[tuple[int, str]]
    ) -> ObjectRecord:
        """Join the listed parts (number, ETag) into a new version of ``key``."""
        upload = self._upload(bucket, key, upload_id)
        if not listed:
            raise InvalidArgumentError(
                "You must specify at least one part.", ArgumentName="MultipartUpload"
            )
        numbers = [number for number, _ in listed]
        if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
            raise InvalidPartOrderError(
                "The list of parts was not in ascending order. Parts must be ordered by part "
                f"number: got {numbers}.",
                UploadId=upload_id,
            )
        uploaded = {part.part_number: part for part in self.index.parts(upload_id)}
        chosen: list[PartRecord] = []
        for number, etag in listed:
            part = uploaded.get(number)
            if part is None or etag.strip().strip('"') != part.md5:
                raise InvalidPartError(
                    "One or more of the specified parts could not be found. The part may not "
                    "have been uploaded, or the specified entity tag may not match the part's "
                    f"entity tag: part {number}, ETag {etag!r}.",
                    UploadId=upload_id,
                    PartNumber=str(number),
                    ETag=etag,
                )
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_SIZE:
                raise EntityTooSmallError(
                    "Your proposed upload is smaller than the minimum allowed size: part "
                    f"{part.part_number} has {part.size} bytes, every part but the last needs "
                    f"{MIN_PART_SIZE}.",
                    ProposedSize=str(part.size),
                    MinSizeAllowed=str(MIN_PART_SIZE),
                    PartNumber=str(part.part_number),
                )
        chain = _Chain(self.blobs, [part.sha256 for part in chosen])
        try:
            info = self.blobs.put_stream(chain)  # type: ignore[arg-type]  # read() is enough
        finally:
            chain.close()
        record = ObjectRecord(
            bucket=bucket,
            key=key,
            version_id=new_version_id(),
            sha256=info.sha256,
            size=info.size,
            etag=multipart_etag([part.md5 for part in chosen]),
            content_type=upload.content_type,
            delete_marker=False,
            created_at=self._clock(),
        )
        released = self.index.end_upload(upload_id, result=record)
        if released is None:
            self._release(info.sha256)
            raise NoSuchUploadError(_NO_SUCH_UPLOAD, UploadId=upload_id)
        for sha256 in set(released):
            self._release(sha256)
        return record

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Drop an upload and its parts."""
        self._upload(bucket, key, upload_id)
        released = self.index.end_upload(upload_id)
        if released is None:
            raise NoSuchUploadError(_NO_SUCH_UPLOAD, UploadId=upload_id)
        for sha256 in set(released):
            self._release(sha256)

    # -- helpers -----------------------------------------------------------------------------

    def _upload(self, bucket: str, key: str, upload_id: str) -> UploadRecord:
        upload = self.index.upload(upload_id)
        if upload is None or upload.bucket != bucket or upload.key != key:
            raise NoSuchUploadError(_NO_SUCH_UPLOAD, UploadId=upload_id)
        return upload

    def _store(self, body: BodySpool) -> BlobInfo:
        stream: IO[bytes] = body.rewind()
        return self.blobs.put_stream(stream, expected_sha256=body.sha256.hexdigest())

    def _release(self, sha256: str) -> None:
        if not self.index.blob_in_use(sha256):
            self.blobs.delete(sha256)


_NO_SUCH_UPLOAD = (
    "The specified upload does not exist. The upload ID may be invalid, or the upload may have "
    "been aborted or completed."
)
