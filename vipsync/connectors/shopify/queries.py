"""The GraphQL documents the connector sends, as data (buildable and testable offline).

Field names follow Shopify's Admin GraphQL reference (``Order.processedAt``,
``displayFinancialStatus``, ``lineItems { sku quantity currentQuantity }``,
``shippingAddress { countryCodeV2 zip }``, ``refunds { refundLineItems }``...).

Query cost decides the page size: the largest page whose requested cost stays under the
single-query maximum of 1,000 points. The rules are Shopify's documented calculated query
cost (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits and
https://shopify.dev/docs/api/usage/limits): scalars and enums 0, an object 1 (``pageInfo``
included), a connection 2 plus ``first`` times the cost of one node; a query whose
requested cost is above 1,000 is refused; the standard plan restores 100 points/s.

Every point an order node asks for is paid ``first`` times, so the nested sizes are kept
to what most orders need (three lines) and the few orders that do not fit (``hasNextPage``
on their lines, or any refund) are read again whole with :data:`ORDER_FULL_QUERY`. A page
only asks whether an order has a refund (``refunds(first: 1) { id }``, 1 point): a refunds
list has no ``pageInfo``, so an order with one is read whole anyway, and its refunded lines
on the page would be paid for nothing. 35 orders a page (28 points a node); 31 when the
page carried one refund with one refunded line, 19 with five lines and two refunds.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = [
    "ACCESS_SCOPES_QUERY",
    "BULK_CURRENT_QUERY",
    "BULK_ORDERS_QUERY",
    "BULK_RUN_MUTATION",
    "COUNT_COST",
    "LINE_ITEMS_PER_ORDER",
    "MAX_PAGE_SIZE",
    "MAX_QUERY_COST",
    "ORDERS_COUNTED_PAGE_QUERY",
    "ORDERS_PAGE_QUERY",
    "ORDER_FULL_QUERY",
    "REFUNDS_PER_ORDER",
    "bulk_above",
    "order_full_cost",
    "order_node_cost",
    "orders_page_cost",
    "page_size_for_cost",
    "shopify_time",
    "updated_between",
]

LINE_ITEMS_PER_ORDER = 3  # an order of more lines is read again whole
REFUNDS_PER_ORDER = 1  # refunds is a list (no pageInfo): an order with any is read again whole
MAX_QUERY_COST = 1000  # Shopify refuses a single query whose requested cost is above this
MAX_PAGE_SIZE = 250

_ORDER_SCALARS = """
      id
      legacyResourceId
      name
      processedAt
      createdAt
      updatedAt
      cancelledAt
      test
      displayFinancialStatus
      displayFulfillmentStatus
      returnStatus
      email
      currencyCode
      discountCodes
      customAttributes { key value }
      tags
      totalPriceSet { shopMoney { amount currencyCode } }
      shippingAddress { countryCodeV2 zip }
      billingAddress { countryCodeV2 }"""

_LINE_FIELDS = (
    "id sku title quantity currentQuantity originalUnitPriceSet { shopMoney { amount } }"
    " discountAllocations { allocatedAmountSet { shopMoney { amount } } }"
)

_ORDERS_PAGE_TEMPLATE = f"""
query VipsyncOrders($first: Int!, $after: String, $query: String!) {{
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{{_ORDER_SCALARS}
      lineItems(first: {LINE_ITEMS_PER_ORDER}) {{ pageInfo {{ hasNextPage }} nodes {{ {_LINE_FIELDS} }} }}
      refunds(first: {REFUNDS_PER_ORDER}) {{ id }}
    }}
  }}__COUNT__
}}
"""
ORDERS_PAGE_QUERY = _ORDERS_PAGE_TEMPLATE.replace("__COUNT__", "")
# The first page of a sync also counts the orders of its window (``ordersCount``, a
# ``Count`` object: 1 point), in the same request: the sync then knows whether the rest of
# the window is better read by a bulk operation (:func:`bulk_above`).
ORDERS_COUNTED_PAGE_QUERY = _ORDERS_PAGE_TEMPLATE.replace(
    "__COUNT__", "\n  ordersCount(query: $query) { count precision }"
)
COUNT_COST = 1

# One order with room for many lines and refunds: asked for the rare order whose lines or
# refunds did not fit in its page (requested cost stays under the maximum).
FULL_LINE_ITEMS = 90  # with each line's discount allocation, 100 lines would pass the maximum
FULL_REFUNDS = 10
FULL_REFUND_LINES = 20
ORDER_FULL_QUERY = f"""
query VipsyncOrder($id: ID!) {{
  order(id: $id) {{{_ORDER_SCALARS}
    lineItems(first: {FULL_LINE_ITEMS}) {{ pageInfo {{ hasNextPage }} nodes {{ {_LINE_FIELDS} }} }}
    refunds(first: {FULL_REFUNDS}) {{
      id
      refundLineItems(first: {FULL_REFUND_LINES}) {{
        pageInfo {{ hasNextPage }} nodes {{ quantity lineItem {{ id }} }}
      }}
    }}
  }}
}}
"""

# The inner query of a bulk operation: no page sizes (bulk operations ignore them) and
# connections written with edges/node, as Shopify's bulk-operation guide shows. Within the
# documented restrictions (checked by :mod:`vipsync.devtools.bulk_rules`): two connections,
# one level of nesting, none inside a list field. ``refunds`` is a list field, so its
# ``refundLineItems`` connection cannot be selected here: the bulk result names each
# order's refunds, and the backfill reads the orders that have any again with
# :data:`ORDER_FULL_QUERY` for their refunded quantities.
BULK_ORDERS_QUERY_TEMPLATE = """
{{
  orders(query: {search}, sortKey: UPDATED_AT) {{
    edges {{
      node {{{scalars}
        refunds {{ id }}
        lineItems {{ edges {{ node {{ __typename {line} }} }} }}
      }}
    }}
  }}
}}
"""


def BULK_ORDERS_QUERY(search: str) -> str:
    """The bulk query for the orders matching ``search`` (Shopify's search syntax)."""
    import json

    return BULK_ORDERS_QUERY_TEMPLATE.format(
        search=json.dumps(search), scalars=_ORDER_SCALARS, line=_LINE_FIELDS
    )


BULK_RUN_MUTATION = """
mutation VipsyncBulkRun($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""

BULK_CURRENT_QUERY = """
query VipsyncBulkStatus {
  currentBulkOperation(type: QUERY) {
    id status errorCode createdAt completedAt objectCount fileSize url partialDataUrl query
  }
}
"""

ACCESS_SCOPES_QUERY = """
query VipsyncScopes {
  currentAppInstallation { accessScopes { handle } }
}
"""


def order_node_cost(
    *,
    line_items: int = LINE_ITEMS_PER_ORDER,
    refunds: int = REFUNDS_PER_ORDER,
    refund_lines: int | None = None,
) -> int:
    """Requested cost of one order node of :data:`ORDERS_PAGE_QUERY` (``refund_lines``:
    each refund with that many refunded lines; None: the refund's id alone)."""
    # the order, totalPriceSet.shopMoney, the two addresses, customAttributes (a list field:
    # counted as one element)
    objects = 1 + 2 + 2 + 1
    # the line item, originalUnitPriceSet.shopMoney, one discount allocation with its
    # allocatedAmountSet.shopMoney (a list field: counted as one element)
    line = 1 + 2 + 3
    line_conn = 2 + 1 + line_items * line  # the connection, its pageInfo, the lines
    refund = 1  # a refund; with its refund lines (a connection with pageInfo) and their line item
    if refund_lines is not None:
        refund += 2 + 1 + refund_lines * (1 + 1)
    return objects + line_conn + refunds * refund


def order_full_cost() -> int:
    """Requested cost of :data:`ORDER_FULL_QUERY`."""
    return order_node_cost(line_items=FULL_LINE_ITEMS, refunds=FULL_REFUNDS, refund_lines=FULL_REFUND_LINES)


_PAGE_OVERHEAD = 2 + 1  # the orders connection and its pageInfo object


def orders_page_cost(first: int, *, counted: bool = False) -> int:
    """Requested cost of one page of ``first`` orders (``counted``: with the window's
    ``ordersCount``, :data:`ORDERS_COUNTED_PAGE_QUERY`)."""
    return _PAGE_OVERHEAD + first * order_node_cost() + (COUNT_COST if counted else 0)


def page_size_for_cost(max_cost: int = MAX_QUERY_COST) -> int:
    """The largest page whose requested cost stays within ``max_cost``, the window's count
    included (every page has the same size)."""
    return max(1, min(MAX_PAGE_SIZE, (max_cost - _PAGE_OVERHEAD - COUNT_COST) // order_node_cost()))


def bulk_above(bucket_maximum: float | None, first: int) -> int:
    """Orders beyond which the rest of an incremental window is read by a bulk operation:
    as many as the pages a full bucket pays for at once (``maximumAvailable`` of the last
    response; two pages when it is unknown). Past that, pages would wait for the bucket to
    refill at the plan's restore rate (100 points/s on the standard plan), while a bulk
    operation costs about 10 points whatever its size and is what Shopify recommends for
    large reads."""
    page_cost = orders_page_cost(first)
    pages = int(bucket_maximum // page_cost) if bucket_maximum else 2
    return max(1, pages) * first


def shopify_time(value: datetime) -> str:
    """A timestamp as Shopify's search syntax wants it (UTC, seconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def updated_between(since: datetime | None, until: datetime | None) -> str:
    """The search filter of an incremental page: ``updated_at`` within [since, until]."""
    parts = []
    if since is not None:
        parts.append(f"updated_at:>='{shopify_time(since)}'")
    if until is not None:
        parts.append(f"updated_at:<='{shopify_time(until)}'")
    return " AND ".join(parts)
