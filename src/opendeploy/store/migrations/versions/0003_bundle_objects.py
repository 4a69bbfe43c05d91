"""The S3-subset front of the bundle store: buckets, object versions, multipart uploads.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 01:16:38.295213
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "bundle_buckets",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_bundle_buckets")),
    )
    op.create_table(
        "bundle_objects",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("delete_marker", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bucket"],
            ["bundle_buckets.name"],
            name=op.f("fk_bundle_objects_bucket_bundle_buckets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_bundle_objects")),
        sa.UniqueConstraint("version_id", name=op.f("uq_bundle_objects_version_id")),
    )
    with op.batch_alter_table("bundle_objects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bundle_objects_bucket_key_seq"), ["bucket", "key", "seq"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_bundle_objects_sha256"), ["sha256"], unique=False)

    op.create_table(
        "bundle_uploads",
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bucket"],
            ["bundle_buckets.name"],
            name=op.f("fk_bundle_uploads_bucket_bundle_buckets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", name=op.f("pk_bundle_uploads")),
    )
    op.create_table(
        "bundle_upload_parts",
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["bundle_uploads.upload_id"],
            name=op.f("fk_bundle_upload_parts_upload_id_bundle_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "part_number", name=op.f("pk_bundle_upload_parts")),
    )
    with op.batch_alter_table("bundle_upload_parts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bundle_upload_parts_sha256"), ["sha256"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("bundle_upload_parts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bundle_upload_parts_sha256"))

    op.drop_table("bundle_upload_parts")
    op.drop_table("bundle_uploads")
    with op.batch_alter_table("bundle_objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bundle_objects_sha256"))
        batch_op.drop_index(batch_op.f("ix_bundle_objects_bucket_key_seq"))

    op.drop_table("bundle_objects")
    op.drop_table("bundle_buckets")
