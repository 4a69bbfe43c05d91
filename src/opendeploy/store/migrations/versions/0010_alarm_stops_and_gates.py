"""``deployments.stop_by_alarm``, ``stop_alarms`` and ``gate_state``: the facts the alarm watcher
records for the engine to act on.

A stop raised by an alarm is a stop request (``stop_requested``) marked as the alarm's, with the
alarms that raised it (``{"alarms": [...], "unreadable": bool}``); ``gate_state`` is a deployment's
analysis gate and what its metric last read (see ``engine.alarms``).

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-08 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(
            sa.Column("stop_by_alarm", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("stop_alarms", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("gate_state", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("gate_state")
        batch.drop_column("stop_alarms")
        batch.drop_column("stop_by_alarm")
