"""``deployments.engine_revision`` (bumped by every engine write to a deployment's targets);
indexes on ``on_premises_instances.deregister_time`` and ``.instance_arn`` (every instance key's
SigV4 lookup) and on ``host_commands.status``.

The engine keeps the targets and lifecycle events of the deployments it drives in memory between
passes and re-reads them only when this counter says someone else (another replica, or this one
before a restart) wrote them since. Every server process asks for the newest deregistration
each second, to forget the cached secrets of revoked instance keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "deployments",
        sa.Column("engine_revision", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index(
        "ix_on_premises_instances_deregister_time", "on_premises_instances", ["deregister_time"]
    )
    op.create_index("ix_host_commands_status", "host_commands", ["status"])
    op.create_index(
        "ix_on_premises_instances_instance_arn", "on_premises_instances", ["instance_arn"]
    )


def downgrade() -> None:
    op.drop_index("ix_host_commands_status", "host_commands")
    op.drop_index("ix_on_premises_instances_instance_arn", "on_premises_instances")
    op.drop_index("ix_on_premises_instances_deregister_time", "on_premises_instances")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("engine_revision")
