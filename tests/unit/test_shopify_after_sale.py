"""Shopify after the sale: line discounts as Shopify allocated them, partial payments,
replacement orders, and a bulk query (and bulk reader) within Shopify's restrictions."""

from __future__ import annotations

import copy
import io
import json
from collections import Counter
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.records import OrderRecord, Rejected
from vipsync.connectors.shopify.bulk import refunds_without_lines
from vipsync.connectors.shopify.files import read_orders_file
from vipsync.connectors.shopify.mapping import flatten_graphql_order, map_graphql_order, map_rest_order
from vipsync.connectors.shopify.queries import BULK_ORDERS_QUERY, ORDER_FULL_QUERY, ORDERS_PAGE_QUERY
from vipsync.devtools.bulk_rules import BulkQueryRefused, check_bulk_query
from vipsync.devtools.fake_shopify import FakeShopify

US = ShopifyShop(
    key="shopify-us",
    shop_domain="tesmart-us.myshopify.com",
    timezone="America/Los_Angeles",
    country="US",
    replacement_tag="Replacement",
)


def _fixture(fixtures_dir, name: str) -> dict:
    return json.loads((fixtures_dir / "shopify" / name).read_text())["order"]


# ----------------------------------------------------------------------------- discounts
def test_rest_line_discounts_equal_shopifys_own_allocations(fixtures_dir):
    order = _fixture(fixtures_dir, "order_discount_allocations.json")
    record = map_rest_order(order, US)
    allocated = {
        str(li["id"]): sum(
            Decimal(a["amount_set"]["shop_money"]["amount"]) for a in li["discount_allocations"]
        )
        for li in order["line_items"]
    }
    assert {line.line_key: line.discount for line in record.lines} == allocated
    assert sorted(allocated.values()) == [Decimal("3.33"), Decimal("3.33"), Decimal("3.34")]
    # The order-level code (10.00 across all lines) lands on the lines, to the cent.
    assert sum(line.discount or 0 for line in record.lines) == Decimal(
        order["discount_applications"][0]["value"]
    )
    assert all(Decimal(li["total_discount"]) == 0 for li in order["line_items"])  # not what counts


def test_graphql_line_discounts_are_the_sum_of_their_allocations(fixtures_dir):
    rest = _fixture(fixtures_dir, "order_discount_allocations.json")
    node = {
        "id": "gid://shopify/Order/450789469",
        "legacyResourceId": "450789469",
        "name": "#1001",
        "processedAt": rest["processed_at"],
        "updatedAt": rest["updated_at"],
        "displayFinancialStatus": "PAID",
        "totalPriceSet": {"shopMoney": {"amount": rest["total_price"], "currencyCode": "USD"}},
        "lineItems": {
            "nodes": [
                {
                    "id": li["admin_graphql_api_id"],
                    "sku": li["sku"],
                    "title": li["title"],
                    "quantity": li["quantity"],
                    "currentQuantity": li["quantity"],
                    "originalUnitPriceSet": {"shopMoney": {"amount": li["price"]}},
                    "totalDiscountSet": {"shopMoney": {"amount": li["total_discount"]}},
                    "discountAllocations": [
                        {"allocatedAmountSet": {"shopMoney": {"amount": a["amount"]}}}
                        for a in li["discount_allocations"]
                    ],
                }
                for li in rest["line_items"]
            ]
        },
    }
    graphql = map_graphql_order(flatten_graphql_order(node), US)
    assert [line.discount for line in graphql.lines] == [
        line.discount for line in map_rest_order(rest, US).lines
    ]


def test_the_queries_select_the_line_discount_allocations():
    for query in (ORDERS_PAGE_QUERY, ORDER_FULL_QUERY, BULK_ORDERS_QUERY("updated_at:>'2024-01-01'")):
        assert "discountAllocations { allocatedAmountSet { shopMoney { amount } } }" in query


def test_a_line_without_allocations_keeps_its_own_total_discount(fixtures_dir):
    order = _fixture(fixtures_dir, "order_discount_allocations.json")
    for li in order["line_items"]:
        li["discount_allocations"] = []
        li["total_discount"] = "1.50"
    assert {line.discount for line in map_rest_order(order, US).lines} == {Decimal("1.50")}


