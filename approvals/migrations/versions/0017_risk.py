"""Risk on policies, copied onto the approvals they govern: ``normal`` or ``high`` (marked in
the dashboard, never decided on a single key).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("policies", "approvals")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("risk", sa.String(8), nullable=False, server_default="normal")
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("risk")
