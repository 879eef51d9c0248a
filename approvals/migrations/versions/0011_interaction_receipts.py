"""Receipts of the Slack interactions acted on, so that a replay does nothing.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interaction_receipts",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_interaction_receipts_seen_at", "interaction_receipts", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_interaction_receipts_seen_at", "interaction_receipts")
    op.drop_table("interaction_receipts")