def test_a_malformed_allocation_is_rejected_naming_the_line_and_field(fixtures_dir):
    order = _fixture(fixtures_dir, "order_discount_allocations.json")
    order["line_items"][1]["discount_allocations"][0]["amount_set"]["shop_money"]["amount"] = "3,33"
    items = list(read_orders_file(io.BytesIO(json.dumps({"order": order}).encode()), US))
    assert len(items) == 1 and isinstance(items[0], Rejected)
    assert items[0].record_id == "450789469"
    assert items[0].field == "line_items[1].discount_allocations[0].amount_set.shop_money.amount"


# ----------------------------------------------------------------------------- payment, tags
def test_a_partially_paid_order_is_a_pending_payment(fixtures_dir):
    order = _fixture(fixtures_dir, "order_partially_paid.json")
    record = map_rest_order(order, US)
    assert order["financial_status"] == "partially_paid"
    assert record.payment_pending is True


def test_a_free_order_with_the_replacement_tag_is_a_replacement(fixtures_dir):
    order = _fixture(fixtures_dir, "order_partially_paid.json")
    order.update(tags="warranty, replacement", total_price="0.00")
    record = map_rest_order(order, US)
    assert (record.is_replacement, record.ops_flags) == (True, ())


def test_a_replacement_with_a_total_is_still_one_and_flagged_for_ops(fixtures_dir):
    order = _fixture(fixtures_dir, "order_partially_paid.json")
    order.update(tags="REPLACEMENT")
    record = map_rest_order(order, US)
    assert (record.is_replacement, record.ops_flags) == (True, ("replacement_with_total",))


def test_without_the_tag_or_without_a_configured_tag_an_order_is_a_purchase(fixtures_dir):
    order = _fixture(fixtures_dir, "order_partially_paid.json")
    order.update(total_price="0.00")
    assert map_rest_order(order, US).is_replacement is False
    order.update(tags="replacement")
    plain = replace(US, replacement_tag=None)
    assert map_rest_order(order, plain).is_replacement is False


def test_ops_flags_are_part_of_the_content_digest(fixtures_dir):
    record = map_rest_order(_fixture(fixtures_dir, "order_partially_paid.json"), US)
    flagged = OrderRecord(
        **{f: getattr(record, f) for f in record.__dataclass_fields__} | {"ops_flags": ("x",)}
    )
    assert record.content_hash() != flagged.content_hash()


# ----------------------------------------------------------------------------- bulk query rules
OLD_BULK_QUERY = """
{ orders(query: "updated_at:<'2026-01-01'") { edges { node {
    id
    refunds { id refundLineItems { edges { node { quantity lineItem { id } } } } }
    lineItems { edges { node { id sku } } }
} } } }
"""


def test_the_bulk_query_keeps_within_shopifys_restrictions():
    assert check_bulk_query(BULK_ORDERS_QUERY("updated_at:<='2026-01-01T00:00:00Z'")) == [
        "orders",
        "orders.lineItems",
    ]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (OLD_BULK_QUERY, "inside the list field orders.refunds"),
        (
            "{ orders { edges { node { lineItems { edges { node { id "
            "refundLineItems: lineItems { edges { node { id } } } } } } } } } }",
            "nested 3 levels deep",
        ),
        (
            "{ orders { edges { node { id a: lineItems { edges { node { id } } } b: lineItems { nodes { id } } "
            "c: lineItems { nodes { id } } d: lineItems { nodes { id } } e: lineItems { nodes { id } } } } } }",
            "6 connections",
        ),
        ('{ node(id: "gid://shopify/Order/1") { id } }', "top-level node"),
        ("{ shop { name } }", "at least one connection"),
        ("{ orders { edges { node { id }", "not valid GraphQL"),
    ],
)
def test_a_bulk_query_breaking_a_documented_restriction_is_refused(query, says):
    with pytest.raises(BulkQueryRefused, match=says):
        check_bulk_query(query)


