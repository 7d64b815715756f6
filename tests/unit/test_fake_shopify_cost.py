"""The fake Admin API charges each query the connector sends what Shopify's documented
calculated query cost gives, and what the connector declares to its bucket."""

from __future__ import annotations

from vipsync.connectors.shopify.queries import (
    ORDER_FULL_QUERY,
    ORDERS_COUNTED_PAGE_QUERY,
    ORDERS_PAGE_QUERY,
    order_full_cost,
    orders_page_cost,
    page_size_for_cost,
    updated_between,
)
from vipsync.devtools.fake_shopify import FakeShopify


def _cost(fake: FakeShopify, query: str, variables: dict) -> tuple[int, dict]:
    status, _, body = fake.handle_graphql({"query": query, "variables": variables})
    assert status == 200 and "errors" not in body, body
    return body["extensions"]["cost"]["requestedQueryCost"], body["data"]


def test_a_page_costs_what_the_connector_declares():
    fake = FakeShopify(orders=40, bucket_size=1e6)
    first = page_size_for_cost()
    variables = {"first": first, "after": None, "query": ""}
    requested, data = _cost(fake, ORDERS_PAGE_QUERY, variables)
    assert requested == orders_page_cost(first) == 3 + first * 32
    assert "ordersCount" not in data


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
