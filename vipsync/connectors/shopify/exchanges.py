"""Shopify exchanges and order edits as facts after the sale (POLICY.md, "Shopify exchanges
and edits").

A unit added by an exchange or an edit that returns another unit of the order takes over
that unit's purchase date, benefit state and claim; with nothing returned it is a new
purchase, dated by the exchange or edit. The link is kept as an ``exchange`` fact: units of
the added line ``line_key`` in place of as many units of ``returned_line_key`` (None: nothing
returned), on ``posted_at``. Two shapes carry it:

* the ``orders/edited`` webhook (``order_edit`` with ``created_at``, ``order_id`` and
  ``line_items.additions`` / ``line_items.removals``, each ``{id, delta}``): the added units,
  in payload order, take the place of the removed ones in payload order; additions past
  the removals are new purchases. Removals alone lower quantities, which the order itself
  says (``current_quantity``).
* an order's returns in the GraphQL Admin API (``Order.returns``: each ``Return`` with
  ``createdAt``, its ``returnLineItems`` (``quantity``, ``fulfillmentLineItem.lineItem.id``)
  and its ``exchangeLineItems`` (``quantity``, the order ``lineItems`` added for it; the
  deprecated single ``lineItem`` read too)). A return without exchange items is a plain
  return: the refund decides.

The order pages ask each order's ``returnStatus`` (a scalar, free of query cost); an order
whose status is not ``NO_RETURN`` has its returns read with :data:`ORDER_RETURNS_QUERY`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.limits import DEFAULT_MAX_LINE_QUANTITY, check_fact
from vipsync.connectors.records import OrderFact, Rejected
from vipsync.errors import RecordError

__all__ = [
    "ORDER_RETURNS_QUERY",
    "RETURNS_PER_ORDER",
    "RETURN_LINES_PER_RETURN",
    "edit_facts",
    "order_returns_cost",
    "return_facts",
    "returns_unread",
]

RETURNS_PER_ORDER = 10
RETURN_LINES_PER_RETURN = 10

# One order's returns with their returned and exchange items: asked only for an order whose
# returnStatus is not NO_RETURN.
ORDER_RETURNS_QUERY = f"""
query VipsyncOrderReturns($id: ID!) {{
  order(id: $id) {{
    id
    returns(first: {RETURNS_PER_ORDER}) {{
      nodes {{
        id
        createdAt
        returnLineItems(first: {RETURN_LINES_PER_RETURN}) {{
          nodes {{ quantity ... on ReturnLineItem {{ fulfillmentLineItem {{ lineItem {{ id }} }} }} }}
        }}
        exchangeLineItems(first: {RETURN_LINES_PER_RETURN}) {{ nodes {{ quantity lineItems {{ id }} }} }}
      }}
    }}
  }}
}}
"""


def order_returns_cost() -> int:
    """Requested cost of :data:`ORDER_RETURNS_QUERY` (Shopify's calculated query cost: an
    object 1, a connection 2 plus ``first`` times a node, a list field one element)."""
    return_line = 1 + 1 + 1  # the return line item, its fulfillment line item, its line item
    exchange_line = 1 + 1  # the exchange line item, one of its line items
    one_return = (
        1 + (2 + RETURN_LINES_PER_RETURN * return_line) + (2 + RETURN_LINES_PER_RETURN * exchange_line)
    )
    return 1 + 2 + RETURNS_PER_ORDER * one_return


def returns_unread(node: Any) -> bool:
    """True when a GraphQL order says it has returns (``returnStatus`` other than
    ``NO_RETURN``) and does not carry them."""
    if not isinstance(node, dict):
        return False
    status = node.get("returnStatus")
    return isinstance(status, str) and status not in ("", "NO_RETURN") and "returns" not in node


def _gid_tail(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool | dict | list):
        return None
    text = str(value)
    if text.startswith("gid://"):
        text = text.rsplit("/", 1)[-1].split("?", 1)[0]
    return text or None


def _count(value: Any, *, record_id: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError("not a non-negative integer", record_id=record_id, field=field)
    if value > DEFAULT_MAX_LINE_QUANTITY:
        raise RecordError(
            f"quantity outside 0..{DEFAULT_MAX_LINE_QUANTITY}", record_id=record_id, field=field
        )
    return value


def _when(value: Any, *, record_id: str, field: str) -> datetime:
    from vipsync.connectors.shopify.mapping import parse_timestamp

    ts = parse_timestamp(value, record_id=record_id, field=field)
    if ts is None:
        raise RecordError("missing", record_id=record_id, field=field)
    return ts


# (line id, units), in payload order
_Runs = list[tuple[str, int]]


def _pairs(added: _Runs, returned: _Runs) -> dict[tuple[str, str | None], int]:
    """Unit by unit, in order: the i-th added unit takes the place of the i-th returned one;
    added units past the returned ones returned nothing. Counted by runs, never unit by unit."""
    out: dict[tuple[str, str | None], int] = {}
    lines = [line for line, n in returned if n > 0]
    counts = [n for _, n in returned if n > 0]
    at = 0
    for line, n in added:
        while n > 0:
            key: tuple[str, str | None]
            if at < len(lines):
                taken = min(n, counts[at])
                key = (line, lines[at])
                counts[at] -= taken
                if counts[at] == 0:
                    at += 1
            else:
                taken, key = n, (line, None)
            out[key] = out.get(key, 0) + taken
            n -= taken
    return out


def _facts(
    shop: ShopifyShop,
    order_id: str,
    origin: str,
    posted: datetime,
    pairs: dict[tuple[str, str | None], int],
    raw: dict[str, Any],
) -> list[OrderFact]:
    return [
        check_fact(
            OrderFact(
                source="shopify",
                store_key=shop.key,
                order_external_id=order_id,
                kind="exchange",
                fact_key=f"{origin}:{added}:{returned or '-'}",
                posted_at=posted,
                line_key=added,
                returned_line_key=returned,
                quantity=qty,
                raw=raw,
            )
        )
        for (added, returned), qty in sorted(pairs.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    ]


def _units(items: Any, *, record_id: str, field: str) -> _Runs:
    """``[{id, delta}]`` as (line id, units), in payload order."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise RecordError("not a list", record_id=record_id, field=field)
    units: _Runs = []
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise RecordError("not an object", record_id=record_id, field=where)
        line = _gid_tail(item.get("id"))
        if line is None:
            raise RecordError("missing", record_id=record_id, field=f"{where}.id")
        units.append((line, _count(item.get("delta"), record_id=record_id, field=f"{where}.delta")))
    return units


