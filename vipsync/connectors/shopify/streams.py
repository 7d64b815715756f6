"""The incremental orders stream: ``orders`` filtered on ``updated_at``, oldest first,
cursor pagination with loop detection, every page validated before it is handed on.

The caller commits each page and only then moves its bookmark (see
:func:`vipsync.workers.shopify_jobs.sync_shop`); this module never touches the store.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.records import OrderRecord, Rejected
from vipsync.connectors.shopify.client import ShopifyClient
from vipsync.connectors.shopify.exchanges import ORDER_RETURNS_QUERY, order_returns_cost, returns_unread
from vipsync.connectors.shopify.files import map_any_order
from vipsync.connectors.shopify.mapping import connection_nodes, flatten_graphql_order, parse_timestamp
from vipsync.connectors.shopify.queries import (
    ORDER_FULL_QUERY,
    ORDERS_COUNTED_PAGE_QUERY,
    ORDERS_PAGE_QUERY,
    REFUNDS_PER_ORDER,
    order_full_cost,
    orders_page_cost,
    page_size_for_cost,
    updated_between,
)
from vipsync.errors import PermanentSourceError, RecordError, TransientSourceError

__all__ = [
    "OrdersPage",
    "Paginator",
    "fetch_order",
    "find_order_by_name",
    "iter_order_pages",
    "needs_full_fetch",
    "valid_orders_page",
    "window_count",
]

log = logging.getLogger(__name__)


@dataclass
class OrdersPage:
    """One validated page: its records, its rejects, and the newest ``updatedAt`` in it;
    the first page of a counted stream also says how many orders the window holds
    (``window_count``, None when not asked or not answered)."""

    number: int
    records: list[OrderRecord] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    max_updated_at: datetime | None = None
    window_count: int | None = None


class Paginator:
    """Cursor pagination that refuses to loop: a repeated or missing ``endCursor`` while
    ``hasNextPage`` is true stops the stream instead of reading the same pages forever."""

    def __init__(self) -> None:
        self.cursor: str | None = None
        self.done = False
        self._seen: set[str] = set()

    def advance(self, page_info: dict) -> None:
        if page_info.get("hasNextPage"):
            end = page_info.get("endCursor")
            if not end:
                raise PermanentSourceError("pagination: hasNextPage without an endCursor")
            if end in self._seen:
                raise PermanentSourceError(
                    "pagination loop: the API returned an endCursor it had already given"
                )
            self._seen.add(end)
            self.cursor = end
        else:
            self.done = True


def valid_orders_page(doc: dict) -> tuple[list[dict], dict] | None:
    """(nodes, pageInfo) of a complete, well-formed page; None otherwise."""
    orders = ((doc.get("data") or {}).get("orders")) if isinstance(doc.get("data"), dict) else None
    if not isinstance(orders, dict):
        return None
    nodes, info = orders.get("nodes"), orders.get("pageInfo")
    if (
        not isinstance(nodes, list)
        or not isinstance(info, dict)
        or not isinstance(info.get("hasNextPage"), bool)
    ):
        return None
    if any(not isinstance(n, dict) or not n.get("id") or not n.get("updatedAt") for n in nodes):
        return None
    return nodes, info


def needs_full_fetch(node: dict) -> bool:
    """True when an order's lines or refunds did not all fit in its page."""
    items = node.get("lineItems")
    if isinstance(items, dict) and (items.get("pageInfo") or {}).get("hasNextPage"):
        return True
    refunds = node.get("refunds")
    if isinstance(refunds, list):
        if len(refunds) >= REFUNDS_PER_ORDER:
            return True
        for refund in refunds:
            rli = (refund or {}).get("refundLineItems")
            if isinstance(rli, dict) and (rli.get("pageInfo") or {}).get("hasNextPage"):
                return True
    return False


def fetch_order(client: ShopifyClient, order_gid: str) -> dict | None:
    """One order with room for many lines and refunds, and its returns when it has any
    (None when Shopify has no such order)."""
    doc = client.execute(ORDER_FULL_QUERY, {"id": order_gid}, cost=order_full_cost())
    node = (doc.get("data") or {}).get("order")
    return with_returns(client, flatten_graphql_order(node)) if isinstance(node, dict) else None


