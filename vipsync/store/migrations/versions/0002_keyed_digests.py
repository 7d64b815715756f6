"""keyed e-mail digests, minimized payloads, privacy requests

Revision ID: 0002
Revises: 0001

Stores made at 0001 hold e-mail digests as plain SHA-256 and payloads as received. This
revision:
- adds ``email_key_id`` beside ``orders.email_hash`` and ``members.email_hash`` and turns
  every plain digest ``h`` into the keyed one, ``HMAC(key, "email" NUL h)`` (see
  vipsync/privacy.py): the same function of the same address on both sides, so every
  order/member match survives without the address ever being known;
- passes every kept payload (raw payloads, webhook deliveries, rejected records) through the
  allowlist of vipsync/connectors/minimize.py (raw payloads that become equal are merged);
- adds ``privacy_requests``.

The key comes from the settings (VIPSYNC_PII_KEY; the SQLite demo's local key), and only
when there is something to digest. Downgrading drops the new columns and table; digests
stay keyed (the plain ones cannot be recomputed) and the dropped payload fields stay gone.
"""

import json

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from vipsync.store.types import JSONType

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 1000


def _digester():
    digester = context.config.attributes.get("digester")
    if digester is not None:
        return digester
    from vipsync.bootstrap import Context
    from vipsync.config.settings import load_settings

    bind = op.get_bind()
    settings = load_settings()
    return Context(
        settings=settings, database_url=str(bind.engine.url.render_as_string(hide_password=False))
    ).digester


def _rekey_column(table: str, digester_box: list) -> None:
    bind = op.get_bind()
    t = sa.table(table, sa.column("id"), sa.column("email_hash"), sa.column("email_key_id"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(t.c.id, t.c.email_hash)
            .where(t.c.id > last, t.c.email_hash.is_not(None), t.c.email_key_id.is_(None))
            .order_by(t.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        if not digester_box:
            digester_box.append(_digester())
        d = digester_box[0]
        bind.execute(
            sa.update(t)
            .where(t.c.id == sa.bindparam("b_id"))
            .values(email_hash=sa.bindparam("b_hash"), email_key_id=d.key_id),
            [{"b_id": r.id, "b_hash": d.email_from_sha256(r.email_hash)} for r in rows],
        )
        last = rows[-1].id


def _minimize_payloads(digester_box: list) -> None:
    from vipsync.connectors.minimize import minimize
    from vipsync.connectors.records import canonical_json, payload_sha256

    bind = op.get_bind()

    def digester():
        if not digester_box:
            digester_box.append(_digester())
        return digester_box[0]

    def needs_key(payload) -> bool:
        text = canonical_json(payload)
        return '"email' in text or "email_sha256" in text

    # Raw payloads: minimized, then merged with an equal version of the same record.
    raw = sa.table(
        "raw_payloads",
        sa.column("id"),
        sa.column("source"),
        sa.column("store_key"),
        sa.column("kind"),
        sa.column("external_id"),
        sa.column("sha256"),
        sa.column("payload", JSONType),
    )
    orders = sa.table("orders", sa.column("raw_payload_id"))
    last = 0
    while True:
        rows = bind.execute(sa.select(raw).where(raw.c.id > last).order_by(raw.c.id).limit(BATCH)).all()
        if not rows:
            break
        for r in rows:
            kept = minimize(r.payload, digester=digester() if needs_key(r.payload) else None, source=r.source)
            sha = payload_sha256(kept)
            if sha == r.sha256 and kept == r.payload:
                continue
            twin = bind.execute(
                sa.select(raw.c.id).where(
                    raw.c.store_key == r.store_key,
                    raw.c.kind == r.kind,
                    raw.c.external_id == r.external_id,
                    raw.c.sha256 == sha,
                    raw.c.id != r.id,
                )
            ).scalar()
            if twin is not None:
                bind.execute(
                    sa.update(orders).where(orders.c.raw_payload_id == r.id).values(raw_payload_id=twin)
                )
                bind.execute(sa.delete(raw).where(raw.c.id == r.id))
            else:
                bind.execute(sa.update(raw).where(raw.c.id == r.id).values(payload=kept, sha256=sha))
        last = rows[-1].id

    deliveries = sa.table(
        "webhook_deliveries", sa.column("id"), sa.column("topic"), sa.column("payload", JSONType)
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(deliveries).where(deliveries.c.id > last).order_by(deliveries.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        for r in rows:
            kept = minimize(r.payload, digester=digester() if needs_key(r.payload) else None, topic=r.topic)
            if kept != r.payload:
                bind.execute(sa.update(deliveries).where(deliveries.c.id == r.id).values(payload=kept))
        last = rows[-1].id

    errors = sa.table("import_errors", sa.column("id"), sa.column("source"), sa.column("raw"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(errors).where(errors.c.id > last).order_by(errors.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        for r in rows:
            try:
                payload = json.loads(r.raw)
            except ValueError:
                payload = r.raw
            kept = canonical_json(
                minimize(payload, digester=digester() if needs_key(payload) else None, source=r.source)
            )
            if kept != r.raw:
                bind.execute(sa.update(errors).where(errors.c.id == r.id).values(raw=kept))
        last = rows[-1].id


def upgrade() -> None:
    op.add_column("orders", sa.Column("email_key_id", sa.String(length=32), nullable=True))
    op.add_column("members", sa.Column("email_key_id", sa.String(length=32), nullable=True))
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("store_key", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("subject_digest", sa.String(length=64), nullable=True),
        sa.Column("subject_key_id", sa.String(length=32), nullable=True),
        sa.Column("delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "report",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_privacy_requests_delivery_id_webhook_deliveries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index("ix_privacy_requests_status", "privacy_requests", ["status"], unique=False)
    box: list = []
    _rekey_column("orders", box)
    _rekey_column("members", box)
    _minimize_payloads(box)


def downgrade() -> None:
    op.drop_index("ix_privacy_requests_status", table_name="privacy_requests")
    op.drop_table("privacy_requests")
    with op.batch_alter_table("members") as batch_op:
        batch_op.drop_column("email_key_id")
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("email_key_id")
