"""The ops views: documented columns, today's statuses as the engine computes them, kept
across migrations, and the read-only role that reads them and nothing else."""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import ProgrammingError
from typer.testing import CliRunner

from vipsync.cli.main import app
from vipsync.devtools.factories import order_record
from vipsync.store import views
from vipsync.store.db import alembic_config, make_engine, upgrade
from vipsync.store.repository import Repository
from vipsync.workers.tagging import tag_pending, unit_view

README = Path(__file__).resolve().parents[2] / "README.md"
runner = CliRunner()


def documented_columns() -> dict[str, list[str]]:
    """README: each view under a `#### view_name` heading, then a `| column | ... |` table."""
    text_ = README.read_text(encoding="utf-8")
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"^#### `(ops_\w+)`\n(.*?)(?=^#|\Z)", text_, re.S | re.M):
        cols = re.findall(r"^\| `(\w+)` \|", m.group(2), re.M)
        out[m.group(1)] = cols
    return out


def _seed(ctx, n: int = 6) -> None:
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    with ctx.session_factory() as s:
        Repository(s).upsert_orders(
            [
                order_record(
                    i,
                    purchased_at=today - timedelta(days=340 + 7 * i),
                    lines=(("HKS0401A3U", 1), ("ZZ-9", 1)),
                )
                for i in range(1, n)
            ]
            + [
                order_record(
                    99, store_key="shopify-eu", country="DE", purchased_at=today - timedelta(days=30)
                )
            ]
        )
        s.commit()
    tag_pending(ctx)


def test_every_view_has_exactly_its_documented_columns(engine):
    documented = documented_columns()
    assert set(documented) == {v.name for v in views.VIEWS}
    with engine.connect() as conn:
        existing = set(inspect(conn).get_view_names())
        for view in views.VIEWS:
            assert list(view.columns) == documented[view.name], view.name
            if view.name not in existing:  # a view waiting for its table (requires)
                assert not set(view.requires) <= set(inspect(conn).get_table_names())
                continue
            keys = list(conn.execute(text(f"SELECT * FROM {view.name} WHERE 1 = 0")).keys())
            assert keys == list(view.columns), view.name


def test_the_units_view_shows_the_statuses_the_engine_computes_for_today(context):
    _seed(context)
    with context.session_factory() as s:
        engine_rows = {(r["order_id"], r["sku"]): r for r in unit_view(s, as_of=date.today())}
        view_rows = s.execute(text("SELECT * FROM ops_units")).mappings().all()
    assert len(view_rows) == len(engine_rows) == 11
    for row in view_rows:
        expected = engine_rows[(row["order_id"], row["sku"])]
        for col in views.VIEWS[0].columns:
            if col.endswith("_status") or col in ("benefit_status", "category", "policy_version"):
                assert row[col] == expected[col], (col, row, expected)
    closing = [r for r in view_rows if r["original_warranty_status"] == "closing_soon"]
    assert closing, "the seed puts some windows within 30 days of their end"
    with context.session_factory() as s:
        soon = s.execute(
            text("SELECT unit_id, days_left FROM ops_windows_closing WHERE window_kind = 'original_warranty'")
        ).all()
    assert {r.days_left for r in soon} and all(r.days_left >= 0 for r in soon)


def test_a_sqlite_batch_migration_of_units_works_with_the_views(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        with views.suspended_views(conn):
            ops = Operations(MigrationContext.configure(conn))
            with ops.batch_alter_table("units") as batch:
                batch.add_column(sa.Column("extra", sa.Integer(), nullable=True))
        assert "ops_units" in inspect(conn).get_view_names()
        conn.execute(text("SELECT COUNT(*) FROM ops_units")).scalar_one()
    engine.dispose()


def test_downgrade_and_upgrade_keep_the_views_in_step_with_the_schema(sqlite_url):
    engine = make_engine(sqlite_url)
    command.downgrade(alembic_config(engine), "0003")
    with engine.connect() as conn:
        assert not inspect(conn).get_view_names()
    upgrade(engine)
    with engine.connect() as conn:
        assert {v.name for v in views.VIEWS if not v.requires} <= set(inspect(conn).get_view_names())
    engine.dispose()


@pytest.fixture
def readonly_role(pg_url, monkeypatch, context):
    role = f"vipsync_ro_{os.getpid()}"
    monkeypatch.setenv("RO_PASSWORD", "not-a-real-secret")
    yield role
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP OWNED BY "{role}"'))
        conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    admin.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_readonly_role_reads_the_views_and_nothing_else(context, db_url, readonly_role):
    _seed(context)
    result = runner.invoke(app, ["db", "grant-readonly", readonly_role, "--password-env", "RO_PASSWORD"])
    assert result.exit_code == 0, result.output
    url = sa.engine.make_url(db_url).set(username=readonly_role, password="not-a-real-secret")
    ro = create_engine(url)
    with context.session_factory() as s:
        units = s.execute(text("SELECT COUNT(*) FROM ops_units")).scalar_one()
        digest, postal = s.execute(text("SELECT email_hash, shipping_postal_code FROM orders LIMIT 1")).one()
    try:
        with ro.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM ops_units")).scalar_one() == units == 11
            for view in views.VIEWS:
                if view.name in inspect(conn).get_view_names():
                    for row in conn.execute(text(f"SELECT * FROM {view.name}")):
                        flat = " ".join(str(v) for v in row)
                        assert digest not in flat and postal not in flat
        forbidden = [
            "SELECT email_hash FROM orders",
            "SELECT payload FROM raw_payloads",
            "SELECT email_hash FROM members",
            "SELECT shipping_postal_code FROM orders",
            "SELECT raw FROM import_errors",
            "SELECT payload FROM webhook_deliveries",
            "INSERT INTO catalog_decisions (sku, title_key, category, note, decided_by, decided_at) "
            "VALUES ('X', '', 'other', '', 'ro', now())",
            "UPDATE unit_tags SET eligible = true",
            "DELETE FROM ops_sync_health",
            "CREATE TABLE public.ro_sneak (id int)",
        ]
        for statement in forbidden:
            with ro.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(statement))
        # A later migration run drops and recreates the views: the grant stays.
        upgrade(context.engine)
        with ro.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM ops_units")).scalar_one() == 11
    finally:
        ro.dispose()


