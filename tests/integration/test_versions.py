"""Equal update times never silently replace a stored version: a cancellation or refund
never reverts, a cut report line changes nothing."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from vipsync.config.stores import load_stores
from vipsync.connectors.amazon.flatfile import read_all_orders_report
from vipsync.devtools.factories import order_record
from vipsync.store.models import ImportError_, Order, OrderLineRow
from vipsync.store.writer import write_page
from vipsync.workers.imports import import_records

ROOT = Path(__file__).resolve().parents[2]
EU = load_stores(ROOT / "vipsync" / "config" / "stores.toml").amazon("amazon-eu")
T = datetime(2025, 5, 3, 10, 0, tzinfo=UTC)


def _write(factory, *records):
    return write_page(factory, list(records), source="shopify", store_key="shopify-us")


def _order(factory, external_id: str) -> Order:
    with factory() as s:
        return s.execute(select(Order).where(Order.external_id == external_id)).scalar_one()


def test_a_same_time_version_without_the_cancellation_does_not_uncancel(session_factory):
    _write(session_factory, order_record(1, updated_at=T, cancelled=True))
    late = _write(session_factory, order_record(1, updated_at=T, cancelled=False))
    assert (late.updated, late.unchanged) == (0, 1)
    assert _order(session_factory, "1000001").is_cancelled is True


def test_a_same_time_cancellation_replaces_the_uncancelled_version(session_factory):
    _write(session_factory, order_record(1, updated_at=T))
    assert _write(session_factory, order_record(1, updated_at=T, cancelled=True)).updated == 1
    assert _order(session_factory, "1000001").is_cancelled is True


def test_a_same_time_version_with_fewer_refunds_does_not_take_the_refund_back(session_factory):
    lines = (("HKS0401A3U", 2),)
    _write(session_factory, order_record(1, updated_at=T, lines=lines, refunded={"HKS0401A3U": 1}))
    assert _write(session_factory, order_record(1, updated_at=T, lines=lines)).updated == 0
    with session_factory() as s:
        assert s.execute(select(OrderLineRow.refunded_quantity)).scalar_one() == 1


def test_within_one_page_the_same_time_version_that_moves_forward_wins_whatever_the_order(session_factory):
    _write(session_factory, order_record(1, updated_at=T, cancelled=True), order_record(1, updated_at=T))
    _write(session_factory, order_record(2, updated_at=T), order_record(2, updated_at=T, cancelled=True))
    assert _order(session_factory, "1000001").is_cancelled and _order(session_factory, "1000002").is_cancelled


HEADER = [
    "amazon-order-id",
    "purchase-date",
    "last-updated-date",
    "order-status",
    "sales-channel",
    "sku",
    "product-name",
    "quantity",
    "currency",
    "item-price",
    "ship-postal-code",
    "ship-country",
]


def _line(order_id: str, price: str) -> str:
    return "\t".join(
        [
            order_id,
            "2025-05-02T23:30:00+00:00",
            "2025-05-03T10:00:00+00:00",
            "Shipped",
            "Amazon.de",
            "HKS0401A3U",
            "TESmart KVM",
            "1",
            "EUR",
            price,
            "10115",
            "DE",
        ]
    )


def test_a_cut_last_line_of_a_report_is_rejected_and_the_stored_order_is_unchanged(session_factory):
    good = "\n".join(
        ["\t".join(HEADER), _line("302-0000001-0000001", "179.98"), _line("302-0000002-0000002", "899.99")]
    )
    first = import_records(
        session_factory,
        read_all_orders_report(io.BytesIO(good.encode()), EU),
        kind="amazon-report",
        store_key=EU.key,
    )
    assert first.inserted == 2
    cut = good[: good.rindex("899.") + 4]  # the download stopped inside the last line's price
    again = import_records(
        session_factory,
        read_all_orders_report(io.BytesIO(cut.encode()), EU),
        kind="amazon-report",
        store_key=EU.key,
    )
    assert (again.read, again.updated, again.unchanged, again.rejected) == (2, 0, 1, 1)
    stored = _order(session_factory, "302-0000002-0000002")
    assert str(stored.total_amount) == "899.99" and stored.shipping_postal_code == "10115"
    with session_factory() as s:
        error = s.execute(select(ImportError_)).scalar_one()
    assert error.record_id == "302-0000002-0000002" and error.field == "line 3"
    assert "cut line" in error.message
