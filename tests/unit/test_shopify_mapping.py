"""The Shopify mappers against the official fixtures and POLICY.md's rules."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.records import email_digest
from vipsync.connectors.shopify.mapping import map_graphql_order, map_rest_order
from vipsync.errors import RecordError

US = ShopifyShop(
    key="shopify-us", shop_domain="tesmart-us.myshopify.com", timezone="America/Los_Angeles", country="US"
)
JP = ShopifyShop(
    key="shopify-jp", shop_domain="tesmart-jp.myshopify.com", timezone="Asia/Tokyo", country="JP"
)
EU = ShopifyShop(
    key="shopify-eu", shop_domain="tesmart-eu.myshopify.com", timezone="Europe/Berlin", country="DE"
)


@pytest.fixture
def order(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "shopify/order.json").read_text())["order"]


@pytest.fixture
def orders_doc(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "shopify/orders.json").read_text())


@pytest.fixture
def refund(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "shopify/refund.json").read_text())["refund"]


def test_official_order_fixture_maps_as_published(order):
    rec = map_rest_order(order, US)
    assert rec.external_id == "450789469" and rec.name == "#1001"
    # No processed_at in this fixture: created_at is the purchase time.
    assert rec.purchased_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert rec.purchase_date == date(2008, 1, 10)
    assert rec.updated_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert [(line.line_key, line.sku, line.quantity) for line in rec.lines] == [
        ("466157049", "IPOD2008GREEN", 1),
        ("518995019", "IPOD2008RED", 1),
        ("703073504", "IPOD2008BLACK", 1),
    ]
    assert rec.lines[0].unit_price == Decimal("199.00")
    assert rec.financial_status == "authorized" and rec.payment_pending is True
    assert rec.country == "US" and rec.country_source == "shipping"
    assert rec.shipping_postal_code == "40202"
    assert rec.discount_codes == ("TENOFF",)
    assert rec.email_hash == email_digest("bob.norman@hostmail.com")
    assert rec.total_amount == Decimal("409.94") and rec.currency == "USD"
    assert rec.is_cancelled is False and rec.is_test is False
    assert rec.raw is order


def test_official_orders_fixture_maps_with_processed_at_and_no_lines(orders_doc):
    rec = map_rest_order(orders_doc["orders"][0], US)
    assert rec.purchased_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert rec.lines == ()
    assert rec.financial_status == "partially_refunded" and rec.payment_pending is False


def test_processed_at_wins_over_created_at_for_imported_orders(order):
    order = dict(order, processed_at="2007-12-31T23:30:00-08:00")
    assert map_rest_order(order, US).purchase_date == date(2007, 12, 31)


def test_purchase_date_is_the_calendar_date_in_the_shop_zone(order):
    order = dict(order, processed_at="2024-01-01T16:00:00Z")
    assert map_rest_order(order, JP).purchase_date == date(2024, 1, 2)
    assert map_rest_order(order, US).purchase_date == date(2024, 1, 1)


def test_official_refund_takes_the_refunded_line_quantities(order, refund):
    order = dict(order, refunds=[refund])
    by_sku = {line.sku: line.refunded_quantity for line in map_rest_order(order, US).lines}
    assert by_sku == {"IPOD2008GREEN": 1, "IPOD2008RED": 0, "IPOD2008BLACK": 1}


def test_money_only_refund_takes_no_unit(order, refund):
    money_only = dict(refund, refund_line_items=[])
    rec = map_rest_order(dict(order, refunds=[money_only]), US)
    assert all(line.refunded_quantity == 0 for line in rec.lines)


def test_country_falls_back_to_billing_then_to_the_shop(order):
    no_ship = dict(
        order, shipping_address=None, billing_address=dict(order["billing_address"], country_code="UK")
    )
    rec = map_rest_order(no_ship, US)
    assert (rec.country, rec.country_source) == ("GB", "billing")
    rec = map_rest_order(dict(order, shipping_address=None, billing_address=None), EU)
    assert (rec.country, rec.country_source) == ("DE", "store")


def test_line_without_sku_keeps_empty_sku_and_its_title(order):
    order = copy.deepcopy(order)
    order["line_items"][1]["sku"] = None
    line = map_rest_order(order, US).lines[1]
    assert line.sku == "" and line.title == "IPod Nano - 8gb"


def test_cancelled_and_test_orders_are_kept_and_flagged(order):
    rec = map_rest_order(dict(order, cancelled_at="2008-01-11T10:00:00-05:00", test=True), US)
    assert rec.is_cancelled and rec.cancelled_at == datetime(2008, 1, 11, 15, 0, tzinfo=UTC)
    assert rec.is_test


def test_email_falls_back_to_contact_email_then_customer(order):
    rec = map_rest_order(dict(order, email=None, contact_email=None), US)
    assert rec.email_hash == email_digest(order["customer"]["email"])


def test_bad_quantity_names_the_record_and_the_field(order):
    order = copy.deepcopy(order)
    order["line_items"][2]["quantity"] = "three"
    with pytest.raises(RecordError) as err:
        map_rest_order(order, US)
    assert err.value.record_id == "450789469" and err.value.field == "line_items[2].quantity"
    assert "bob" not in str(err.value).lower()


def test_timestamp_without_offset_is_refused(order):
    with pytest.raises(RecordError) as err:
        map_rest_order(dict(order, created_at="2008-01-10T11:00:00"), US)
    assert err.value.field == "created_at"


def _graphql_node() -> dict:
    return {
        "id": "gid://shopify/Order/450789469",
        "legacyResourceId": "450789469",
        "name": "#1001",
        "processedAt": None,
        "createdAt": "2008-01-10T16:00:00Z",
        "updatedAt": "2008-01-12T16:00:00Z",
        "cancelledAt": None,
        "test": False,
        "displayFinancialStatus": "PAID",
        "email": "Bob.Norman@hostmail.com ",
        "currencyCode": "USD",
        "discountCodes": ["TENOFF"],
        "totalPriceSet": {"shopMoney": {"amount": "409.94", "currencyCode": "USD"}},
        "shippingAddress": {"countryCodeV2": "US", "zip": "40202"},
        "billingAddress": {"countryCodeV2": "US"},
        "lineItems": {
            "pageInfo": {"hasNextPage": False},
            "nodes": [
                {
                    "id": "gid://shopify/LineItem/466157049",
                    "sku": "HKS0401A3U",
                    "title": "KVM",
                    "quantity": 3,
                    "currentQuantity": 1,
                    "originalUnitPriceSet": {"shopMoney": {"amount": "329.99"}},
                },
                {
                    "id": "gid://shopify/LineItem/518995019",
                    "sku": None,
                    "title": "Gift wrapping",
                    "quantity": 1,
                    "currentQuantity": 1,
                },
            ],
        },
        "refunds": [
            {
                "id": "gid://shopify/Refund/1",
                "refundLineItems": {
                    "nodes": [{"quantity": 1, "lineItem": {"id": "gid://shopify/LineItem/466157049"}}]
                },
            }
        ],
    }


def test_graphql_order_maps_with_the_same_line_keys_as_rest():
    rec = map_graphql_order(_graphql_node(), US)
    assert rec.external_id == "450789469" and rec.raw_kind == "graphql_order"
    assert rec.purchased_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)  # createdAt: processedAt is null
    assert [line.line_key for line in rec.lines] == ["466157049", "518995019"]
    assert rec.lines[1].sku == "" and rec.lines[1].title == "Gift wrapping"
    assert rec.email_hash == email_digest("bob.norman@hostmail.com")
    assert rec.total_amount == Decimal("409.94") and rec.lines[0].unit_price == Decimal("329.99")
    assert rec.discount_codes == ("TENOFF",) and rec.shipping_postal_code == "40202"


def test_graphql_edit_removal_drops_units_but_a_refund_keeps_them_marked():
    # quantity 3, one refunded, one removed by an edit: currentQuantity 1 -> two units, one refunded.
    line = map_graphql_order(_graphql_node(), US).lines[0]
    assert (line.quantity, line.refunded_quantity) == (2, 1)


def test_graphql_pending_and_authorized_payments_are_pending():
    for status, pending in (
        ("PENDING", True),
        ("AUTHORIZED", True),
        ("PAID", False),
        ("PARTIALLY_REFUNDED", False),
    ):
        rec = map_graphql_order(dict(_graphql_node(), displayFinancialStatus=status), US)
        assert rec.payment_pending is pending, status


def test_graphql_order_without_any_time_is_rejected_on_processed_at():
    node = dict(_graphql_node(), createdAt=None, processedAt=None)
    with pytest.raises(RecordError) as err:
        map_graphql_order(node, US)
    assert err.value.field == "processedAt" and err.value.record_id == "450789469"