def with_returns(client: ShopifyClient, node: dict) -> dict:
    """The order with its ``returns`` (their returned and exchange items) when its
    ``returnStatus`` says it has some and it does not carry them: one more small query,
    for the few orders with a return."""
    if not returns_unread(node) or not node.get("id"):
        return node
    doc = client.execute(ORDER_RETURNS_QUERY, {"id": node["id"]}, cost=order_returns_cost())
    found = (doc.get("data") or {}).get("order")
    returns = connection_nodes(found.get("returns")) if isinstance(found, dict) else []
    return dict(node, returns=returns)


def window_count(doc: dict) -> int | None:
    """``data.ordersCount.count`` of a counted page; None when it is missing or not a count."""
    data = doc.get("data")
    counted = data.get("ordersCount") if isinstance(data, dict) else None
    value = counted.get("count") if isinstance(counted, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _fetch_page(
    client: ShopifyClient, variables: dict, *, cost: int, attempts: int, query: str = ORDERS_PAGE_QUERY
) -> tuple[list[dict], dict, dict]:
    for _ in range(attempts):
        doc = client.execute(query, variables, cost=cost)
        page = valid_orders_page(doc)
        if page is not None:
            return page[0], page[1], doc
        log.warning("shopify page incomplete; asked again", extra={"store": client.shop.key})
    raise TransientSourceError(
        f"shop {client.shop.key}: the orders page came back incomplete {attempts} times"
    )


def iter_order_pages(
    client: ShopifyClient,
    shop: ShopifyShop,
    *,
    since: datetime | None,
    until: datetime | None,
    page_size: int | None = None,
    invalid_page_attempts: int = 3,
    counted: bool = False,
) -> Generator[OrdersPage, None, None]:
    """Yield the pages of orders updated in [since, until], oldest first. ``counted``: the
    first page also asks how many orders the window holds (:attr:`OrdersPage.window_count`)."""
    first = page_size or page_size_for_cost()
    search = updated_between(since, until)
    paginator = Paginator()
    number = 0
    while not paginator.done:
        variables = {"first": first, "after": paginator.cursor, "query": search}
        count_it = counted and number == 0
        nodes, info, doc = _fetch_page(
            client,
            variables,
            cost=orders_page_cost(first, counted=count_it),
            attempts=invalid_page_attempts,
            query=ORDERS_COUNTED_PAGE_QUERY if count_it else ORDERS_PAGE_QUERY,
        )
        number += 1
        page = OrdersPage(number=number, window_count=window_count(doc) if count_it else None)
        for node in nodes:
            if needs_full_fetch(node):
                node = fetch_order(client, node["id"]) or node
            node = with_returns(client, flatten_graphql_order(node))
            item = map_any_order(node, shop)
            if isinstance(item, Rejected):
                page.rejected.append(item)
            else:
                page.records.append(item)
            try:
                ts = parse_timestamp(node.get("updatedAt"), record_id="?", field="updatedAt")
            except RecordError:
                ts = None
            if ts is not None and (page.max_updated_at is None or ts > page.max_updated_at):
                page.max_updated_at = ts
        yield page
        paginator.advance(info)


def find_order_by_name(client: ShopifyClient, shop: ShopifyShop, name: str) -> OrderRecord | Rejected | None:
    """The order named ``name`` (``#1001``), fetched on demand (for a proof of purchase of
    an order not in the store yet); None when the shop has no such order."""
    wanted = name.strip()
    if not wanted.startswith("#"):
        wanted = "#" + wanted
    search = f"name:'{wanted}'"
    nodes, _, _ = _fetch_page(
        client, {"first": 1, "after": None, "query": search}, cost=orders_page_cost(1), attempts=3
    )
    for node in nodes:
        if node.get("name") == wanted:
            if needs_full_fetch(node):
                node = fetch_order(client, node["id"]) or node
            return map_any_order(with_returns(client, flatten_graphql_order(node)), shop)
    return None
