"""tag_rules: the rules fingerprint each policy version was last applied with

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tag_rules",
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("policy_version", name=op.f("pk_tag_rules")),
    )


def downgrade() -> None:
    op.drop_table("tag_rules")
