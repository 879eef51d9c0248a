"""What you see is what you sign: execution receipts, redaction, display templates and
standing grants.

Revision ID: 0012
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def grantable() -> sa.Column:
    return sa.Column("grantable", sa.Boolean(), nullable=False, server_default=sa.true())


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("redact", sa.JSON()))
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("executed_at", sa.String(32)))
        batch.add_column(sa.Column("executed_by", sa.String(200)))
        batch.add_column(sa.Column("executed_digest", sa.String(80)))
        batch.add_column(sa.Column("redact", sa.JSON()))
        batch.add_column(sa.Column("display", sa.Text()))
        batch.add_column(
            sa.Column("grantable", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("max_grant_seconds", sa.Integer()))
        batch.add_column(sa.Column("grant_id", sa.String(64)))
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("redact", sa.JSON()))
        batch.add_column(sa.Column("display", sa.Text()))
        batch.add_column(
            sa.Column("grantable", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("max_grant_seconds", sa.Integer()))
    op.create_table(
        "grants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(200)),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("approval_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("revoked_at", sa.String(32)),
        sa.Column("revoked_by", sa.String(200)),
        sa.Column("uses", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_grants_tool", "grants", ["tool", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_grants_tool", "grants")
    op.drop_table("grants")
    with op.batch_alter_table("policies") as batch:
        for name in ("max_grant_seconds", "grantable", "display", "redact"):
            batch.drop_column(name)
    with op.batch_alter_table("approvals") as batch:
        for name in (
            "grant_id",
            "max_grant_seconds",
            "grantable",
            "display",
            "redact",
            "executed_digest",
            "executed_by",
            "executed_at",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("events") as batch:
        batch.drop_column("redact")
