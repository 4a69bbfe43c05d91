"""``host_commands.executor`` (``agent`` or ``server``: the steps the server carries out itself,
such as BlockTraffic and AllowTraffic) and the ``deployment_events`` outbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "host_commands",
        sa.Column("executor", sa.String(16), nullable=False, server_default="agent"),
    )
    op.create_index("ix_host_commands_executor_status", "host_commands", ["executor", "status"])
    op.create_table(
        "deployment_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
        ),
        sa.Column("deployment_id", sa.String(32), nullable=False),
        sa.Column("instance_id", sa.String(100), nullable=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_deployment_events"),
    )
    op.create_index(
        "ix_deployment_events_delivered_at_seq", "deployment_events", ["delivered_at", "seq"]
    )
    op.create_index(
        "ix_deployment_events_deployment_id_seq", "deployment_events", ["deployment_id", "seq"]
    )


def downgrade() -> None:
    op.drop_index("ix_deployment_events_deployment_id_seq", "deployment_events")
    op.drop_index("ix_deployment_events_delivered_at_seq", "deployment_events")
    op.drop_table("deployment_events")
    op.drop_index("ix_host_commands_executor_status", "host_commands")
    with op.batch_alter_table("host_commands") as batch:
        batch.drop_column("executor")
