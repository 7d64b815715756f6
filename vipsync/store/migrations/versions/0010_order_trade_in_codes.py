"""order trade-in codes

The website writes a trade-in quote's code into an order attribute (POLICY.md, Trade-in);
the Shopify mapper reads it into ``orders.trade_in_codes`` (a JSON list, null when none),
beside the discount codes.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # The migration environment drops the ops views before any migration and creates them
    # again at head, so this SQLite batch copy of the table is free to run.
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("trade_in_codes", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("trade_in_codes")
