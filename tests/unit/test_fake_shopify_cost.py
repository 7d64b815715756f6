"""The fake Admin API charges each query the connector sends what Shopify's documented
calculated query cost gives, and what the connector declares to its bucket."""

from __future__ import annotations

from vipsync.connectors.shopify.exchanges import ORDER_RETURNS_QUERY, order_returns_cost
from vipsync.connectors.shopify.queries import (
    ACCESS_SCOPES_QUERY,
    BULK_CURRENT_QUERY,
    BULK_RUN_MUTATION,
    ORDER_FULL_QUERY,
    ORDERS_COUNTED_PAGE_QUERY,
    ORDERS_PAGE_QUERY,
    order_full_cost,
    orders_page_cost,
    page_size_for_cost,
    updated_between,
)
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.devtools.query_cost import actual_cost, requested_cost
from vipsync.workers.prices import VARIANT_PRICE_COST, VARIANT_PRICE_QUERY


def _cost(fake: FakeShopify, query: str, variables: dict) -> tuple[int, dict]:
    status, _, body = fake.handle_graphql({"query": query, "variables": variables})
    assert status == 200 and "errors" not in body, body
    return body["extensions"]["cost"]["requestedQueryCost"], body["data"]


def test_a_page_costs_what_the_connector_declares():
    fake = FakeShopify(orders=40, bucket_size=1e6)
    first = page_size_for_cost()
    variables = {"first": first, "after": None, "query": ""}
    requested, data = _cost(fake, ORDERS_PAGE_QUERY, variables)
    # the connection and its pageInfo 3; a node: the order 1, its total 2, two addresses 2,
    # its custom attributes 1, its line connection 3 with three lines of 6, its refund's id 1
    assert requested == orders_page_cost(first) == 3 + first * (1 + 2 + 2 + 1 + 3 + 3 * 6 + 1)
    assert "ordersCount" not in data
    assert all(set(r) == {"id"} for n in data["orders"]["nodes"] for r in n["refunds"])


def test_the_counted_first_page_costs_one_point_more_and_counts_the_window():
    fake = FakeShopify(orders=40, bucket_size=1e6)
    ids = fake.add_orders(5)
    since = fake.order(ids[0]).updated_at
    window = sum(1 for oid in fake.order_ids if fake.order(oid).updated_at >= since)
    first = page_size_for_cost()
    variables = {"first": first, "after": None, "query": updated_between(since, None)}
    requested, data = _cost(fake, ORDERS_COUNTED_PAGE_QUERY, variables)
    assert requested == orders_page_cost(first, counted=True) == orders_page_cost(first) + 1
    assert data["ordersCount"] == {"count": window, "precision": "EXACT"}
    assert len(data["orders"]["nodes"]) == min(first, window)


def test_the_whole_order_query_costs_what_the_connector_declares():
    fake = FakeShopify(orders=1, bucket_size=1e6)
    requested, data = _cost(fake, ORDER_FULL_QUERY, {"id": fake.order(fake.order_ids[0]).gid})
    assert requested == order_full_cost() <= 1000
    assert data["order"]["id"] == fake.order(fake.order_ids[0]).gid


def test_every_other_query_the_connector_sends_costs_what_it_declares():
    # the app installation 1 and its scopes list (one element) 1; the bulk operation 1;
    # a mutation 10; the variants connection 2, its one variant 1, the shop 1
    assert requested_cost(ACCESS_SCOPES_QUERY) == 2
    assert requested_cost(BULK_CURRENT_QUERY) == 1
    assert requested_cost(BULK_RUN_MUTATION, {"query": "{ orders { edges { node { id } } } }"}) == 10
    assert requested_cost(VARIANT_PRICE_QUERY, {"query": "sku:X"}) == VARIANT_PRICE_COST == 4
    assert requested_cost(ORDER_RETURNS_QUERY, {"id": "gid://shopify/Order/1"}) == order_returns_cost()


def test_cost_follows_the_documented_rules_for_any_shape():
    query = """query Q($n: Int!) {
      shop { name }
      orders(first: $n) { edges { cursor node { id customer { id } } } }
      products(last: 3) { nodes { id } }
    }"""
    # shop 1; orders 2 + 10 x (node 1 + customer 1); products 2 + 3 x 1 (no pageInfo asked)
    assert requested_cost(query, {"n": 10}) == 1 + (2 + 10 * 2) + (2 + 3)
    data = {
        "shop": {"name": "x"},
        "orders": {"edges": [{"cursor": "a", "node": {"id": "1", "customer": None}}]},
        "products": {"nodes": []},
    }
    # what came back: one order without a customer, no product
    assert actual_cost(query, {"n": 10}, data) == 1 + (2 + 1) + 2


def test_the_bucket_is_refunded_what_a_page_did_not_use():
    fake = FakeShopify(orders=3, bucket_size=2000)
    first = page_size_for_cost()
    _, _, body = fake.handle_graphql(
        {"query": ORDERS_PAGE_QUERY, "variables": {"first": first, "after": None, "query": ""}}
    )
    cost = body["extensions"]["cost"]
    nodes = body["data"]["orders"]["nodes"]
    assert len(nodes) == 3

    def returned(node: dict) -> int:
        # the order 1, its total 2, the addresses it has, its line connection 3; each line
        # 1 with its price 2 and 3 for each discount allocation; each refund 1
        lines = node["lineItems"]["nodes"]
        return (
            1
            + 2
            + (node["shippingAddress"] is not None)
            + (node["billingAddress"] is not None)
            + 3
            + sum(3 + 3 * len(line["discountAllocations"]) for line in lines)
            + len(node["refunds"])
        )

    assert cost["actualQueryCost"] == 3 + sum(returned(n) for n in nodes) < cost["requestedQueryCost"]
    # only the actual cost stays spent (plus what the restore rate gave back meanwhile)
    assert 2000 - cost["actualQueryCost"] <= cost["throttleStatus"]["currentlyAvailable"] < 2000 - 30
