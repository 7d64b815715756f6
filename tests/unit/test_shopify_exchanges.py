"""Shopify exchanges read from an order's returns (GraphQL Admin API ``Order.returns``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.limits import map_or_reject
from vipsync.connectors.records import OrderFact, Rejected
from vipsync.connectors.shopify.exchanges import (
    ORDER_RETURNS_QUERY,
    edit_facts,
    order_returns_cost,
    returns_unread,
)
from vipsync.connectors.shopify.mapping import map_graphql_order
from vipsync.connectors.shopify.queries import BULK_ORDERS_QUERY, ORDERS_PAGE_QUERY

US = ShopifyShop(
    key="shopify-us", shop_domain="x.myshopify.com", timezone="America/Los_Angeles", country="US"
)


def _line(lid: int, sku: str, quantity: int, current: int) -> dict:
    return {
        "id": f"gid://shopify/LineItem/{lid}",
        "sku": sku,
        "title": sku,
        "quantity": quantity,
        "currentQuantity": current,
        "originalUnitPriceSet": {"shopMoney": {"amount": "199.99"}},
        "discountAllocations": [],
    }


def _return(rid: int, at: str, returned: list[tuple[int, int]], exchanged: list[dict]) -> dict:
    return {
        "id": f"gid://shopify/Return/{rid}",
        "createdAt": at,
        "returnLineItems": {
            "nodes": [
                {"quantity": q, "fulfillmentLineItem": {"lineItem": {"id": f"gid://shopify/LineItem/{lid}"}}}
                for lid, q in returned
            ]
        },
        "exchangeLineItems": {"nodes": exchanged},
    }


def _order(returns: list[dict]) -> dict:
    return {
        "id": "gid://shopify/Order/5001",
        "legacyResourceId": "5001",
        "name": "#5001",
        "processedAt": "2024-01-10T09:00:00-08:00",
        "updatedAt": "2025-03-02T09:00:00-08:00",
        "displayFinancialStatus": "PAID",
        "returnStatus": "RETURNED",
        "totalPriceSet": {"shopMoney": {"amount": "399.98", "currencyCode": "USD"}},
        "lineItems": [
            _line(11, "HKS0401A3U", 2, 0),
            _line(12, "HKS0802A1U", 1, 1),
            _line(13, "HKS1601A1U", 1, 1),
        ],
        "returns": returns,
    }


def test_the_exchange_items_of_a_return_take_the_place_of_its_returned_units_one_by_one():
    order = _order(
        [
            _return(
                7,
                "2025-03-01T10:00:00-05:00",
                [(11, 2)],
                [
                    {"quantity": 1, "lineItems": [{"id": "gid://shopify/LineItem/12"}]},
                    {"quantity": 1, "lineItem": {"id": "gid://shopify/LineItem/13"}},  # the deprecated field
                ],
            ),
            _return(8, "2025-03-05T10:00:00-05:00", [(12, 1)], []),  # a plain return: the refund decides
        ]
    )
    rec = map_graphql_order(order, US)
    assert [(f.kind, f.line_key, f.returned_line_key, f.quantity, f.fact_key) for f in rec.facts] == [
        ("exchange", "12", "11", 1, "return:7:12:11"),
        ("exchange", "13", "11", 1, "return:7:13:11"),
    ]
    assert {f.posted_at for f in rec.facts} == {datetime(2025, 3, 1, 15, 0, tzinfo=UTC)}
    assert all(f.order_external_id == "5001" and f.store_key == "shopify-us" for f in rec.facts)


def test_exchange_items_past_the_returned_units_are_new_purchases():
    order = _order(
        [_return(9, "2025-03-01T10:00:00-05:00", [(11, 1)], [{"quantity": 2, "lineItems": [{"id": "12"}]}])]
    )
    facts = map_graphql_order(order, US).facts
    assert [(f.line_key, f.returned_line_key, f.quantity) for f in facts] == [
        ("12", None, 1),
        ("12", "11", 1),
    ]


def test_a_malformed_return_is_rejected_naming_its_field():
    order = _order(
        [_return(9, "2025-03-01T10:00:00-05:00", [(11, 1)], [{"quantity": "one", "lineItems": []}])]
    )
    rejected = map_or_reject(map_graphql_order, order, US, record_id="5001")
    assert isinstance(rejected, Rejected)
    assert (rejected.record_id, rejected.field) == ("5001", "returns[0].exchangeLineItems[0].quantity")


@pytest.mark.parametrize(
    ("node", "unread"),
    [
        ({"returnStatus": "NO_RETURN"}, False),
        ({"returnStatus": "RETURNED"}, True),
        ({"returnStatus": "IN_PROGRESS", "returns": []}, False),
        ({}, False),
        ("not an order", False),
    ],
)
def test_only_an_order_with_returns_it_does_not_carry_is_read_again(node, unread):
    assert returns_unread(node) is unread


def test_the_order_pages_ask_the_return_status_and_the_returns_query_stays_under_the_cost_maximum():
    assert "returnStatus" in ORDERS_PAGE_QUERY and "returnStatus" in BULK_ORDERS_QUERY("x")
    assert "returns(" not in ORDERS_PAGE_QUERY  # read only for orders with a return
    assert order_returns_cost() <= 1000
    assert "exchangeLineItems" in ORDER_RETURNS_QUERY and "fulfillmentLineItem" in ORDER_RETURNS_QUERY


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_EDIT_ITEM = st.fixed_dictionaries(
    {"id": _JSON | st.integers(1, 10**12), "delta": _JSON | st.integers(0, 10**15)}
)


@settings(max_examples=150, deadline=None)
@given(
    edit=st.fixed_dictionaries(
        {
            "id": _JSON | st.integers(1, 10**9),
            "created_at": _JSON | st.just("2025-03-01T10:00:00-05:00"),
            "order_id": _JSON | st.integers(1, 10**12),
            "line_items": _JSON
            | st.fixed_dictionaries(
                {
                    "additions": _JSON | st.lists(_EDIT_ITEM, max_size=3),
                    "removals": _JSON | st.lists(_EDIT_ITEM, max_size=3),
                }
            ),
        }
    )
)
def test_a_hostile_order_edit_is_facts_or_one_reject_never_an_exception(edit):
    items = edit_facts({"order_edit": edit}, US)
    assert all(isinstance(i, OrderFact | Rejected) for i in items)
    assert sum(isinstance(i, Rejected) for i in items) <= 1
    assert all(0 < f.quantity <= 10_000 for f in items if isinstance(f, OrderFact))


@settings(max_examples=150, deadline=None)
@given(returns=st.lists(_JSON | st.fixed_dictionaries({"id": _JSON, "createdAt": _JSON, "returnLineItems": _JSON,
                                                         "exchangeLineItems": _JSON}), max_size=3))  # fmt: skip
def test_hostile_returns_map_or_reject_the_order_never_raise(returns):
    item = map_or_reject(map_graphql_order, _order(returns), US, record_id="5001")
    assert isinstance(item, Rejected) or all(isinstance(f, OrderFact) for f in item.facts)
