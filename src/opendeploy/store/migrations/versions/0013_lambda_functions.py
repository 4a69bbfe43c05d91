"""``lambda_functions``, ``lambda_function_versions``, ``lambda_aliases``: the built-in function
host's functions, their versions (code zips in the bundle store) and aliases with routing weights.

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-08 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lambda_functions",
        sa.Column("function_name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("function_name", name="pk_lambda_functions"),
    )
    op.create_table(
        "lambda_function_versions",
        sa.Column("function_name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("code_size", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.String(36), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["function_name"],
            ["lambda_functions.function_name"],
            name="fk_lambda_function_versions_function_name_lambda_functions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("function_name", "version", name="pk_lambda_function_versions"),
    )
    op.create_table(
        "lambda_aliases",
        sa.Column("function_name", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("function_version", sa.String(16), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("routing", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("revision_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["function_name"],
            ["lambda_functions.function_name"],
            name="fk_lambda_aliases_function_name_lambda_functions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("function_name", "name", name="pk_lambda_aliases"),
    )


def downgrade() -> None:
    op.drop_table("lambda_aliases")
    op.drop_table("lambda_function_versions")
    op.drop_table("lambda_functions")
