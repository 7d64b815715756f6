"""ops console: decisions in the store, sync health, indexes of the dashboard queries

Revision ID: 0004
Revises: 0003

The ops views themselves are created by the migration environment after every upgrade
(see vipsync/store/views.py), not here.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "catalog_decisions",
        sa.Column("id", _Id, nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("title_key", sa.String(length=512), server_default="", nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_decisions")),
    )
    op.create_index("ix_catalog_decisions_key", "catalog_decisions", ["sku", "title_key"], unique=False)
    op.create_table(
        "policy_decisions",
        sa.Column("id", _Id, nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("stores", _JSON, nullable=True),
        sa.Column("countries", _JSON, nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_decisions")),
    )
    op.create_index("ix_policy_decisions_version", "policy_decisions", ["version"], unique=False)
    op.create_table(
        "store_sync_health",
        sa.Column("store_key", sa.String(length=64), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_cursor", sa.Text(), nullable=True),
        sa.Column("syncs_ok", sa.Integer(), server_default="0", nullable=False),
        sa.Column("errors_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("errors_since_success", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate_limit_wait_s", sa.Numeric(precision=14, scale=1), server_default="0", nullable=False),
        sa.Column("orders_read", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("store_key", name=op.f("pk_store_sync_health")),
    )
    # The dashboard's window queries read unit_tags by each window's end, in unit order.
    op.create_index(
        "ix_unit_tags_original_warranty_end", "unit_tags", ["original_warranty_end", "unit_id"], unique=False
    )
    op.create_index(
        "ix_unit_tags_registration_deadline", "unit_tags", ["registration_deadline", "unit_id"], unique=False
    )
    op.create_index(
        "ix_unit_tags_extended_warranty_end", "unit_tags", ["extended_warranty_end", "unit_id"], unique=False
    )
    op.create_index("ix_units_store_key", "units", ["store_key"], unique=False)
    op.create_index(
        "ix_units_live_sku",
        "units",
        ["sku", "order_id"],
        unique=False,
        postgresql_where=sa.text("NOT removed"),
        sqlite_where=sa.text("NOT removed"),
    )
    op.create_index("ix_unit_tags_tagged_at", "unit_tags", ["tagged_at"], unique=False)
    op.create_table(
        "unit_counts",
        sa.Column("id", _Id, nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("eligible", sa.Boolean(), nullable=True),
        sa.Column("benefit_status", sa.String(length=32), nullable=True),
        sa.Column("policy_version", sa.String(length=64), nullable=True),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_counts")),
    )
    op.create_table(
        "unit_counts_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("marker", sa.String(length=128), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_counts_state")),
    )
    op.execute("INSERT INTO unit_counts_state (id, marker) VALUES (1, '')")


def downgrade() -> None:
    op.drop_table("unit_counts_state")
    op.drop_table("unit_counts")
    op.drop_index("ix_unit_tags_tagged_at", table_name="unit_tags")
    op.drop_index("ix_units_live_sku", table_name="units")
    op.drop_index("ix_units_store_key", table_name="units")
    op.drop_index("ix_unit_tags_extended_warranty_end", table_name="unit_tags")
    op.drop_index("ix_unit_tags_registration_deadline", table_name="unit_tags")
    op.drop_index("ix_unit_tags_original_warranty_end", table_name="unit_tags")
    op.drop_table("store_sync_health")
    op.drop_index("ix_policy_decisions_version", table_name="policy_decisions")
    op.drop_table("policy_decisions")
    op.drop_index("ix_catalog_decisions_key", table_name="catalog_decisions")
    op.drop_table("catalog_decisions")
