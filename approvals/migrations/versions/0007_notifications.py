"""Reviewer contacts, notification routes, Slack messages and used email links.

Revision ID: 0007
Revises: 0005 (a branch; `migrate` upgrades every head); depends on 0003 (users)
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = "0003"  # the users table


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.String(320)))
        batch.add_column(sa.Column("slack_user_id", sa.String(64)))
        batch.add_column(
            sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("approval_id", sa.String(64)))
    op.create_index("ix_deliveries_approval", "webhook_deliveries", ["approval_id"])
    op.create_table(
        "notification_routes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(320), nullable=False),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("tool", sa.String(200)),
        sa.Column("remind_after_seconds", sa.Integer()),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "slack_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("approval_id", sa.String(64), nullable=False, index=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.UniqueConstraint("channel", "ts"),
    )
    op.create_table(
        "email_links_used",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("approval_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("used_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("email_links_used")
    op.drop_table("slack_messages")
    op.drop_table("notification_routes")
    op.drop_index("ix_deliveries_approval", "webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("approval_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled")
        batch.drop_column("slack_user_id")
        batch.drop_column("email")