def _flags(ctx) -> set[tuple[str, str]]:
    with ctx.session_factory() as s:
        return {(r.order_id, r.flag) for r in s.execute(text("SELECT order_id, flag FROM ops_order_flags"))}


def test_a_replacement_naming_an_order_not_stored_is_flagged_until_that_order_arrives(context):
    import dataclasses

    replaced = order_record(1, store_key="amazon-na", source="amazon")
    replacement = dataclasses.replace(
        order_record(2, store_key="amazon-na", source="amazon"),
        is_replacement=True,
        replaced_order_id=replaced.external_id,
        ops_flags=("replacement_with_total",),
    )
    unnamed = dataclasses.replace(
        order_record(3, store_key="amazon-na", source="amazon"),
        is_replacement=True,
        ops_flags=("replaced_order_unknown",),
    )
    # The same id in another store is not the replaced order.
    elsewhere = dataclasses.replace(replaced, store_key="amazon-eu")
    with context.session_factory() as s:
        Repository(s).upsert_orders([replacement, unnamed, elsewhere])
        s.commit()
    assert _flags(context) == {
        (replacement.external_id, "replacement_with_total"),
        (replacement.external_id, "replaced_order_missing"),
        (unnamed.external_id, "replaced_order_unknown"),
    }
    with context.session_factory() as s:
        row = s.execute(
            text("SELECT store, replaced_order_id FROM ops_order_flags WHERE flag = 'replaced_order_missing'")
        ).one()
    assert tuple(row) == ("amazon-na", replaced.external_id)
    with context.session_factory() as s:
        Repository(s).upsert_orders([replaced])
        s.commit()
    assert _flags(context) == {
        (replacement.external_id, "replacement_with_total"),
        (unnamed.external_id, "replaced_order_unknown"),
    }


def test_a_refund_that_takes_a_claimed_unit_shows_in_the_benefits_used_and_order_flags(context):
    from vipsync.store.models import Claim, Unit

    first = order_record(1, lines=(("HKS0401A3U", 2),))
    other = order_record(2, lines=(("HKS0401A3U", 1),))
    with context.session_factory() as s:
        Repository(s).upsert_orders([first, other])
        s.commit()
    tag_pending(context)
    with context.session_factory() as s:
        for uid in s.execute(sa.select(Unit.id)).scalars():  # every unit claimed
            s.add(
                Claim(unit_id=uid, kind="exchange", claimed_on=date(2025, 4, 1), policy_version="v1",
                      created_at=datetime.now(UTC))
            )  # fmt: skip
        # One unit of the first order refunded: only claimed units are left to take.
        Repository(s).upsert_orders(
            [order_record(1, lines=(("HKS0401A3U", 2),), refunded={"HKS0401A3U": 1},
                          updated_at=datetime.now(UTC))]
        )  # fmt: skip
        s.commit()
    tag_pending(context)
    with context.session_factory() as s:
        used = s.execute(
            text("SELECT u.order_external_id, u.ordinal, b.unit_refunded FROM ops_benefits_used b "
                 "JOIN units u ON u.id = b.unit_id")
        ).all()  # fmt: skip
    assert sorted((o, n, bool(r)) for o, n, r in used) == [
        (first.external_id, 1, False),
        (first.external_id, 2, True),
        (other.external_id, 1, False),
    ]
    assert _flags(context) == {(first.external_id, "claimed_unit_refunded")}
