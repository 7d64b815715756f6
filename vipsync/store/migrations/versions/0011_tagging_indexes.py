"""tagging indexes: a partial index of flagged units, none on the store alone, tags by
version and purchase date

- ``units.needs_tag`` is indexed only where it is set: clearing the flag of a tagged unit
  adds no index entry, and the flagged units are still found by index;
- ``ix_units_store_key`` goes: the unique key (store_key, order_external_id, sku, ordinal)
  starts with the store and serves the same lookups, and each unit update wrote both;
- ``ix_unit_tags_policy_version`` becomes (policy_version, purchase_date): a re-tagging
  run after a policy change reads the tags of a version in the purchase-date range the
  change moved, not every tag of the version;
- the (window end, unit id) indexes of ``unit_tags`` hold only the tags that have that
  window: the readers ask for ends from a day on (``>= CURRENT_DATE``), which a null end
  never meets, and half the tags or more have no registration deadline or extended
  warranty.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_WINDOW_ENDS = ("original_warranty_end", "registration_deadline", "extended_warranty_end")


def upgrade() -> None:
    op.drop_index("ix_units_needs_tag", table_name="units")
    op.create_index(
        "ix_units_needs_tag",
        "units",
        ["needs_tag"],
        postgresql_where=sa.text("needs_tag"),
        sqlite_where=sa.text("needs_tag"),
    )
    op.drop_index("ix_units_store_key", table_name="units")
    op.drop_index("ix_unit_tags_policy_version", table_name="unit_tags")
    op.create_index("ix_unit_tags_version_purchase_date", "unit_tags", ["policy_version", "purchase_date"])
    for column in _WINDOW_ENDS:
        op.drop_index(f"ix_unit_tags_{column}", table_name="unit_tags")
        op.create_index(
            f"ix_unit_tags_{column}",
            "unit_tags",
            [column, "unit_id"],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )


def downgrade() -> None:
    for column in _WINDOW_ENDS:
        op.drop_index(f"ix_unit_tags_{column}", table_name="unit_tags")
        op.create_index(f"ix_unit_tags_{column}", "unit_tags", [column, "unit_id"])
    op.drop_index("ix_unit_tags_version_purchase_date", table_name="unit_tags")
    op.create_index("ix_unit_tags_policy_version", "unit_tags", ["policy_version"])
    op.create_index("ix_units_store_key", "units", ["store_key"])
    op.drop_index("ix_units_needs_tag", table_name="units")
    op.create_index("ix_units_needs_tag", "units", ["needs_tag"])
