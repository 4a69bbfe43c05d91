"""``host_commands.seen_status`` (the status the engine last took in) and an index on
``(deployment_id, closed_at)``.

The engine keeps each deployment's open commands in memory between passes and reads back only
those whose status moved since it last looked (an agent acknowledged or completed them):
reading every open command each pass made a pass O(targets) rows, the largest cost per
host-event in a fleet of thousands.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("host_commands", sa.Column("seen_status", sa.String(16), nullable=True))
    op.create_index(
        "ix_host_commands_deployment_id_closed_at", "host_commands", ["deployment_id", "closed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_host_commands_deployment_id_closed_at", "host_commands")
    with op.batch_alter_table("host_commands") as batch:
        batch.drop_column("seen_status")
