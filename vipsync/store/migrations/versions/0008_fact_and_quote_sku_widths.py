"""fact and quote SKU widths

The SKU and line id of a fact after the sale and the new product's SKU of a trade-in quote
widen to 255 characters, the width of every other SKU column (a Shopify SKU may be that
long): a refund of a line the store accepted is never refused for its SKU's length.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_WIDENED = (
    ("order_facts", (("line_key", True), ("sku", True))),
    ("trade_in_quotes", (("new_sku", False),)),
)


def _widths(old: int, new: int) -> None:
    for table, columns in _WIDENED:
        with op.batch_alter_table(table) as batch:
            for column, nullable in columns:
                batch.alter_column(
                    column,
                    existing_type=sa.String(length=old),
                    type_=sa.String(length=new),
                    existing_nullable=nullable,
                )


def upgrade() -> None:
    _widths(128, 255)


def downgrade() -> None:
    _widths(255, 128)
