"""members, proofs and claims: registration reasons, claim details, ordinary warranty
exchanges, trade-in quotes and the proof-of-purchase decision log

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Money = sa.Numeric(14, 2)


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registration_reason", sa.Text(), nullable=True))

    op.create_table(
        "trade_in_quotes",
        sa.Column("id", Id, nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("unit_id", Id, nullable=False),
        sa.Column("member_id", Id, nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("store_key", sa.String(length=64), nullable=False),
        sa.Column("new_sku", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("list_price", Money, nullable=False),
        sa.Column("discount", Money, nullable=False),
        sa.Column("final_price", Money, nullable=False),
        sa.Column("price_source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("quoted_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("order_id", Id, nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_trade_in_quotes_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_trade_in_quotes_order_id_orders"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_trade_in_quotes_unit_id_units"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trade_in_quotes")),
        sa.UniqueConstraint("code", name=op.f("uq_trade_in_quotes_code")),
    )
    op.create_index("ix_trade_in_quotes_unit_id", "trade_in_quotes", ["unit_id"], unique=False)

    op.create_table(
        "warranty_exchanges",
        sa.Column("id", Id, nullable=False),
        sa.Column("unit_id", Id, nullable=False),
        sa.Column("requested_on", sa.Date(), nullable=False),
        sa.Column("ship_date", sa.Date(), nullable=False),
        sa.Column("replacement_cover_end", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_warranty_exchanges_unit_id_units"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warranty_exchanges")),
    )
    op.create_index("ix_warranty_exchanges_unit_id", "warranty_exchanges", ["unit_id"], unique=False)

    op.create_table(
        "proof_decisions",
        sa.Column("id", Id, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("order_id", Id, nullable=True),
        sa.Column("store_key", sa.String(length=64), nullable=True),
        sa.Column("member_id", Id, nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_proof_decisions_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_proof_decisions_order_id_orders"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proof_decisions")),
    )
    op.create_index("ix_proof_decisions_decided_at", "proof_decisions", ["decided_at"], unique=False)

    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ship_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("replacement_cover_end", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("member_id", Id, nullable=True))
        batch_op.add_column(sa.Column("quote_id", Id, nullable=True))
        batch_op.add_column(sa.Column("recorded_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_claims_member_id_members"), "members", ["member_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_claims_quote_id_trade_in_quotes"),
            "trade_in_quotes",
            ["quote_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_claims_quote_id_trade_in_quotes"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_claims_member_id_members"), type_="foreignkey")
        for name in ("reason", "recorded_by", "quote_id", "member_id", "replacement_cover_end", "ship_date"):
            batch_op.drop_column(name)
    op.drop_index("ix_proof_decisions_decided_at", table_name="proof_decisions")
    op.drop_table("proof_decisions")
    op.drop_index("ix_warranty_exchanges_unit_id", table_name="warranty_exchanges")
    op.drop_table("warranty_exchanges")
    op.drop_index("ix_trade_in_quotes_unit_id", table_name="trade_in_quotes")
    op.drop_table("trade_in_quotes")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("registration_reason")
