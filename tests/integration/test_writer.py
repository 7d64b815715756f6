"""The one writer: a record the store refuses is rejected alone, on both databases."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from vipsync.connectors.records import Rejected
from vipsync.devtools.factories import order_record
from vipsync.store.db import make_engine, make_session_factory
from vipsync.store.models import ImportError_, Order
from vipsync.store.writer import write_page

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _overflowing(n: int):
    """A record no database column can hold (a refunded quantity past 64 bits)."""
    rec = order_record(n)
    line = dataclasses.replace(rec.lines[0], refunded_quantity=2**70)
    return dataclasses.replace(rec, lines=(line,))


def test_a_record_the_database_refuses_is_rejected_alone_and_the_rest_is_stored(session_factory):
    page = [order_record(1), order_record(2), _overflowing(3), order_record(4)]
    page.append(Rejected("line 9", "processed_at", "not an ISO 8601 timestamp", {"id": "9"}))
    outcome = write_page(session_factory, page, source="shopify", store_key="shopify-us")
    assert (outcome.read, outcome.inserted, outcome.rejected) == (5, 3, 2)
    with session_factory() as s:
        stored = set(s.execute(select(Order.external_id)).scalars())
        errors = {e.record_id: e for e in s.execute(select(ImportError_)).scalars()}
    assert stored == {"1000001", "1000002", "1000004"}
    assert set(errors) == {"1000003", "line 9"}
    assert errors["1000003"].message.startswith("could not be stored: ")
    assert errors["1000003"].status == "open" and '"id":"1000003"' in errors["1000003"].raw
    assert errors["line 9"].field == "processed_at"


def test_the_same_page_again_changes_nothing_but_rejects_the_bad_record_again(session_factory):
    page = [order_record(1), _overflowing(2)]
    write_page(session_factory, page, source="shopify", store_key="shopify-us")
    again = write_page(session_factory, page, source="shopify", store_key="shopify-us")
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 0, 1, 1)


def test_an_unreachable_database_raises_and_rejects_nothing(digester):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    factory = make_session_factory(engine, digester=digester)
    with pytest.raises(Exception) as info:
        write_page(factory, [order_record(1)], source="shopify", store_key="shopify-us")
    assert type(info.value).__name__ == "OperationalError"
    engine.dispose()


def test_without_the_pii_key_a_write_stops_with_the_variable_to_set_and_rejects_nothing(session_factory):
    from sqlalchemy.orm import sessionmaker

    from vipsync.errors import ConfigError
    from vipsync.store.models import ImportError_

    keyless = sessionmaker(session_factory.kw["bind"], expire_on_commit=False)
    with pytest.raises(ConfigError, match="VIPSYNC_PII_KEY"):
        write_page(keyless, [order_record(1), order_record(2)], source="shopify", store_key="shopify-us")
    with session_factory() as s:
        assert s.query(ImportError_).count() == 0


def test_concurrent_writers_of_one_order_never_reject_it_and_the_newest_version_wins(session_factory):
    # Eight writers race with versions of the same order: unique violations are retried (the
    # retry sees the order as existing), never turned into rejects, and no writer replaces
    # a version newer than its own that another committed meanwhile.
    versions = [
        order_record(1, updated_at=T0 + timedelta(minutes=i), lines=(("HKS0401A3U", 1 + i % 3),))
        for i in range(8)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(
            pool.map(
                lambda rec: write_page(session_factory, [rec], source="shopify", store_key="shopify-us"),
                versions,
            )
        )
    assert sum(o.rejected for o in outcomes) == 0
    with session_factory() as s:
        [order] = s.execute(select(Order)).scalars().all()
        assert s.execute(select(ImportError_)).first() is None
    assert order.source_updated_at == T0 + timedelta(minutes=7)
