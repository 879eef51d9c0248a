"""Connector sources.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("dialect", sa.String(32), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=False),
        sa.Column("resume_url", sa.String(2000)),
        sa.Column("resume_secret", sa.String(100), nullable=False),
        sa.Column("history", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cursor", sa.String(500)),
        sa.Column("last_error", sa.Text()),
        sa.Column("events_received", sa.Integer(), nullable=False),
        sa.Column("events_skipped", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sources")
