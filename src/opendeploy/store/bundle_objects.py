"""The object index of the bundle store's S3 front: buckets, object versions, multipart uploads.

Bytes live in the content-addressed blob store (``revisions/blobstore.py``); these rows name them:
``(bucket, key, version id) -> sha256, size, ETag, content type``. Every PUT adds a version (the
one with the highest ``seq`` is the key's current version); DELETE without a version id adds a
delete marker, as a versioned S3 bucket does, so a revision registered with a version id stays
downloadable. Buckets are plain names, created explicitly or by the first upload into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from opendeploy.store import tables
from opendeploy.store._base import Repository

_B = tables.bundle_buckets
_O = tables.bundle_objects
_U = tables.bundle_uploads
_P = tables.bundle_upload_parts


@dataclass(frozen=True)
class ObjectRecord:
    """One version of one key. A delete marker has no blob (``sha256`` None) and size 0."""

    bucket: str
    key: str
    version_id: str
    sha256: str | None
    size: int
    etag: str  # unquoted: hex MD5, or hex MD5 of the part MD5s + "-<parts>" for multipart
    content_type: str
    delete_marker: bool
    created_at: datetime


@dataclass(frozen=True)
class UploadRecord:
    """A multipart upload in progress."""

    upload_id: str
    bucket: str
    key: str
    content_type: str
    created_at: datetime


@dataclass(frozen=True)
class PartRecord:
    """One uploaded part of a multipart upload (its bytes are a blob of their own)."""

    part_number: int
    sha256: str
    size: int
    md5: str
    created_at: datetime


def _object(row: Any) -> ObjectRecord:
    return ObjectRecord(
        bucket=row.bucket,
        key=row.key,
        version_id=row.version_id,
        sha256=row.sha256,
        size=row.size,
        etag=row.etag,
        content_type=row.content_type,
        delete_marker=row.delete_marker,
        created_at=row.created_at,
    )


def _insert_object(conn: Connection, record: ObjectRecord) -> None:
    conn.execute(
        insert(_O).values(
            bucket=record.bucket,
            key=record.key,
            version_id=record.version_id,
            sha256=record.sha256,
            size=record.size,
            etag=record.etag,
            content_type=record.content_type,
            delete_marker=record.delete_marker,
            created_at=record.created_at,
        )
    )


class BundleObjects(Repository):
    """Rows of the S3 front; the blob store is the caller's business."""

    # -- buckets ----------------------------------------------------------------------------

    def ensure_bucket(self, name: str, *, now: datetime) -> bool:
        """Create bucket ``name`` unless it exists; True if this call created it."""
        with self.db.write() as conn:
            return self._ensure_bucket(conn, name, now)

    def _ensure_bucket(self, conn: Connection, name: str, now: datetime) -> bool:
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        result = conn.execute(
            dialect_insert(_B).values(name=name, created_at=now).on_conflict_do_nothing()
        )
        return bool(result.rowcount)

    def bucket_exists(self, name: str) -> bool:
        """Whether bucket ``name`` exists."""
        with self.db.read() as conn:
            return conn.execute(select(_B.c.name).where(_B.c.name == name)).first() is not None

    def buckets(self) -> list[tuple[str, datetime]]:
        """Every bucket as (name, creation time), by name."""
        with self.db.read() as conn:
            rows = conn.execute(select(_B.c.name, _B.c.created_at).order_by(_B.c.name)).all()
        return [(row.name, row.created_at) for row in rows]

    # -- objects ----------------------------------------------------------------------------

    def add_version(self, record: ObjectRecord) -> None:
        """Make ``record`` the current version of its key (creating its bucket if needed)."""
        with self.db.write() as conn:
            self._ensure_bucket(conn, record.bucket, record.created_at)
            _insert_object(conn, record)

    def current(self, bucket: str, key: str) -> ObjectRecord | None:
        """The current version of ``key`` (possibly a delete marker), or None if it has none."""
        with self.db.read() as conn:
            row = conn.execute(
                select(_O)
                .where(_O.c.bucket == bucket, _O.c.key == key)
                .order_by(_O.c.seq.desc())
                .limit(1)
            ).first()
        return None if row is None else _object(row)

    def version(self, bucket: str, key: str, version_id: str) -> ObjectRecord | None:
        """Version ``version_id`` of ``key``, or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(_O).where(
                    _O.c.bucket == bucket, _O.c.key == key, _O.c.version_id == version_id
                )
            ).first()
        return None if row is None else _object(row)

    def remove_version(self, bucket: str, key: str, version_id: str) -> ObjectRecord | None:
        """Delete version ``version_id`` of ``key`` for good; returns it, or None if absent."""
        with self.db.write() as conn:
            row = conn.execute(
                select(_O).where(
                    _O.c.bucket == bucket, _O.c.key == key, _O.c.version_id == version_id
                )
            ).first()
            if row is None:
                return None
            conn.execute(delete(_O).where(_O.c.seq == row.seq))
        return _object(row)

    def list_current(
        self, bucket: str, *, prefix: str = "", after: str = "", limit: int = 1000
    ) -> list[ObjectRecord]:
        """Current, non-deleted versions of keys starting with ``prefix`` and sorting after
        ``after``, in UTF-8 binary key order (as S3 lists), at most ``limit``."""
        newest = (
            select(_O.c.bucket, _O.c.key, func.max(_O.c.seq).label("seq"))
            .where(_O.c.bucket == bucket)
            .group_by(_O.c.bucket, _O.c.key)
            .subquery()
        )
        with self.db.read() as conn:
            # Binary order: PostgreSQL's default collation would sort by locale, S3 by bytes.
            key_col = _O.c.key.collate("C") if conn.dialect.name == "postgresql" else _O.c.key
            query = (
                select(_O)
                .join(newest, and_(_O.c.seq == newest.c.seq))
                .where(_O.c.delete_marker.is_(False))
                .order_by(key_col)
                .limit(limit)
            )
            if prefix:
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(_O.c.key.like(f"{escaped}%", escape="\\"))
            if after:
                query = query.where(key_col > after)
            rows = conn.execute(query).all()
        return [_object(row) for row in rows]

    def blob_in_use(self, sha256: str) -> bool:
        """Whether any object version, uploaded part or function version still names blob
        ``sha256``."""
        with self.db.read() as conn:
            in_objects = conn.execute(select(_O.c.seq).where(_O.c.sha256 == sha256).limit(1))
            if in_objects.first() is not None:
                return True
            in_parts = conn.execute(select(_P.c.upload_id).where(_P.c.sha256 == sha256).limit(1))
            if in_parts.first() is not None:
                return True
            # The function host keeps its code zips in the same store (store/functions.py).
            fv = tables.lambda_function_versions
            in_functions = conn.execute(
                select(fv.c.version).where(fv.c.code_sha256 == sha256).limit(1)
            )
            return in_functions.first() is not None

    # -- multipart uploads -------------------------------------------------------------------

    def create_upload(self, record: UploadRecord) -> None:
        """Start a multipart upload (creating its bucket if needed)."""
        with self.db.write() as conn:
            self._ensure_bucket(conn, record.bucket, record.created_at)
            conn.execute(
                insert(_U).values(
                    upload_id=record.upload_id,
                    bucket=record.bucket,
                    key=record.key,
                    content_type=record.content_type,
                    created_at=record.created_at,
                )
            )

    def upload(self, upload_id: str) -> UploadRecord | None:
        """The multipart upload ``upload_id``, or None."""
        with self.db.read() as conn:
            row = conn.execute(select(_U).where(_U.c.upload_id == upload_id)).first()
        if row is None:
            return None
        return UploadRecord(row.upload_id, row.bucket, row.key, row.content_type, row.created_at)

    def put_part(self, upload_id: str, part: PartRecord) -> tuple[bool, str | None]:
        """Record (or replace) a part of ``upload_id``.

        Returns (recorded, blob to release): the replaced part's blob, or, when the upload is
        gone (completed or aborted meanwhile), False and this part's own blob.
        """
        with self.db.write() as conn:
            exists = conn.execute(select(_U.c.upload_id).where(_U.c.upload_id == upload_id))
            if exists.first() is None:
                return False, part.sha256
            where = (_P.c.upload_id == upload_id, _P.c.part_number == part.part_number)
            old = conn.execute(select(_P.c.sha256).where(*where)).scalar_one_or_none()
            if old is not None:
                conn.execute(delete(_P).where(*where))
            conn.execute(
                insert(_P).values(
                    upload_id=upload_id,
                    part_number=part.part_number,
                    sha256=part.sha256,
                    size=part.size,
                    md5=part.md5,
                    created_at=part.created_at,
                )
            )
        return True, old

    def parts(self, upload_id: str) -> list[PartRecord]:
        """The parts uploaded so far, by part number."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_P).where(_P.c.upload_id == upload_id).order_by(_P.c.part_number)
            ).all()
        return [PartRecord(r.part_number, r.sha256, r.size, r.md5, r.created_at) for r in rows]

    def end_upload(self, upload_id: str, *, result: ObjectRecord | None = None) -> list[str] | None:
        """Finish (``result`` becomes the key's current version) or abort an upload.

        Returns the blobs of its parts, to be deleted if nothing else uses them, or None when the
        upload was already gone (ended by someone else).
        """
        with self.db.write() as conn:
            exists = conn.execute(select(_U.c.upload_id).where(_U.c.upload_id == upload_id))
            if exists.first() is None:
                return None
            blobs: list[str] = list(
                conn.execute(select(_P.c.sha256).where(_P.c.upload_id == upload_id)).scalars()
            )
            conn.execute(delete(_P).where(_P.c.upload_id == upload_id))
            conn.execute(delete(_U).where(_U.c.upload_id == upload_id))
            if result is not None:
                self._ensure_bucket(conn, result.bucket, result.created_at)
                _insert_object(conn, result)
        return blobs

    # -- who may do what ---------------------------------------------------------------------

    def access_key_kind(self, access_key_id: str) -> str | None:
        """``"admin"`` or ``"instance"`` for a known key, else None (the S3 front's permissions)."""
        t = tables.access_keys
        with self.db.read() as conn:
            return conn.execute(
                select(t.c.kind).where(t.c.access_key_id == access_key_id)
            ).scalar_one_or_none()
