"""source widths and webhook body digest

SKU and line id columns (catalog decisions' SKU included) widen to 255 characters, the longest a Shopify SKU may be (an order
carrying one used to stop the sync). Webhook deliveries keep the SHA-256 of the signed body,
unique per shop and topic: the same body under another webhook id is the same delivery.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_WIDENED = (
    ("products", ("sku",)),
    ("order_lines", ("line_key", "sku")),
    ("units", ("sku",)),
    ("catalog_decisions", ("sku",)),
)


def _widths(old: int, new: int) -> None:
    for table, columns in _WIDENED:
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    existing_type=sa.String(length=old),
                    type_=sa.String(length=new),
                    existing_nullable=False,
                )


def upgrade() -> None:
    _widths(128, 255)
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_webhook_deliveries_body", ["store_key", "topic", "body_sha256"])


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("uq_webhook_deliveries_body", type_="unique")
        batch.drop_column("body_sha256")
    _widths(255, 128)
