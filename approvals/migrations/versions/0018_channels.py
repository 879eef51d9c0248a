"""Channels of one kind: the messages every live channel (Slack, Discord, Teams) posted and
edits when an approval resolves, the conversations a chat bot learned, and the reviewers'
Discord and Teams ids.

``slack_messages`` becomes ``channel_messages`` (its rows kept, marked ``slack``).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("discord_user_id", sa.String(64)))
        batch.add_column(sa.Column("teams_user_id", sa.String(64)))
    op.create_table(
        "channel_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("approval_id", sa.String(64), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("conversation", sa.String(320), nullable=False),
        sa.Column("ref", sa.String(200), nullable=False),
        sa.Column("service_url", sa.String(500)),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.UniqueConstraint("channel", "conversation", "ref"),
    )
    op.execute(
        "INSERT INTO channel_messages "
        "(approval_id, channel, conversation, ref, delivery_id, created_at) "
        "SELECT approval_id, 'slack', channel, ts, delivery_id, created_at "
        "FROM slack_messages ORDER BY id"
    )
    op.drop_table("slack_messages")
    op.create_table(
        "channel_conversations",
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("conversation", sa.String(320), primary_key=True),
        sa.Column("service_url", sa.String(500), nullable=False),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("user_ref", sa.String(64), index=True),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("channel_conversations")
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
    op.execute(
        "INSERT INTO slack_messages (approval_id, channel, ts, delivery_id, created_at) "
        "SELECT approval_id, conversation, ref, delivery_id, created_at "
        "FROM channel_messages WHERE channel = 'slack' ORDER BY id"
    )
    op.drop_table("channel_messages")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("teams_user_id")
        batch.drop_column("discord_user_id")
