"""after the sale: order facts (refunds, returns, deletions), replacement orders, ops flags

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "order_facts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("store_key", sa.String(length=64), nullable=False),
        sa.Column("order_external_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("fact_key", sa.String(length=200), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_key", sa.String(length=128), nullable=True),
        sa.Column("sku", sa.String(length=128), nullable=True),
        sa.Column("quantity", sa.Integer(), server_default="0", nullable=False),
        sa.Column("principal", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("raw", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_facts")),
        sa.UniqueConstraint("store_key", "kind", "fact_key", name=op.f("uq_order_facts_store_key")),
    )
    op.create_index("ix_order_facts_order", "order_facts", ["store_key", "order_external_id"], unique=False)
    # The ops views read orders: the migration environment drops them before any migration
    # and creates them again at head, so this SQLite batch copy of the table is free to run.
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("is_replacement", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("replaced_order_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("ops_flags", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("ops_flags")
        batch.drop_column("replaced_order_id")
        batch.drop_column("is_replacement")
    op.drop_index("ix_order_facts_order", table_name="order_facts")
    op.drop_table("order_facts")
