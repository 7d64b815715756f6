"""The bulk write path (COPY on PostgreSQL, DBAPI executemany on SQLite) stores exactly
what the Core path stores: the same orders imported both ways give identical tables,
ids included, on both databases."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL
from vipsync.devtools.factories import order_record
from vipsync.devtools.scratch_db import scratch_database
from vipsync.store.db import make_engine, make_session_factory, upgrade
from vipsync.store.repository import Repository

TABLES = ("raw_payloads", "products", "orders", "order_lines", "units")
NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
SKUS = ("HKS0401A3U", "HMA0808A10", "CAB-HDMI-2M", "DKS0401A30")


def _orders(seed: int, n: int, *, version: int = 0) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        lines = tuple((rng.choice(SKUS), rng.choice((1, 1, 2, 3))) for _ in range(rng.choice((1, 1, 2, 3))))
        refunded = {lines[0][0]: 1} if rng.random() < 0.2 else None
        out.append(
            order_record(
                i,
                lines=lines,
                refunded=refunded,
                updated_at=datetime(2025, 3, 1, tzinfo=UTC) + timedelta(minutes=i, days=version),
                country=rng.choice(("US", "DE", "JP")),
                email=None if rng.random() < 0.1 else f"b{i}@example.com",
                cancelled=rng.random() < 0.05,
                raw_extra={"note_attributes": [{"name": "gift", "value": "Ünïcode ✓"}], "v": version},
            )
        )
    return out


def _load(url: str, digester, *, bulk: bool) -> None:
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine, digester=digester)
    first = _orders(1, 400)
    # A second version of a third of them (new lines, fewer units): the replace path.
    second = [o for o in _orders(2, 400, version=1) if int(o.external_id) % 3 == 0]
    for batch in (first[:150], first[150:], second, first[:50]):
        with factory() as s:
            Repository(s, now=lambda: NOW, digester=digester, bulk=bulk).upsert_orders(batch)
            s.commit()
    engine.dispose()


def _dump_sqlite(url: str) -> dict[str, list[tuple]]:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        out = {}
        for table in TABLES:
            cur = conn.execute(f"SELECT * FROM {table} ORDER BY 1")
            names = [d[0] for d in cur.description]
            rows = []
            for row in cur:
                # JSON text may differ in spacing and key order; its value may not.
                rows.append(
                    tuple(json.loads(v) if n == "payload" else v for n, v in zip(names, row, strict=True))
                )
            out[table] = rows
        return out


def _dump_pg(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}


@contextmanager
def _two_stores(kind: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'core.sqlite3'}", f"sqlite:///{tmp_path / 'bulk.sqlite3'}"
        return
    with (
        scratch_database(PG_ADMIN_URL, prefix="vipsync_core", migrate=False) as a,
        scratch_database(PG_ADMIN_URL, prefix="vipsync_bulk", migrate=False) as b,
    ):
        yield a, b


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_bulk_and_core_paths_store_identical_tables(kind, tmp_path, digester):
    with _two_stores(kind, tmp_path) as (core_url, bulk_url):
        _load(core_url, digester, bulk=False)
        _load(bulk_url, digester, bulk=True)
        dump = _dump_sqlite if kind == "sqlite" else _dump_pg
        core, bulk = dump(core_url), dump(bulk_url)
    assert {t: len(rows) for t, rows in core.items()} == {t: len(rows) for t, rows in bulk.items()}
    assert len(core["orders"]) == 400 and len(core["units"]) > 400
    for table in TABLES:
        assert core[table] == bulk[table], table


def test_a_refused_bulk_row_raises_sqlalchemys_integrity_error(session_factory):
    """The writer sorts failures by SQLAlchemy's types: a COPY or executemany refusal must
    arrive as one, the session still usable after a rollback."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from vipsync.store.bulk import insert_rows
    from vipsync.store.models import Product, table_of

    row = ("SKU-1", "A product", None, NOW)
    columns = ("sku", "title", "category", "first_seen_at")
    with session_factory() as s:
        insert_rows(s, table_of(Product), columns, [row])
        s.commit()
        with pytest.raises(IntegrityError):
            insert_rows(s, table_of(Product), columns, [row])
        s.rollback()
        assert s.execute(select(func.count()).select_from(Product)).scalar_one() == 1
