"""``dashboard_sessions``: dashboard sign-ins held server-side.

A session used to be only a signed cookie, valid until it expired however the user signed out;
a row per sign-in lets sign-out and the revocation of its access key (ON DELETE CASCADE) end it
at once, on every replica.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("access_key_id", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["access_key_id"],
            ["access_keys.access_key_id"],
            name="fk_dashboard_sessions_access_key_id_access_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name="pk_dashboard_sessions"),
    )
    op.create_index("ix_dashboard_sessions_access_key_id", "dashboard_sessions", ["access_key_id"])


def downgrade() -> None:
    op.drop_index("ix_dashboard_sessions_access_key_id", "dashboard_sessions")
    op.drop_table("dashboard_sessions")