def test_the_fake_shopify_refuses_a_bulk_query_shopify_would_refuse():
    fake = FakeShopify()
    mutation = "mutation VipsyncBulkRun($query: String!) { bulkOperationRunQuery(query: $query) { bulkOperation { id } } }"
    status, _, body = fake.handle_graphql({"query": mutation, "variables": {"query": OLD_BULK_QUERY}})
    payload = body["data"]["bulkOperationRunQuery"]
    assert status == 200 and payload["bulkOperation"] is None
    assert payload["userErrors"][0]["code"] == "INVALID"
    assert "list field" in payload["userErrors"][0]["message"]
    assert (fake.counters["bulk_refused"], fake.counters["bulk_runs"]) == (1, 0)


# ----------------------------------------------------------------------------- bulk reader
def _order_line(oid: int, **extra) -> dict:
    return {
        "id": f"gid://shopify/Order/{oid}",
        "legacyResourceId": str(oid),
        "name": f"#{oid}",
        "processedAt": "2025-03-01T10:00:00Z",
        "updatedAt": "2025-03-02T10:00:00Z",
        "displayFinancialStatus": "PAID",
        "refunds": [],
        **extra,
    }


def _item(oid: int, lid: int, sku: str = "HKS0401A3U") -> dict:
    return {
        "__typename": "LineItem",
        "id": f"gid://shopify/LineItem/{lid}",
        "sku": sku,
        "title": "KVM",
        "quantity": 1,
        "currentQuantity": 1,
        "__parentId": f"gid://shopify/Order/{oid}",
    }


def test_child_lines_of_other_types_are_skipped_and_counted_never_read_as_line_items():
    lines = [
        _order_line(1),
        {"__typename": "DiscountCodeApplication", "code": "WELCOME10", "__parentId": "gid://shopify/Order/1"},
        _item(1, 11),
        {"code": "NOTYPE", "__parentId": "gid://shopify/Order/1"},
        _order_line(2),
        {"id": "gid://shopify/ProductVariant/5", "title": "70", "__parentId": "gid://shopify/Order/2"},
        _item(2, 21) | {"__typename": None},  # an older file: the gid says LineItem
    ]
    skipped: Counter[str] = Counter()
    data = "\n".join(json.dumps(line) for line in lines).encode()
    items = list(read_orders_file(io.BytesIO(data), US, skipped=skipped))
    assert all(isinstance(i, OrderRecord) for i in items)
    assert [[line.line_key for line in r.lines] for r in items] == [["11"], ["21"]]
    assert skipped == Counter({"DiscountCodeApplication": 1, "unknown": 1, "ProductVariant": 1})


def test_refunds_named_without_their_lines_ask_for_the_whole_order():
    assert refunds_without_lines(_order_line(1, refunds=[{"id": "gid://shopify/Refund/9"}]))
    assert not refunds_without_lines(_order_line(1, refunds=[{"id": "r", "refundLineItems": []}]))
    assert not refunds_without_lines(_order_line(1))


_CHILD = st.fixed_dictionaries(
    {},
    optional={
        "__typename": st.sampled_from(["LineItem", "DiscountCodeApplication", "Refund", "", "X"]),
        "id": st.sampled_from(["gid://shopify/LineItem/7", "gid://shopify/Fulfillment/3", "7", ""]),
        "sku": st.text(max_size=5),
        "quantity": st.one_of(st.integers(-3, 5), st.text(max_size=3), st.none()),
        "lineItem": st.just({"id": "gid://shopify/LineItem/1"}),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(children=st.lists(_CHILD, max_size=6))
def test_hostile_child_lines_never_stop_the_file_or_hide_the_other_orders(children):
    lines = [_order_line(1)]
    lines += [c | {"__parentId": "gid://shopify/Order/1"} for c in copy.deepcopy(children)]
    lines += [_order_line(2), _item(2, 21)]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    items = list(read_orders_file(io.BytesIO(data), US, skipped=Counter()))
    ids = [i.external_id if isinstance(i, OrderRecord) else i.record_id for i in items]
    assert ids == ["1", "2"]
    second = items[1]
    assert isinstance(second, OrderRecord) and [line.line_key for line in second.lines] == ["21"]
    for item in items:
        if isinstance(item, Rejected):
            assert item.field and item.field.startswith("lineItems[")
