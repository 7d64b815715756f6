"""Pure mappers from Shopify's order shapes to :class:`OrderRecord`.

Two shapes arrive:

* the REST / webhook shape (``processed_at``, ``line_items``, ``refunds[].refund_line_items``),
  from webhooks and exported files;
* the GraphQL Admin API shape (``processedAt``, ``lineItems``, ``refunds { refundLineItems }``),
  from the incremental sync and from bulk-operation results (where ``lineItems`` arrive as
  child lines that :mod:`vipsync.connectors.shopify.bulk_jsonl` has already joined).

Rules (POLICY.md): the purchase time is ``processed_at`` (``created_at`` only when it is
absent); the purchase date is its calendar date in the shop's zone; the country is the
shipping address's, else the billing address's, else the shop's own; ``pending`` and
``authorized`` payments are pending; refunds with line quantities take units, money-only
refunds none. Both shapes give the same line keys (the numeric line item id), so an order
seen first by webhook and later through the API keeps its lines.

A line's ``quantity`` here is the number of units the order still has after order edits:
``currentQuantity`` (quantity minus removals, refunds included) plus the line's refunded
quantity, never more than the ordered quantity. Refunded units are kept and marked; units an
edit took away are gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.records import (
    OrderLine,
    OrderRecord,
    email_digest,
    normalize_country,
)
from vipsync.errors import RecordError

__all__ = [
    "map_rest_order",
    "map_graphql_order",
    "parse_timestamp",
    "legacy_id",
    "connection_nodes",
    "flatten_graphql_order",
    "PENDING_FINANCIAL_STATUSES",
]

PENDING_FINANCIAL_STATUSES = frozenset({"pending", "authorized"})


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
            return [e["node"] for e in value["edges"] if isinstance(e, dict) and isinstance(e.get("node"), dict)]
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


def _purchase_times(processed: datetime | None, created: datetime | None, shop: ShopifyShop, record_id: str):
    purchased = processed or created
    if purchased is None:
        raise RecordError("neither processed_at nor created_at is given", record_id=record_id, field="processed_at")
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


def _codes(items: Iterable[Any]) -> tuple[str, ...]:
    out = []
    for item in items or ():
        code = item.get("code") if isinstance(item, dict) else item
        if code:
            out.append(str(code))
    return tuple(out)


def _unit_quantity(quantity: int, current: int | None, refunded: int) -> int:
    """Units the order still has after edits: current quantity plus refunded, capped."""
    if current is None:
        return quantity
    return min(quantity, current + refunded)


# ----------------------------------------------------------------------------- REST
def map_rest_order(payload: dict, shop: ShopifyShop) -> OrderRecord:
    """Map one order in the REST/webhook shape. Raises RecordError naming the field."""
    if not isinstance(payload, dict):
        raise RecordError("an order must be a JSON object", record_id="?", field=None)
    record_id = legacy_id(payload.get("id")) or legacy_id(payload.get("admin_graphql_api_id"))
    if not record_id:
        raise RecordError("missing order id", record_id=str(payload.get("name") or "?"), field="id")

    processed = parse_timestamp(payload.get("processed_at"), record_id=record_id, field="processed_at")
    created = parse_timestamp(payload.get("created_at"), record_id=record_id, field="created_at")
    purchased, purchase_date = _purchase_times(processed, created, shop, record_id)
    updated = parse_timestamp(payload.get("updated_at"), record_id=record_id, field="updated_at") or purchased
    cancelled = parse_timestamp(payload.get("cancelled_at"), record_id=record_id, field="cancelled_at")

    refunded: dict[str, int] = {}
    refunds = payload.get("refunds") or []
    if not isinstance(refunds, list):
        raise RecordError("not a list", record_id=record_id, field="refunds")
    for r_index, refund in enumerate(refunds):
        for i, rli in enumerate(_obj(refund).get("refund_line_items") or []):
            rli = _obj(rli)
            line_id = legacy_id(rli.get("line_item_id")) or legacy_id(_obj(rli.get("line_item")).get("id"))
            qty = _int(rli.get("quantity"), record_id=record_id,
                       field=f"refunds[{r_index}].refund_line_items[{i}].quantity", default=0)
            if line_id:
                refunded[line_id] = refunded.get(line_id, 0) + qty

    items = payload.get("line_items") or []
    if not isinstance(items, list):
        raise RecordError("not a list", record_id=record_id, field="line_items")
    lines = []
    for i, item in enumerate(items):
        item = _obj(item)
        where = f"line_items[{i}]"
        quantity = _int(item.get("quantity"), record_id=record_id, field=f"{where}.quantity")
        current = item.get("current_quantity")
        current_q = None if current is None else _int(current, record_id=record_id, field=f"{where}.current_quantity")
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
                unit_price=_decimal(item.get("price"), record_id=record_id, field=f"{where}.price"),
                discount=_decimal(item.get("total_discount"), record_id=record_id, field=f"{where}.total_discount"),
            )
        )

    ship, bill = _obj(payload.get("shipping_address")), _obj(payload.get("billing_address"))
    country, country_source = _country(ship, bill, ("country_code",), shop)
    financial = (payload.get("financial_status") or None) and str(payload["financial_status"]).lower()
    email = payload.get("email") or payload.get("contact_email") or _obj(payload.get("customer")).get("email")
    return OrderRecord(
        source="shopify",
        store_key=shop.key,
        external_id=record_id,
        name=str(payload.get("name") or (f"#{payload['order_number']}" if payload.get("order_number") else record_id)),
        purchased_at=purchased,
        purchase_date=purchase_date,
        updated_at=updated,
        lines=tuple(lines),
        raw=payload,
        raw_kind="order",
        currency=payload.get("currency") or None,
        total_amount=_decimal(payload.get("total_price"), record_id=record_id, field="total_price"),
        financial_status=financial,
        order_status=(str(payload["fulfillment_status"]).lower() if payload.get("fulfillment_status") else None),
        payment_pending=financial in PENDING_FINANCIAL_STATUSES,
        cancelled_at=cancelled,
        is_cancelled=cancelled is not None,
        is_test=bool(payload.get("test")),
        email_hash=email_digest(email if isinstance(email, str) else None),
        country=country,
        country_source=country_source,  # type: ignore[arg-type]
        shipping_postal_code=_zip(ship),
        discount_codes=_codes(payload.get("discount_codes") or ()),
    )


# ----------------------------------------------------------------------------- GraphQL
def _money(value: Any, *, record_id: str, field: str) -> Decimal | None:
    """``{shopMoney: {amount}}`` (a MoneyBag) or a plain amount."""
    if isinstance(value, dict):
        value = _obj(value.get("shopMoney")).get("amount")
    return _decimal(value, record_id=record_id, field=field)


def map_graphql_order(node: dict, shop: ShopifyShop) -> OrderRecord:
    """Map one ``Order`` of the GraphQL Admin API. Raises RecordError naming the field."""
    if not isinstance(node, dict):
        raise RecordError("an order must be a JSON object", record_id="?", field=None)
    record_id = legacy_id(node.get("legacyResourceId")) or legacy_id(node.get("id"))
    if not record_id:
        raise RecordError("missing order id", record_id=str(node.get("name") or "?"), field="legacyResourceId")

    processed = parse_timestamp(node.get("processedAt"), record_id=record_id, field="processedAt")
    created = parse_timestamp(node.get("createdAt"), record_id=record_id, field="createdAt")
    purchased, purchase_date = _purchase_times(processed, created, shop, record_id)
    updated = parse_timestamp(node.get("updatedAt"), record_id=record_id, field="updatedAt") or purchased
    cancelled = parse_timestamp(node.get("cancelledAt"), record_id=record_id, field="cancelledAt")

    refunded: dict[str, int] = {}
    refunds = node.get("refunds") or []
    if not isinstance(refunds, list):
        refunds = connection_nodes(refunds)
    for r_index, refund in enumerate(refunds):
        for i, rli in enumerate(connection_nodes(_obj(refund).get("refundLineItems"))):
            line_id = legacy_id(_obj(rli.get("lineItem")).get("id"))
            qty = _int(rli.get("quantity"), record_id=record_id,
                       field=f"refunds[{r_index}].refundLineItems[{i}].quantity", default=0)
            if line_id:
                refunded[line_id] = refunded.get(line_id, 0) + qty

    lines = []
    for i, item in enumerate(connection_nodes(node.get("lineItems"))):
        where = f"lineItems[{i}]"
        quantity = _int(item.get("quantity"), record_id=record_id, field=f"{where}.quantity")
        current = item.get("currentQuantity")
        current_q = None if current is None else _int(current, record_id=record_id, field=f"{where}.currentQuantity")
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
                unit_price=_money(item.get("originalUnitPriceSet"), record_id=record_id,
                                  field=f"{where}.originalUnitPriceSet"),
                discount=_money(item.get("totalDiscountSet"), record_id=record_id, field=f"{where}.totalDiscountSet"),
            )
        )

    ship, bill = _obj(node.get("shippingAddress")), _obj(node.get("billingAddress"))
    country, country_source = _country(ship, bill, ("countryCodeV2", "countryCode"), shop)
    financial = str(node["displayFinancialStatus"]).lower() if node.get("displayFinancialStatus") else None
    email = node.get("email") or _obj(node.get("customer")).get("email")
    total = node.get("totalPriceSet")
    return OrderRecord(
        source="shopify",
        store_key=shop.key,
        external_id=record_id,
        name=str(node.get("name") or record_id),
        purchased_at=purchased,
        purchase_date=purchase_date,
        updated_at=updated,
        lines=tuple(lines),
        raw=node,
        raw_kind="graphql_order",
        currency=node.get("currencyCode") or _obj(_obj(total).get("shopMoney")).get("currencyCode") or None,
        total_amount=_money(total, record_id=record_id, field="totalPriceSet"),
        financial_status=financial,
        order_status=(str(node["displayFulfillmentStatus"]).lower() if node.get("displayFulfillmentStatus") else None),
        payment_pending=financial in PENDING_FINANCIAL_STATUSES,
        cancelled_at=cancelled,
        is_cancelled=cancelled is not None,
        is_test=bool(node.get("test")),
        email_hash=email_digest(email if isinstance(email, str) else None),
        country=country,
        country_source=country_source,  # type: ignore[arg-type]
        shipping_postal_code=_zip(ship),
        discount_codes=_codes(node.get("discountCodes") or ()),
    )
