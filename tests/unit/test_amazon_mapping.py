"""Orders API payloads (the official sandbox fixtures, as they are) to order records."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from vipsync.config.stores import AmazonAccount, Marketplace, load_stores
from vipsync.connectors.amazon.flatfile import read_all_orders_report
from vipsync.connectors.amazon.mapping import (
    map_order_v0,
    map_order_v2026,
    replay_record,
    try_map_order_v0,
)
from vipsync.connectors.amazon.sync import KnownOrder, needs_items
from vipsync.connectors.records import OrderRecord, Rejected, canonical_json
from vipsync.devtools.amazon_data import generate_orders, order_items_v0, order_v0, report_text

ROOT = Path(__file__).resolve().parents[2]
AMAZON = ROOT / "tests" / "fixtures" / "amazon"
STORES = load_stores(ROOT / "vipsync" / "config" / "stores.toml")
NA: AmazonAccount = STORES.amazon("amazon-na")
EU: AmazonAccount = STORES.amazon("amazon-eu")
BR = Marketplace(
    code="BR", id="A2Q3Y263D00KWC", sales_channel="Amazon.com.br", timezone="America/Sao_Paulo", country="BR"
)
TR = Marketplace(
    code="TR", id="A33AVAJ2PDY3EV", sales_channel="Amazon.com.tr", timezone="Europe/Istanbul", country="TR"
)
# An account listing every marketplace of the official examples (BR and TR are not TESmart's).
WIDE = replace(
    NA, marketplaces=NA.marketplaces + EU.marketplaces + STORES.amazon("amazon-fe").marketplaces + (BR, TR)
)


def _load(name: str) -> dict:
    return json.loads((AMAZON / name).read_text(encoding="utf-8"))


def test_sandbox_get_orders_and_items_map_as_they_are():
    orders = _load("sandbox_getOrders_200.json")["payload"]["Orders"]
    items = _load("sandbox_getOrderItems_200.json")["payload"]["OrderItems"]
    rec = map_order_v0(orders[0], items, NA)
    assert rec.external_id == "902-1845936-5435065" and rec.source == "amazon"
    assert rec.marketplace_id == "ATVPDKIKX0DER"
    # 1970-01-19T03:58:30Z is still January 18 in Los Angeles.
    assert rec.purchase_date == date(1970, 1, 18)
    assert rec.lines[0].line_key == "05015851154158" and rec.lines[0].sku == "NABetaASINB00551Q3CS"
    assert rec.lines[0].unit_price == Decimal("10.00")
    assert rec.total_amount == Decimal("11.01") and rec.currency == "USD"
    assert rec.order_status == "unshipped" and not rec.payment_pending and not rec.is_cancelled
    # No shipping address in the example: the ship-from address is never the unit's country.
    assert rec.country == "US" and rec.country_source == "store" and rec.shipping_postal_code is None
    assert "DefaultShipFromLocationAddress" not in canonical_json(rec.raw)


def test_sandbox_pending_order_is_payment_pending():
    order = _load("sandbox_getOrders_200_next_token.json")["payload"]["Orders"][0]
    rec = map_order_v0(order, [], NA)
    assert rec.payment_pending and rec.order_status == "pending" and rec.lines == ()


def test_sandbox_iba_order_maps_to_amazon_de_with_berlin_date():
    order = _load("sandbox_getOrder_200_iba.json")["payload"]
    rec = map_order_v0(order, [], EU)
    assert rec.marketplace_id == "A1PA6795UKMFR9" and rec.country == "DE" and rec.country_source == "store"
    assert rec.purchase_date == date(2019, 5, 7)


def test_shipping_address_country_and_postal_code_come_from_get_order_address():
    order = dict(_load("sandbox_getOrder_200.json")["payload"])
    address = _load("sandbox_getOrderAddress_200.json")["payload"]["ShippingAddress"]
    rec = map_order_v0(order, [], NA, address=address)
    assert (
        rec.country == "US" and rec.country_source == "shipping" and rec.shipping_postal_code == "98121-2778"
    )
    text = canonical_json(rec.raw)
    assert "MFNIntegrationTestMerchant" not in text and "WESTLAKE" not in text and "480-386" not in text


@pytest.mark.parametrize(
    "name",
    [
        "sandbox_v2026_searchOrders_200_a.json",
        "sandbox_v2026_searchOrders_200_b_paginationToken.json",
        "sandbox_v2026_searchOrders_200_c.json",
    ],
)
def test_v2026_search_orders_fixtures_map_as_they_are(name):
    for order in _load(name)["orders"]:
        rec = map_order_v2026(order, WIDE)
        assert rec.external_id == order["orderId"]
        assert rec.country == order["recipient"]["deliveryAddress"]["countryCode"].replace("UK", "GB")
        assert rec.shipping_postal_code == order["recipient"]["deliveryAddress"]["postalCode"]
        assert sum(line.quantity for line in rec.lines) == sum(
            i["quantityOrdered"] for i in order["orderItems"]
        )
        text = canonical_json(rec.raw)
        assert order["buyer"]["buyerName"] not in text and "buyer-email" not in text
        assert rec.email_hash is None


@pytest.mark.parametrize(
    "name",
    [
        "sandbox_v2026_getOrder_200_a.json",
        "sandbox_v2026_getOrder_200_b.json",
        "sandbox_v2026_getOrder_200_c.json",
    ],
)
def test_v2026_get_order_fixtures_map_as_they_are(name):
    order = _load(name)["order"]
    rec = map_order_v2026(order, WIDE)
    assert rec.external_id == order["orderId"] and rec.lines


def test_v2026_japanese_order_is_dated_in_tokyo():
    order = _load("sandbox_v2026_searchOrders_200_a.json")["orders"][0]
    rec = map_order_v2026(order, WIDE)
    assert rec.purchase_date == date(2024, 12, 25) and rec.country == "JP"
    assert rec.unit_keys() == [
        ("ECHO-DOT-4-JP-CHARCOAL", 1),
        ("FIRE-TV-4K-MAX-JP", 1),
        ("FIRE-TV-4K-MAX-JP", 2),
    ]


def test_unknown_marketplace_is_rejected_with_the_payload_and_replays_once_listed():
    order = _load("sandbox_v2026_getOrder_200_a.json")["order"]  # Amazon.com.br
    with pytest.raises(Exception):
        map_order_v2026(order, NA)
    v0 = dict(
        _load("sandbox_getOrders_200.json")["payload"]["Orders"][0],
        MarketplaceId="A2Q3Y263D00KWC",
        SalesChannel="Amazon.com.br",
    )
    rej = try_map_order_v0(v0, [], NA)
    assert (
        isinstance(rej, Rejected) and rej.field == "MarketplaceId" and rej.record_id == "902-1845936-5435065"
    )
    (fixed,) = list(replay_record(rej.raw, WIDE))
    assert isinstance(fixed, OrderRecord) and fixed.marketplace_id == "A2Q3Y263D00KWC"


def test_status_change_reuses_stored_lines_without_items():
    order = _load("sandbox_getOrders_200.json")["payload"]["Orders"][0]
    items = _load("sandbox_getOrderItems_200.json")["payload"]["OrderItems"]
    first = map_order_v0(order, items, NA)
    shipped = dict(order, OrderStatus="Shipped", NumberOfItemsShipped=1, NumberOfItemsUnshipped=0)
    known = KnownOrder(item_count=1, lines=first.lines)
    assert not needs_items(shipped, known)
    again = map_order_v0(shipped, None, NA, known_lines=known.lines)
    assert again.unit_keys() == first.unit_keys() and again.order_status == "shipped"


def test_items_are_fetched_for_new_orders_and_changed_counts_only():
    order = _load("sandbox_getOrders_200.json")["payload"]["Orders"][0]
    assert needs_items(order, None)
    assert not needs_items(order, KnownOrder(item_count=1, lines=()))
    assert needs_items(dict(order, NumberOfItemsUnshipped=2), KnownOrder(item_count=1, lines=()))
    assert not needs_items(
        dict(order, OrderStatus="Canceled", NumberOfItemsUnshipped=0), KnownOrder(item_count=1, lines=())
    )


def test_report_and_orders_api_yield_the_same_units_for_the_same_orders():
    orders = generate_orders(200, markets=("DE", "UK", "FR"), seed=11)
    from_report = {r.external_id: r for r in read_all_orders_report(io.BytesIO(report_text(orders)), EU)}
    for o in orders:
        api = map_order_v0(order_v0(o), order_items_v0(o), EU)
        rep = from_report[o.order_id]
        assert sorted(api.unit_keys()) == sorted(rep.unit_keys())
        assert api.purchase_date == rep.purchase_date and api.marketplace_id == rep.marketplace_id
        if o.status != "Pending":  # pending orders carry no address in the API
            assert (api.country, api.shipping_postal_code) == (rep.country, rep.shipping_postal_code)
        assert api.is_cancelled == rep.is_cancelled and api.payment_pending == rep.payment_pending
