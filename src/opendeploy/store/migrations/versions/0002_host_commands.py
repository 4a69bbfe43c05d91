"""Host commands: what the engine hands to agents through the Command API.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "host_commands",
        sa.Column("command_id", sa.String(length=64), nullable=False),
        sa.Column("deployment_id", sa.String(length=32), nullable=False),
        sa.Column("instance_name", sa.String(length=100), nullable=False),
        sa.Column("lifecycle_event", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("noop", sa.Boolean(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("diagnostics", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.deployment_id"],
            name=op.f("fk_host_commands_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_host_commands")),
    )
    with op.batch_alter_table("host_commands", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_host_commands_instance_name_status"),
            ["instance_name", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_host_commands_deployment_id_instance_name"),
            ["deployment_id", "instance_name"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("host_commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_host_commands_deployment_id_instance_name"))
        batch_op.drop_index(batch_op.f("ix_host_commands_instance_name_status"))
    op.drop_table("host_commands")