def edit_facts(payload: Any, shop: ShopifyShop) -> list[OrderFact | Rejected]:
    """The facts of one ``orders/edited`` delivery (none when it adds nothing); a malformed
    one is a Rejected naming the field."""
    edit = payload.get("order_edit") if isinstance(payload, dict) else None
    record_id = "orders/edited"
    try:
        if not isinstance(edit, dict):
            raise RecordError("missing", record_id=record_id, field="order_edit")
        order_id = _gid_tail(edit.get("order_id"))
        if order_id is None:
            raise RecordError("missing", record_id=record_id, field="order_edit.order_id")
        record_id = order_id
        edit_id = _gid_tail(edit.get("id"))
        if edit_id is None:
            raise RecordError("missing", record_id=record_id, field="order_edit.id")
        lines = edit.get("line_items") or {}
        if not isinstance(lines, dict):
            raise RecordError("not an object", record_id=record_id, field="order_edit.line_items")
        added = _units(lines.get("additions"), record_id=record_id, field="order_edit.line_items.additions")
        removed = _units(lines.get("removals"), record_id=record_id, field="order_edit.line_items.removals")
        if not any(n for _, n in added):
            return []
        posted = _when(edit.get("created_at"), record_id=record_id, field="order_edit.created_at")
        raw = {
            "topic": "orders/edited",
            "order_edit": {
                "id": edit.get("id"),
                "order_id": edit.get("order_id"),
                "created_at": edit.get("created_at"),
                "line_items": {"additions": lines.get("additions"), "removals": lines.get("removals")},
            },
        }
        return list(_facts(shop, order_id, f"edit:{edit_id}", posted, _pairs(added, removed), raw))
    except RecordError as exc:
        return [Rejected(exc.record_id or record_id, exc.field, exc.reason, payload)]


def _nodes(value: Any) -> list[dict]:
    from vipsync.connectors.shopify.mapping import connection_nodes

    return connection_nodes(value)


def return_facts(order: dict, shop: ShopifyShop, record_id: str) -> tuple[OrderFact, ...]:
    """The exchange facts of a GraphQL order's ``returns`` (none when it carries none).
    Raises RecordError naming the field."""
    out: list[OrderFact] = []
    for r_index, ret in enumerate(_nodes(order.get("returns"))):
        where = f"returns[{r_index}]"
        return_id = _gid_tail(ret.get("id"))
        if return_id is None:
            raise RecordError("missing", record_id=record_id, field=f"{where}.id")
        returned: _Runs = []
        for i, rli in enumerate(_nodes(ret.get("returnLineItems"))):
            fli = rli.get("fulfillmentLineItem")
            line = _gid_tail(((fli or {}).get("lineItem") or {}).get("id")) if isinstance(fli, dict) else None
            qty = _count(
                rli.get("quantity"), record_id=record_id, field=f"{where}.returnLineItems[{i}].quantity"
            )
            if line is not None:
                returned.append((line, qty))
        added: _Runs = []
        for i, eli in enumerate(_nodes(ret.get("exchangeLineItems"))):
            field = f"{where}.exchangeLineItems[{i}]"
            qty = _count(eli.get("quantity"), record_id=record_id, field=f"{field}.quantity")
            items = eli.get("lineItems")
            if items is None and isinstance(eli.get("lineItem"), dict):
                items = [eli["lineItem"]]
            ids = [i for i in (_gid_tail(li.get("id")) for li in _nodes(items)) if i is not None]
            if not ids:
                continue  # not added to the order yet
            # One line item per exchange item as a rule; with several, the units go to
            # them in order, one each, and the last one takes the rest.
            ones = min(qty, len(ids)) - 1
            added += [(line, 1) for line in ids[: max(ones, 0)]]
            if qty > 0:
                added.append((ids[max(ones, 0)], qty - max(ones, 0)))
        if not any(n for _, n in added):
            continue
        posted = _when(ret.get("createdAt"), record_id=record_id, field=f"{where}.createdAt")
        raw = {"return": {"id": ret.get("id"), "createdAt": ret.get("createdAt")}}
        out += _facts(shop, record_id, f"return:{return_id}", posted, _pairs(added, returned), raw)
    return tuple(out)
