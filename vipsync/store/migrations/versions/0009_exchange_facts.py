"""exchange facts

A fact after the sale may link a unit added by a Shopify exchange or order edit to the line
whose unit it takes the place of (``order_facts.returned_line_key``; the fact's kind is
``exchange``).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_facts") as batch:
        batch.add_column(sa.Column("returned_line_key", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM order_facts WHERE kind = 'exchange'")
    with op.batch_alter_table("order_facts") as batch:
        batch.drop_column("returned_line_key")
