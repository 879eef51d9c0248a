"""The event log, its head row and API keys.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("category", sa.String(200)),
        sa.Column("status", sa.String(200)),
        sa.Column("title", sa.Text()),
        sa.Column("detail", sa.JSON()),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("thread_id", sa.String(200)),
        sa.Column("run_id", sa.String(200)),
        sa.Column("external_id", sa.String(500)),
        sa.Column("cost_tokens", sa.BigInteger()),
        sa.Column("cost_usd", sa.Float()),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("resolved_at", sa.String(32)),
        sa.Column("resolved_by", sa.String(200)),
        sa.Column("approval_id", sa.String(64)),
    )
    op.create_index("ix_events_source_external", "events", ["source", "external_id"], unique=True)
    op.create_index("ix_events_run", "events", ["run_id", "id"])
    op.create_index("ix_events_thread", "events", ["thread_id", "id"])
    op.create_index("ix_events_agent", "events", ["agent_id", "id"])
    op.create_index("ix_events_type", "events", ["type", "id"])
    op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO log_head (id, last_id) VALUES (1, 0)")
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(500), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("revoked_at", sa.String(32)),
    )
    op.create_index("ix_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("log_head")
    op.drop_table("events")
