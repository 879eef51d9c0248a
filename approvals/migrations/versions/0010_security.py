"""Security: key expiry and rates, admin reviewers, sign-out everywhere, OIDC
subjects, shared login and rate limits.

Revision ID: 0010
Revises: 0007 (users' contacts); a branch, `migrate` upgrades every head
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = "0003"  # the users table


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.String(32)))
        batch.add_column(sa.Column("rate", sa.String(64)))
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("oidc_subject", sa.String(300)))
    op.create_index("ix_users_oidc_subject", "users", ["oidc_subject"], unique=True)
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_login_failures_who", "login_failures", ["username", "address", "at"])
    op.create_table(
        "rate_buckets",
        sa.Column("key_name", sa.String(200), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_index("ix_login_failures_who", "login_failures")
    op.drop_table("login_failures")
    op.drop_index("ix_users_oidc_subject", "users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("oidc_subject")
        batch.drop_column("is_admin")
        batch.drop_column("session_generation")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("rate")
        batch.drop_column("expires_at")
