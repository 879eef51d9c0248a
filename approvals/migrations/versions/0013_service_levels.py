"""Service levels: escalation ladders and timeout warnings on policies, assignment and
delegation of approvals, reviewers away with a delegate.

Revision ID: 0013
Revises: 0012; depends on 0010 (users)
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = "0010"  # the users table and its columns (a branch)


def upgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("escalation", sa.JSON()))
        batch.add_column(sa.Column("warn_before_seconds", sa.Integer()))
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("assigned_to", sa.String(200)))
        batch.add_column(sa.Column("assigned_by", sa.String(200)))
        batch.add_column(sa.Column("delegated_from", sa.String(200)))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("away_until", sa.String(32)))
        batch.add_column(sa.Column("delegate", sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("delegate")
        batch.drop_column("away_until")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("delegated_from")
        batch.drop_column("assigned_by")
        batch.drop_column("assigned_to")
    with op.batch_alter_table("policies") as batch:
        batch.drop_column("warn_before_seconds")
        batch.drop_column("escalation")
