"""The repository's upsert rules, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from vipsync.devtools.factories import order_record
from vipsync.store.models import Order, OrderLineRow, RawPayload, Unit
from vipsync.store.repository import Repository


def _snapshot(session):
    """Every stored row of orders, lines, units and raw payloads, as plain tuples."""
    out = {}
    for model in (Order, OrderLineRow, Unit, RawPayload):
        cols = list(model.__table__.columns)
        out[model.__tablename__] = sorted(
            tuple(str(r[c.name]) for c in cols) for r in session.execute(select(*cols)).mappings()
        )
    return out


def test_same_orders_twice_change_no_row(session_factory):
    records = [order_record(i, lines=(("HKS0401A3U", 2), ("CABLE-1", 1))) for i in range(1, 40)]
    with session_factory() as s:
        first = Repository(s).upsert_orders(records)
        s.commit()
        before = _snapshot(s)
    with session_factory() as s:
        second = Repository(s).upsert_orders(records)
        s.commit()
        after = _snapshot(s)
    assert (first.inserted, first.updated, first.unchanged) == (39, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 39)
    assert before == after
    assert len(after["units"]) == 39 * 3


def test_newer_version_replaces_and_older_never_overwrites(session_factory):
    v1 = order_record(1, lines=(("HKS0401A3U", 1),))
    v2 = order_record(1, lines=(("HKS0401A3U", 3),), updated_at=v1.updated_at + timedelta(hours=1))
    with session_factory() as s:
        repo = Repository(s)
        repo.upsert_orders([v1])
        assert repo.upsert_orders([v2]).updated == 1
        stale = repo.upsert_orders([v1])
        s.commit()
        assert stale.stale == 1 and stale.updated == 0
        qty = s.execute(select(OrderLineRow.quantity)).scalar_one()
        assert qty == 3
        units = s.execute(select(Unit.sku, Unit.ordinal, Unit.removed).order_by(Unit.ordinal)).all()
        assert [(u.ordinal, u.removed) for u in units] == [(1, False), (2, False), (3, False)]


def test_edit_lowering_quantity_marks_units_removed_never_deletes(session_factory):
    v1 = order_record(1, lines=(("HKS0401A3U", 3),))
    v2 = order_record(1, lines=(("HKS0401A3U", 1),), updated_at=v1.updated_at + timedelta(hours=1))
    with session_factory() as s:
        repo = Repository(s)
        repo.upsert_orders([v1])
        ids_before = set(s.execute(select(Unit.id)).scalars())
        repo.upsert_orders([v2])
        s.commit()
        rows = s.execute(select(Unit.id, Unit.ordinal, Unit.removed).order_by(Unit.ordinal)).all()
    assert {r.id for r in rows} == ids_before
    assert [(r.ordinal, r.removed) for r in rows] == [(1, False), (2, True), (3, True)]


def test_units_keyed_by_sku_and_ordinal_not_line_id(session_factory):
    """A report version (no line ids) then an API version of the same order keep the units."""
    report = order_record(7, source="amazon", store_key="amazon-na", lines=(("HKS0401A3U", 2),))
    api = order_record(
        7,
        source="amazon",
        store_key="amazon-na",
        lines=(("HKS0401A3U", 2),),
        updated_at=report.updated_at + timedelta(minutes=5),
    )
    api = type(api)(
        **{
            **{f: getattr(api, f) for f in api.__dataclass_fields__},
            "lines": tuple(
                type(line)(
                    **{
                        **{f: getattr(line, f) for f in line.__dataclass_fields__},
                        "line_key": "05015851154158",
                    }
                )
                for line in api.lines
            ),
        }
    )
    with session_factory() as s:
        repo = Repository(s)
        repo.upsert_orders([report])
        before = s.execute(select(Unit.id).order_by(Unit.id)).scalars().all()
        assert repo.upsert_orders([api]).updated == 1
        s.commit()
        after = s.execute(select(Unit.id).order_by(Unit.id)).scalars().all()
    assert before == after and len(after) == 2


def test_raw_payload_kept_for_each_version(session_factory):
    v1 = order_record(1)
    v2 = order_record(1, updated_at=v1.updated_at + timedelta(hours=1))
    with session_factory() as s:
        repo = Repository(s)
        repo.upsert_orders([v1, v2])  # in one batch only the newest is written
        repo.upsert_orders([v1])
        s.commit()
        order = s.execute(select(Order)).scalar_one()
        raw = s.get(RawPayload, order.raw_payload_id)
    assert raw.payload["updated_at"] == v2.updated_at.isoformat()
