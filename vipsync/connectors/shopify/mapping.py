"""Pure mappers from Shopify's order shapes to :class:`OrderRecord`.

Two shapes arrive:

* the REST / webhook shape (``processed_at``, ``line_items``, ``refunds[].refund_line_items``),
  from webhooks and exported files;
* the GraphQL Admin API shape (``processedAt``, ``lineItems``, ``refunds { refundLineItems }``),
  from the incremental sync and from bulk-operation results (where ``lineItems`` arrive as
  child lines that :mod:`vipsync.connectors.shopify.bulk_jsonl` has already joined).

Rules (POLICY.md): the purchase time is ``processed_at`` (``created_at`` only when it is
absent); the purchase date is its calendar date in the shop's zone; the country is the
shipping address's, else the billing address's, else the shop's own; ``pending``,
``authorized`` and ``partially_paid`` payments are pending (not captured in full); refunds
with line quantities take units, money-only refunds none. A line's discount is the sum of
its discount allocations (REST ``discount_allocations``, GraphQL ``discountAllocations``):
line-level discounts and its share of order-level discount applications (codes, automatic
and manual discounts), as Shopify allocated them; ``total_discount``/``totalDiscountSet``
only when an order carries no allocations. An order carrying the shop's configured
replacement tag is a free replacement (POLICY.md ``replacement_order``); one with a
non-zero total is still one, flagged for ops. Both shapes give the same line keys (the numeric line item id), so an order
seen first by webhook and later through the API keeps its lines. A GraphQL order's
``returns`` with exchange items give ``exchange`` facts
(:mod:`vipsync.connectors.shopify.exchanges`), kept with the order.

A line's ``quantity`` here is the number of units the order still has after order edits:
``currentQuantity`` (quantity minus removals, refunds included) plus the line's refunded
quantity, never more than the ordered quantity. Refunded units are kept and marked; units an
edit took away are gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.limits import MAX_YEAR, MIN_YEAR
from vipsync.connectors.minimize import EMAIL_DIGEST, stored_email_digest
from vipsync.connectors.records import (
    OrderLine,
    OrderRecord,
    email_digest,
    normalize_country,
)
from vipsync.connectors.shopify.exchanges import return_facts
from vipsync.errors import RecordError

__all__ = [
    "PENDING_FINANCIAL_STATUSES",
    "connection_nodes",
    "flatten_graphql_order",
    "legacy_id",
    "map_graphql_order",
    "map_rest_order",
    "parse_timestamp",
]

PENDING_FINANCIAL_STATUSES = frozenset({"pending", "authorized", "partially_paid"})


# ----------------------------------------------------------------------------- helpers
def parse_timestamp(value: Any, *, record_id: str, field: str) -> datetime | None:
    """An ISO 8601 timestamp with an offset; None when absent; RecordError otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError("not a timestamp string", record_id=record_id, field=field)
    try:
        ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RecordError("not an ISO 8601 timestamp", record_id=record_id, field=field) from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise RecordError("timestamp without a UTC offset", record_id=record_id, field=field)
    if not MIN_YEAR <= ts.year <= MAX_YEAR:
        raise RecordError(f"year outside {MIN_YEAR}..{MAX_YEAR}", record_id=record_id, field=field)
    return ts


