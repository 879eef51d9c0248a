"""The reviewer's desk: reasons, confirmation, allowed decisions and claims.

Revision ID: 0009
Revises: 0005 (a branch; `migrate` upgrades every head)
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None

FLAGS = ("require_reason", "require_reason_on_approve", "confirm")


def upgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        for name in FLAGS:
            batch.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )
    with op.batch_alter_table("approvals") as batch:
        for name in FLAGS:
            batch.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )
        batch.add_column(sa.Column("allowed_decisions", sa.JSON()))
        batch.add_column(
            sa.Column("allow_edit", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("claimed_by", sa.String(200)))
        batch.add_column(sa.Column("claimed_until", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        for name in (*FLAGS, "allowed_decisions", "allow_edit", "claimed_by", "claimed_until"):
            batch.drop_column(name)
    with op.batch_alter_table("policies") as batch:
        for name in FLAGS:
            batch.drop_column(name)
