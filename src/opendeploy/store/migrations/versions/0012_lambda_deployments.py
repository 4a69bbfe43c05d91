"""``lambda_deployments``: the function, alias and weights of each Lambda deployment.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 01:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lambda_deployments",
        sa.Column("deployment_id", sa.String(32), nullable=False),
        sa.Column("spec", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("target_weight", sa.Float(), nullable=True),
        sa.Column("weights", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.deployment_id"],
            name="fk_lambda_deployments_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deployment_id", name="pk_lambda_deployments"),
    )


def downgrade() -> None:
    op.drop_table("lambda_deployments")