def _decimal(value: Any, *, record_id: str, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise RecordError("not a decimal amount", record_id=record_id, field=field) from None
    if not result.is_finite():
        raise RecordError("not a finite amount", record_id=record_id, field=field)
    return result


def _int(value: Any, *, record_id: str, field: str, default: int | None = None) -> int:
    if value is None:
        if default is not None:
            return default
        raise RecordError("missing", record_id=record_id, field=field)
    if isinstance(value, bool):
        raise RecordError("not an integer", record_id=record_id, field=field)
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise RecordError("not an integer", record_id=record_id, field=field)
        value = int(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise RecordError("not an integer", record_id=record_id, field=field)
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise RecordError("not an integer", record_id=record_id, field=field) from None
    if not isinstance(value, int) or value < 0:
        raise RecordError("not a non-negative integer", record_id=record_id, field=field)
    return value


def legacy_id(value: Any) -> str | None:
    """``gid://shopify/Order/123`` -> ``123``; a plain id -> its text; None stays None."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.startswith("gid://"):
        text = text.rsplit("/", 1)[-1].split("?", 1)[0]
    return text


def connection_nodes(value: Any) -> list[dict]:
    """The objects of a GraphQL connection written as ``{nodes}``, ``{edges: [{node}]}`` or a
    plain list (a joined bulk result)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    if isinstance(value, dict):
        if "nodes" in value and isinstance(value["nodes"], list):
            return [v for v in value["nodes"] if isinstance(v, dict)]
        if "edges" in value and isinstance(value["edges"], list):
            return [
                e["node"] for e in value["edges"] if isinstance(e, dict) and isinstance(e.get("node"), dict)
            ]
    return []


def flatten_graphql_order(node: dict) -> dict:
    """The order with its connections as plain lists (``lineItems``, each refund's
    ``refundLineItems``), the shape a joined bulk result has: the same order read from a
    page or from a bulk result then keeps the same raw payload (and content digest)."""
    out = dict(node)
    if "lineItems" in out:
        out["lineItems"] = connection_nodes(out["lineItems"])
    refunds = out.get("refunds")
    if isinstance(refunds, list):
        out["refunds"] = [
            dict(r, refundLineItems=connection_nodes(r.get("refundLineItems"))) if isinstance(r, dict) else r
            for r in refunds
        ]
    return out


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _purchase_times(
    processed: datetime | None,
    created: datetime | None,
    shop: ShopifyShop,
    record_id: str,
    field: str = "processed_at",
):
    purchased = processed or created
    if purchased is None:
        raise RecordError(
            "neither the processed nor the created time is given", record_id=record_id, field=field
        )
    return purchased, purchased.astimezone(shop.tz).date()


def _country(ship: dict, bill: dict, keys: tuple[str, ...], shop: ShopifyShop) -> tuple[str, str]:
    for source, address in (("shipping", ship), ("billing", bill)):
        for key in keys:
            code = normalize_country(address.get(key))
            if code:
                return code, source
    return shop.country, "store"


def _zip(address: dict) -> str | None:
    value = address.get("zip")
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _codes(items: Any, *, record_id: str, field: str) -> tuple[str, ...]:
    if not items:
        return ()
    if not isinstance(items, list):
        raise RecordError("not a list", record_id=record_id, field=field)
    out = []
    for i, item in enumerate(items):
        code = item.get("code") if isinstance(item, dict) else item
        if isinstance(code, dict | list):
            raise RecordError("not a discount code", record_id=record_id, field=f"{field}[{i}]")
        if code:
            out.append(str(code))
    return tuple(out)


def _trade_in_codes(order: dict, shape: _Shape, shop: ShopifyShop, record_id: str) -> tuple[str, ...]:
    """The values of the shop's trade-in attribute (``note_attributes`` / ``customAttributes``):
    the codes of trade-in quotes the website put on the order."""
    items = order.get(shape.attributes)
    if not isinstance(items, list):
        return ()  # other attributes are not ours to judge
    wanted = shop.trade_in_attribute.strip().lower()
    out = []
    for i, item in enumerate(items):
        name = item.get(shape.attribute_name) if isinstance(item, dict) else None
        if not isinstance(name, str) or name.strip().lower() != wanted:
            continue
        value = item.get("value")
        if not isinstance(value, str):
            raise RecordError("not a trade-in code", record_id=record_id, field=f"{shape.attributes}[{i}]")
        if value.strip():
            out.append(value.strip())
    return tuple(out)


def _unit_quantity(quantity: int, current: int | None, refunded: int) -> int:
    """Units the order still has after edits: current quantity plus refunded, capped."""
    if current is None:
        return quantity
    return min(quantity, current + refunded)


def _money(value: Any, *, record_id: str, field: str) -> Decimal | None:
    """``{shopMoney: {amount}}`` (a GraphQL MoneyBag) or a plain amount."""
    if isinstance(value, dict):
        value = _obj(value.get("shopMoney")).get("amount")
    return _decimal(value, record_id=record_id, field=field)


@dataclass(frozen=True)
class _Shape:
    """The field names of one order shape; the mapping logic is shared."""

    ids: tuple[str, ...]
    processed: str
    created: str
    updated: str
    cancelled: str
    financial: str
    fulfillment: str
    line_items: str
    current_quantity: str
    price: str
    discount: str
    allocations: str
    allocation_amount: tuple[str, str, str]
    tags: str
    refund_lines: str
    country_keys: tuple[str, ...]
    shipping: str
    billing: str
    discount_codes: str
    attributes: str
    attribute_name: str
    currency: str
    total: str
    raw_kind: str


REST = _Shape(
    ids=("id", "admin_graphql_api_id"),
    processed="processed_at",
    created="created_at",
    updated="updated_at",
    cancelled="cancelled_at",
    financial="financial_status",
    fulfillment="fulfillment_status",
    line_items="line_items",
    current_quantity="current_quantity",
    price="price",
    discount="total_discount",
    allocations="discount_allocations",
    allocation_amount=("amount_set", "shop_money", "amount"),
    tags="tags",
    refund_lines="refund_line_items",
    country_keys=("country_code",),
    shipping="shipping_address",
    billing="billing_address",
    discount_codes="discount_codes",
    attributes="note_attributes",
    attribute_name="name",
    currency="currency",
    total="total_price",
    raw_kind="order",
)
GRAPHQL = _Shape(
    ids=("legacyResourceId", "id"),
    processed="processedAt",
    created="createdAt",
    updated="updatedAt",
    cancelled="cancelledAt",
    financial="displayFinancialStatus",
    fulfillment="displayFulfillmentStatus",
    line_items="lineItems",
    current_quantity="currentQuantity",
    price="originalUnitPriceSet",
    discount="totalDiscountSet",
    allocations="discountAllocations",
    allocation_amount=("allocatedAmountSet", "shopMoney", "amount"),
    tags="tags",
    refund_lines="refundLineItems",
    country_keys=("countryCodeV2", "countryCode"),
    shipping="shippingAddress",
    billing="billingAddress",
    discount_codes="discountCodes",
    attributes="customAttributes",
    attribute_name="key",
    currency="currencyCode",
    total="totalPriceSet",
    raw_kind="graphql_order",
)


def _refund_line_id(rli: dict) -> str | None:
    return (
        legacy_id(rli.get("line_item_id"))
        or legacy_id(_obj(rli.get("line_item")).get("id"))
        or legacy_id(_obj(rli.get("lineItem")).get("id"))
    )


def _refunded(order: dict, shape: _Shape, record_id: str) -> dict[str, int]:
    """Refunded quantity per line id (refunds with line quantities only)."""
    refunds = order.get("refunds") or []
    if isinstance(refunds, dict):
        refunds = connection_nodes(refunds)
    if not isinstance(refunds, list):
        raise RecordError("not a list", record_id=record_id, field="refunds")
    out: dict[str, int] = {}
    for r_index, refund in enumerate(refunds):
        for i, rli in enumerate(connection_nodes(_obj(refund).get(shape.refund_lines))):
            qty = _int(
                rli.get("quantity"),
                record_id=record_id,
                field=f"refunds[{r_index}].{shape.refund_lines}[{i}].quantity",
                default=0,
            )
            line_id = _refund_line_id(rli)
            if line_id:
                out[line_id] = out.get(line_id, 0) + qty
    return out


def _line_discount(item: dict, shape: _Shape, record_id: str, where: str) -> Decimal | None:
    """The sum of the line's discount allocations (shop money); the line's own total
    discount field when it carries no allocation list."""
    allocations = item.get(shape.allocations)
    if allocations is None or allocations == []:
        return _money(item.get(shape.discount), record_id=record_id, field=f"{where}.{shape.discount}")
    if not isinstance(allocations, list):
        raise RecordError("not a list", record_id=record_id, field=f"{where}.{shape.allocations}")
    bag, currency, amount_key = shape.allocation_amount
    total = Decimal(0)
    for n, alloc in enumerate(allocations):
        field = f"{where}.{shape.allocations}[{n}]"
        if not isinstance(alloc, dict):
            raise RecordError("not an object", record_id=record_id, field=field)
        value = _obj(_obj(alloc.get(bag)).get(currency)).get(amount_key)
        if value is None:
            value = alloc.get("amount")  # REST's plain amount (shop currency)
            amount = _decimal(value, record_id=record_id, field=f"{field}.amount")
        else:
            amount = _decimal(value, record_id=record_id, field=f"{field}.{bag}.{currency}.{amount_key}")
        if amount is None:
            raise RecordError("missing", record_id=record_id, field=f"{field}.{bag}")
        total += amount
    return total


def _tags(value: Any) -> set[str]:
    """Order tags, lower case: REST writes one comma-separated string, GraphQL a list."""
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        return set()
    return {str(t).strip().lower() for t in items if str(t).strip()}


def _replacement(
    order: dict, shape: _Shape, shop: ShopifyShop, total: Decimal | None
) -> tuple[bool, tuple[str, ...]]:
    """(is a replacement, ops flags): the configured tag decides; a total above zero is
    still a replacement, flagged for ops."""
    tag = (shop.replacement_tag or "").strip().lower()
    if not tag or tag not in _tags(order.get(shape.tags)):
        return False, ()
    flags = ("replacement_with_total",) if total is not None and total != 0 else ()
    return True, flags


def _lines(order: dict, shape: _Shape, record_id: str) -> tuple[OrderLine, ...]:
    refunded = _refunded(order, shape, record_id)
    items = order.get(shape.line_items)
    if items is not None and not isinstance(items, (list, dict)):
        raise RecordError("not a list", record_id=record_id, field=shape.line_items)
    lines = []
    for i, item in enumerate(connection_nodes(items)):
        where = f"{shape.line_items}[{i}]"
        quantity = _int(item.get("quantity"), record_id=record_id, field=f"{where}.quantity")
        current = item.get(shape.current_quantity)
        current_q = (
            None
            if current is None
            else _int(current, record_id=record_id, field=f"{where}.{shape.current_quantity}")
        )
        sku = str(item.get("sku") or "").strip()
        line_key = legacy_id(item.get("id")) or f"{sku}#{i + 1}"
        refunded_q = min(refunded.get(line_key, 0), quantity)
        units = _unit_quantity(quantity, current_q, refunded_q)
        lines.append(
            OrderLine(
                line_key=line_key,
                sku=sku,
                title=str(item.get("title") or item.get("name") or ""),
                quantity=units,
                refunded_quantity=min(refunded_q, units),
                unit_price=_money(item.get(shape.price), record_id=record_id, field=f"{where}.{shape.price}"),
                discount=_line_discount(item, shape, record_id, where),
            )
        )
    return tuple(lines)


def _map(order: dict, shop: ShopifyShop, shape: _Shape) -> OrderRecord:
    if not isinstance(order, dict):
        raise RecordError("an order must be a JSON object", record_id="?", field=None)
    record_id = None
    for key in shape.ids:  # the first id given
        record_id = legacy_id(order.get(key))
        if record_id:
            break
    if not record_id:
        raise RecordError("missing order id", record_id=str(order.get("name") or "?"), field=shape.ids[0])

    parsed: dict[str, datetime | None] = {}

    def when(name: str) -> datetime | None:
        value = order.get(name)
        if type(value) is str and value in parsed:  # the same text under another name
            return parsed[value]
        ts = parse_timestamp(value, record_id=record_id, field=name)
        if type(value) is str:
            parsed[value] = ts
        return ts

    purchased, purchase_date = _purchase_times(
        when(shape.processed), when(shape.created), shop, record_id, shape.processed
    )
    updated = when(shape.updated) or purchased
    cancelled = when(shape.cancelled)
    lines = _lines(order, shape, record_id)
    ship, bill = _obj(order.get(shape.shipping)), _obj(order.get(shape.billing))
    country, country_source = _country(ship, bill, shape.country_keys, shop)
    financial = str(order[shape.financial]).lower() if order.get(shape.financial) else None
    email = order.get("email") or order.get("contact_email") or _obj(order.get("customer")).get("email")
    total = order.get(shape.total)
    currency = order.get(shape.currency) or _obj(_obj(total).get("shopMoney")).get("currencyCode") or None
    name = order.get("name") or (f"#{order['order_number']}" if order.get("order_number") else record_id)
    total_amount = _money(total, record_id=record_id, field=shape.total)
    is_replacement, flags = _replacement(order, shape, shop, total_amount)
    facts = return_facts(order, shop, record_id) if shape is GRAPHQL else ()
    return OrderRecord(
        source="shopify",
        store_key=shop.key,
        external_id=record_id,
        name=str(name),
        purchased_at=purchased,
        purchase_date=purchase_date,
        updated_at=updated,
        lines=lines,
        raw=order,
        raw_kind=shape.raw_kind,
        currency=currency,
        total_amount=total_amount,
        financial_status=financial,
        order_status=str(order[shape.fulfillment]).lower() if order.get(shape.fulfillment) else None,
        payment_pending=financial in PENDING_FINANCIAL_STATUSES,
        cancelled_at=cancelled,
        is_cancelled=cancelled is not None,
        is_test=bool(order.get("test")),
        **_email_fields(order, email),
        country=country,
        country_source=country_source,  # type: ignore[arg-type]
        shipping_postal_code=_zip(ship),
        discount_codes=_codes(
            order.get(shape.discount_codes), record_id=record_id, field=shape.discount_codes
        ),
        trade_in_codes=_trade_in_codes(order, shape, shop, record_id),
        is_replacement=is_replacement,
        ops_flags=flags,
        facts=facts,
    )


def _email_fields(order: dict, email: Any) -> dict[str, Any]:
    """The buyer's e-mail digest: from the address, or the keyed digest a minimized payload
    kept in its place (connectors/minimize.py)."""
    digest = email_digest(email if isinstance(email, str) else None)
    if digest is None and EMAIL_DIGEST in order:
        kept, key_id = stored_email_digest(order, None)
        if kept is not None and key_id is not None:
            return {"email_hash": kept, "email_key_id": key_id}
    return {"email_hash": digest}


def map_rest_order(payload: dict, shop: ShopifyShop) -> OrderRecord:
    """Map one order in the REST/webhook shape. Raises RecordError naming the field."""
    return _map(payload, shop, REST)


def map_graphql_order(node: dict, shop: ShopifyShop) -> OrderRecord:
    """Map one ``Order`` of the GraphQL Admin API. Raises RecordError naming the field."""
    return _map(node, shop, GRAPHQL)
