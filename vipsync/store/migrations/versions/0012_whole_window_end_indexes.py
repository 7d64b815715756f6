"""whole window-end indexes again

0011 limited the (window end, unit id) indexes of ``unit_tags`` to the tags that have the
window. The dashboard's windows-closing query measured slower with them (api_bench, 1,000,000
units: p50 30 ms before, 48 and 56 ms after; the same data with the whole indexes 24 ms
against 27 ms partial), and a tag write saved little, so they are whole again.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_WINDOW_ENDS = ("original_warranty_end", "registration_deadline", "extended_warranty_end")


def upgrade() -> None:
    for column in _WINDOW_ENDS:
        op.drop_index(f"ix_unit_tags_{column}", table_name="unit_tags")
        op.create_index(f"ix_unit_tags_{column}", "unit_tags", [column, "unit_id"])


def downgrade() -> None:
    for column in _WINDOW_ENDS:
        op.drop_index(f"ix_unit_tags_{column}", table_name="unit_tags")
        op.create_index(
            f"ix_unit_tags_{column}",
            "unit_tags",
            [column, "unit_id"],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )
