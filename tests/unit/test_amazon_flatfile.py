"""The All Orders flat-file reader: header mapping, grouping, countries, dates, rejects."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from vipsync.config.stores import AmazonAccount, load_stores
from vipsync.connectors.amazon.flatfile import ReportStats, read_all_orders_report, replay_record
from vipsync.connectors.records import OrderRecord, Rejected
from vipsync.devtools.amazon_data import (
    REPORT_COLUMNS,
    generate_orders,
    report_rows,
    report_text,
    sample_orders,
)

ROOT = Path(__file__).resolve().parents[2]
STORES = load_stores(ROOT / "vipsync" / "config" / "stores.toml")
EU: AmazonAccount = STORES.amazon("amazon-eu")
NA: AmazonAccount = STORES.amazon("amazon-na")
FE: AmazonAccount = STORES.amazon("amazon-fe")


def _read(data: bytes, account=EU, **kwargs) -> list[OrderRecord | Rejected]:
    return list(read_all_orders_report(io.BytesIO(data), account, **kwargs))


def _tsv(header: list[str], rows: list[dict[str, str]]) -> bytes:
    out = ["\t".join(header)] + ["\t".join(r.get(h, "") for h in header) for r in rows]
    return ("\n".join(out) + "\n").encode("utf-8")


def _row(**over: str) -> dict[str, str]:
    row = {
        "amazon-order-id": "302-1234567-7654321",
        "purchase-date": "2025-05-02T23:30:00+00:00",
        "last-updated-date": "2025-05-03T10:00:00+00:00",
        "order-status": "Shipped",
        "sales-channel": "Amazon.de",
        "sku": "HKS0401A3U",
        "product-name": "TESmart 4 Port HDMI KVM Switch",
        "quantity": "1",
        "currency": "EUR",
        "item-price": "179.98",
        "ship-postal-code": "1010",
        "ship-country": "AT",
    }
    row.update(over)
    return row


def test_amazon_de_order_shipped_to_austria_is_austrian_and_dated_in_berlin():
    (rec,) = _read(_tsv(list(_row()), [_row()]))
    assert isinstance(rec, OrderRecord)
    assert rec.country == "AT" and rec.country_source == "shipping"
    # 23:30 UTC on May 2 is 01:30 on May 3 in Berlin.
    assert rec.purchase_date == date(2025, 5, 3)
    assert rec.marketplace_id == "A1PA6795UKMFR9"
    assert rec.shipping_postal_code == "1010"
    assert rec.email_hash is None
    assert rec.lines[0].line_key == "HKS0401A3U#1"


def test_columns_are_mapped_by_header_name_not_position():
    row = _row()
    header = [*reversed(list(row)), "url", "number-of-items", "tax-collection-model"]
    (rec,) = _read(_tsv(header, [row | {"url": "x", "number-of-items": "1"}]))
    assert isinstance(rec, OrderRecord)
    assert rec.lines[0].sku == "HKS0401A3U" and rec.lines[0].quantity == 1 and rec.country == "AT"


def test_seller_central_locale_variants_of_column_names_are_understood():
    row = _row(quantity="2")
    header = [
        "amazon-order-id",
        "merchant order-id",
        "purchase-date",
        "order-status",
        "sales-channel",
        "sku",
        "quantity-purchased",
        "ship-country",
    ]
    renamed = dict(row, **{"merchant order-id": "M-1", "quantity-purchased": "2"})
    (rec,) = _read(_tsv(header, [renamed]))
    assert isinstance(rec, OrderRecord)
    assert rec.unit_keys() == [("HKS0401A3U", 1), ("HKS0401A3U", 2)]


def test_two_rows_of_the_same_sku_in_one_order_add_up_to_units():
    rows = [_row(quantity="2"), _row(quantity="1")]
    (rec,) = _read(_tsv(list(_row()), rows))
    assert [line.line_key for line in rec.lines] == ["HKS0401A3U#1", "HKS0401A3U#2"]
    assert rec.unit_keys() == [("HKS0401A3U", 1), ("HKS0401A3U", 2), ("HKS0401A3U", 3)]


def test_rows_of_one_order_far_apart_are_read_again_and_emitted_complete():
    a = _row(sku="HKS0401A3U")
    b = _row(**{"amazon-order-id": "302-0000001-0000001", "sku": "DKS0401A30"})
    c = _row(**{"amazon-order-id": "302-0000002-0000002", "sku": "DKS0401A30"})
    d = _row(sku="CAB-HDMI-KVM-5FT")  # same order as a, three rows later
    stats = ReportStats()
    recs = _read(_tsv(list(_row()), [a, b, c, d]), window_rows=2, stats=stats)
    scattered = [r for r in recs if r.external_id == a["amazon-order-id"]]
    assert stats.late_rows == 1
    # The last version of the order (the one the store keeps) has both rows.
    assert sorted(line.sku for line in scattered[-1].lines) == ["CAB-HDMI-KVM-5FT", "HKS0401A3U"]
    assert all(isinstance(r, OrderRecord) for r in recs)


def test_scattered_order_in_a_stream_that_cannot_be_reread_is_rejected_not_split():
    class Stream(io.BytesIO):
        def seekable(self):
            return False

    rows = [
        _row(),
        _row(**{"amazon-order-id": "302-0000001-0000001"}),
        _row(**{"amazon-order-id": "302-0000002-0000002"}),
        _row(sku="X1"),
    ]
    recs = list(read_all_orders_report(Stream(_tsv(list(_row()), rows)), EU, window_rows=2))
    rejected = [r for r in recs if isinstance(r, Rejected)]
    assert len(rejected) == 1 and rejected[0].record_id == "302-1234567-7654321"


def test_non_amazon_rows_are_skipped_and_counted():
    stats = ReportStats()
    rows = [_row(), _row(**{"amazon-order-id": "S01-1234567-1234567", "sales-channel": "Non-Amazon"})]
    recs = _read(_tsv(list(_row()), rows), stats=stats)
    assert [r.external_id for r in recs] == ["302-1234567-7654321"]
    assert stats.skipped_non_amazon_rows == 1


def test_channel_the_account_does_not_list_is_rejected_and_replays_once_listed():
    (rej,) = _read(_tsv(list(_row()), [_row(**{"sales-channel": "Amazon.com.tr"})]))
    assert isinstance(rej, Rejected) and rej.field == "sales-channel"
    turkey = replace(
        EU.marketplaces[0],
        code="TR",
        id="A33AVAJ2PDY3EV",
        sales_channel="Amazon.com.tr",
        timezone="Europe/Istanbul",
        country="TR",
    )
    wider = replace(EU, marketplaces=(*EU.marketplaces, turkey))
    (fixed,) = list(replay_record(rej.raw, wider))
    assert isinstance(fixed, OrderRecord) and fixed.marketplace_id == "A33AVAJ2PDY3EV"


def test_bad_quantity_rejects_that_order_only_naming_it_and_the_field():
    rows = [_row(quantity="one"), _row(**{"amazon-order-id": "302-0000001-0000001"})]
    recs = _read(_tsv(list(_row()), rows))
    assert isinstance(recs[0], Rejected)
    assert (recs[0].record_id, recs[0].field) == ("302-1234567-7654321", "quantity")
    assert isinstance(recs[1], OrderRecord)


def test_timestamp_without_offset_is_rejected():
    (rej,) = _read(_tsv(list(_row()), [_row(**{"purchase-date": "2025-05-02 23:30:00"})]))
    assert isinstance(rej, Rejected) and rej.field == "purchase-date"


def test_seller_central_spaced_offset_is_parsed():
    (rec,) = _read(_tsv(list(_row()), [_row(**{"purchase-date": "2003-07-14T18:53:56+ 00 :00"})]))
    assert rec.purchased_at == datetime(2003, 7, 14, 18, 53, 56, tzinfo=UTC)


def test_a_file_without_the_required_columns_cannot_be_read():
    with pytest.raises(ValueError, match="missing column"):
        _read(b"order-id\tfoo\n1\t2\n")


def test_cancelled_and_pending_orders_are_flagged():
    rows = [
        _row(**{"order-status": "Cancelled"}),
        _row(**{"amazon-order-id": "302-0000001-0000001", "order-status": "Pending", "item-price": ""}),
    ]
    cancelled, pending = _read(_tsv(list(_row()), rows))
    assert cancelled.is_cancelled and not cancelled.payment_pending and cancelled.order_status == "canceled"
    assert pending.payment_pending and not pending.is_cancelled and pending.lines[0].unit_price is None


def test_buyer_columns_are_not_kept_in_the_raw_rows():
    row = _row() | {
        "buyer-email": "someone@example.com",
        "buyer-name": "Some One",
        "ship-address-1": "Street 1",
        "ship-city": "Wien",
    }
    (rec,) = _read(_tsv(list(row), [row]))
    kept = rec.raw["rows"][0]
    assert (
        "buyer-email" not in kept
        and "buyer-name" not in kept
        and "ship-address-1" not in kept
        and "ship-city" not in kept
    )
    assert kept["ship-postal-code"] == "1010"


def test_windows_1252_line_is_decoded():
    data = _tsv(list(_row()), [_row(**{"product-name": "Umschalter für Monitore"})]).replace(
        "ü".encode(), "ü".encode("cp1252")
    )
    (rec,) = _read(data)
    assert rec.lines[0].title == "Umschalter für Monitore"


def test_generated_report_yields_one_record_per_order_with_all_units():
    orders = generate_orders(300, markets=("DE", "UK", "FR"), seed=3)
    recs = _read(report_text(orders))
    assert len(recs) == 300 and all(isinstance(r, OrderRecord) for r in recs)
    by_id = {r.external_id: r for r in recs}
    for o in orders:
        assert len(by_id[o.order_id].unit_keys()) == o.item_count


def test_bundled_sample_covers_the_demo_cases():
    path = ROOT / "vipsync" / "samples" / "amazon_all_orders_sample.tsv"
    for account, market_codes in ((NA, {"US"}), (EU, {"DE", "UK"}), (FE, {"JP"})):
        with path.open("rb") as fh:
            recs = [r for r in read_all_orders_report(fh, account) if isinstance(r, OrderRecord)]
        assert {o.order_id for o in sample_orders() if o.market in market_codes} == {
            r.external_id for r in recs
        }
    with path.open("rb") as fh:
        eu = [r for r in read_all_orders_report(fh, EU) if isinstance(r, OrderRecord)]
    assert any(r.country == "AT" and r.marketplace_id == "A1PA6795UKMFR9" for r in eu)
    with path.open("rb") as fh:
        na = [r for r in read_all_orders_report(fh, NA) if isinstance(r, OrderRecord)]
    assert any(r.is_cancelled for r in na) and any(r.payment_pending for r in na)
    skus = {line.sku for r in na + eu for line in r.lines}
    assert {"HKS0401A3U", "DKS0401A30", "HMA0808A10", "CAB-HDMI-KVM-5FT"} <= skus


def test_report_columns_match_the_documented_list():
    assert set(report_rows(generate_orders(1)[0])[0]) == set(REPORT_COLUMNS)
