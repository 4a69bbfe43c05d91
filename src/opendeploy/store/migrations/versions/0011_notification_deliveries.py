"""``notification_deliveries``: one row per (outbox event, trigger), the delivery log of
notifications (SNS topics and webhooks) and the claim that lets one replica send each.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 01:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
        ),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("trigger_name", sa.String(100), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("deployment_id", sa.String(32), nullable=False),
        sa.Column("instance_id", sa.String(100), nullable=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(1600), nullable=False),
        sa.Column("subject", sa.String(100), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
        sa.UniqueConstraint(
            "event_seq", "trigger_name", name="uq_notification_deliveries_event_seq_trigger_name"
        ),
    )
    op.create_index(
        "ix_notification_deliveries_status_next_attempt_at",
        "notification_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_notification_deliveries_deployment_id", "notification_deliveries", ["deployment_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_notification_deliveries_deployment_id", "notification_deliveries")
    op.drop_index("ix_notification_deliveries_status_next_attempt_at", "notification_deliveries")
    op.drop_table("notification_deliveries")
