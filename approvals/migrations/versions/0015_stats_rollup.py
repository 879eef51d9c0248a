"""Insights at scale: the figures' rollup (counts per day, tool, agent and who ended it;
time-to-decision histograms per day, over all and per tool, agent and reviewer) and each
approval's ``folded`` mark.

Approvals already there are folded by the running service, a batch at a time.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(
            sa.Column("folded", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
    op.create_index(
        "ix_approvals_unfolded",
        "approvals",
        # covering what the figures read (approvals.queue.models says why)
        ["status", "created_at", "tool", "agent_id", "resolved_by", "resolved_at", "folded"],
        sqlite_where=sa.text("folded = 0"),
        postgresql_where=sa.text("folded = false"),
    )
    op.create_table(
        "stats_counts",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("tool", sa.String(201), primary_key=True),
        sa.Column("agent", sa.String(201), primary_key=True),
        sa.Column("reviewer", sa.String(201), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("auto", sa.Boolean(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "stats_times",
        sa.Column("dimension", sa.String(16), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("value", sa.String(201), primary_key=True),
        sa.Column("bucket", sa.Integer(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stats_times")
    op.drop_table("stats_counts")
    op.drop_index("ix_approvals_unfolded", table_name="approvals")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("folded")
