"""Approvals, votes and policies.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.BigInteger(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.Text()),
        sa.Column("tool", sa.String(200)),
        sa.Column("arguments", sa.JSON()),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("thread_id", sa.String(200)),
        sa.Column("run_id", sa.String(200)),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("requested_by", sa.String(200)),
        sa.Column("callback_url", sa.String(2000)),
        sa.Column("timeout_at", sa.String(32)),
        sa.Column("on_timeout", sa.String(16), nullable=False),
        sa.Column("policy_id", sa.String(64)),
        sa.Column("min_approvals", sa.Integer(), nullable=False),
        sa.Column("allow_self_approval", sa.Boolean(), nullable=False),
        sa.Column("reviewers", sa.JSON()),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("resolved_at", sa.String(32)),
        sa.Column("resolved_by", sa.String(200)),
        sa.Column("decision", sa.String(16)),
        sa.Column("comment", sa.Text()),
        sa.Column("answer", sa.Text()),
        sa.Column("edited_arguments", sa.JSON()),
        sa.Column("resolution_event_id", sa.BigInteger()),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_approvals_status_event", "approvals", ["status", "event_id"])
    op.create_index("ix_approvals_run", "approvals", ["run_id", "event_id"])
    op.create_index("ix_approvals_due", "approvals", ["status", "timeout_at"])
    op.create_table(
        "approval_votes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("approval_id", sa.String(64), sa.ForeignKey("approvals.id"), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("approval_id", "principal"),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("tool", sa.String(200)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("min_approvals", sa.Integer(), nullable=False),
        sa.Column("allow_self_approval", sa.Boolean(), nullable=False),
        sa.Column("reviewers", sa.JSON()),
        sa.Column("created_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("policies")
    op.drop_table("approval_votes")
    op.drop_table("approvals")
