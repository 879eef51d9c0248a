"""Leases: which instance holds a single-run duty (a connector source) until when.

Revision ID: 0008
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("acquired_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
