"""The engine's verdict on an instance's agent: ``on_premises_instances.unreachable_since``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 13:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "on_premises_instances",
        sa.Column("unreachable_since", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("on_premises_instances") as batch:
        batch.drop_column("unreachable_since")
