"""``server_secrets``: what every replica of one database must share, made once.

The deployment-spec signer, the ``--tls`` self-signed certificate and the admin key used to be
made by each server in its own data directory: two replicas on one database then signed with two
certificates, and an official agent pinned to one rejected the other. A row per secret, inserted
by whichever replica comes first (the others read the winner's), makes them one.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 01:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_server_secrets"),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
