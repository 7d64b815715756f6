"""Orders API payloads to normalized order records (pure: no I/O, no clock).

- v0 (``getOrders``/``getOrder`` + ``getOrderItems``, optionally ``getOrderAddress``): the
  version the sync uses today.
- v2026-01-01 (``searchOrders``/``getOrder`` with ``includedData``): the next version, one
  switch away (:func:`map_order_v2026`).

Rules (POLICY.md): ``PurchaseDate`` (UTC) in the marketplace's zone gives the purchase date;
``Pending``/``PendingAvailability`` = payment pending; ``Canceled`` = cancelled; the unit's
country is the shipping address's, else the marketplace's. A replacement order (v0
``IsReplacementOrder``/``ReplacedOrderId``; v2026 an ``associatedOrders`` entry of type
``REPLACEMENT_ORIGINAL_ID``) is kept as one: its units are judged ``replacement_order``. The shipping postal code is kept
(proof of purchase); no buyer name, e-mail, phone or street. Lines are keyed by the order
item id; units by (store, order id, SKU, ordinal), exactly as the flat-file mapper does, so
an order seen in a report and later through the API yields the same units.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from vipsync.config.stores import AmazonAccount, Marketplace
from vipsync.connectors.amazon.flatfile import (
    amazon_order_record,
    normalize_status,
    parse_amazon_timestamp,
)
from vipsync.connectors.limits import map_or_reject
from vipsync.connectors.records import OrderLine, OrderRecord, Rejected
from vipsync.errors import RecordError

__all__ = [
    "RAW_V0",
    "RAW_V2026",
    "item_count_v0",
    "map_order_v0",
    "map_order_v2026",
    "replay_record",
    "strip_pii_v0",
    "try_map_order_v0",
    "try_map_order_v2026",
]

RAW_V0 = "orders_v0"
RAW_V2026 = "orders_2026_01_01"

# Address fields kept in the raw payload: enough for the region and the proof of purchase.
_ADDRESS_KEPT = ("PostalCode", "CountryCode", "StateOrRegion", "City", "AddressType")
_ADDRESS_KEPT_2026 = ("postalCode", "countryCode", "stateOrRegion", "city", "addressType")


def _amount(money: Any, *, record_id: str, field: str) -> Decimal | None:
    if not money:
        return None
    try:
        value = Decimal(str(money.get("Amount", money.get("amount"))))
    except (InvalidOperation, AttributeError, TypeError):
        raise RecordError("not an amount", record_id=record_id, field=field) from None
    if not value.is_finite():
        raise RecordError("not a finite amount", record_id=record_id, field=field)
    return value


def _currency(money: Any) -> str | None:
    if not isinstance(money, dict):
        return None
    return money.get("CurrencyCode") or money.get("currencyCode")


def _ts(value: Any, *, record_id: str, field: str):
    try:
        return parse_amazon_timestamp(str(value or ""))
    except ValueError as exc:
        raise RecordError(
            f"not a timestamp with a UTC offset ({exc})", record_id=record_id, field=field
        ) from None


def _flag(value: Any, *, record_id: str, field: str) -> bool:
    """A v0 boolean (JSON true/false, or the strings "true"/"false")."""
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise RecordError("not a boolean", record_id=record_id, field=field)


def _market(
    account: AmazonAccount, marketplace_id: str | None, channel: str | None, *, record_id: str
) -> Marketplace:
    market = account.marketplace_by_id(marketplace_id) if marketplace_id else None
    if market is None and channel:
        market = account.marketplace_by_channel(channel)
    if market is None:
        raise RecordError(
            f"marketplace {marketplace_id or channel!r} is not listed for store {account.key}; "
            "add it to the stores file and replay",
            record_id=record_id,
            field="MarketplaceId",
        )
    return market


def item_count_v0(order: Mapping[str, Any]) -> int | None:
    """``NumberOfItemsShipped + NumberOfItemsUnshipped`` as getOrders reports it."""
    shipped, unshipped = order.get("NumberOfItemsShipped"), order.get("NumberOfItemsUnshipped")
    if shipped is None and unshipped is None:
        return None
    return int(shipped or 0) + int(unshipped or 0)


def strip_pii_v0(order: Mapping[str, Any]) -> dict[str, Any]:
    """The order without buyer data: no BuyerInfo, only the kept address fields."""
    out = {
        k: v
        for k, v in order.items()
        if k
        not in ("BuyerInfo", "ShippingAddress", "DefaultShipFromLocationAddress", "BuyerEmail", "BuyerName")
    }
    addr = order.get("ShippingAddress")
    if isinstance(addr, dict):
        out["ShippingAddress"] = {k: addr[k] for k in _ADDRESS_KEPT if k in addr}
    return out


def _strip_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("BuyerInfo", "BuyerCustomizedInfo", "GiftMessageText")}


def map_order_v0(
    order: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]] | None,
    account: AmazonAccount,
    *,
    address: Mapping[str, Any] | None = None,
    known_lines: Sequence[OrderLine] | None = None,
) -> OrderRecord:
    """Map a v0 order and its items. ``address`` is a getOrderAddress ``ShippingAddress``
    when the order itself carries none. ``known_lines`` (the lines the store holds) stand in
    for ``items`` when the caller skipped getOrderItems for a plain status change. Raises
    RecordError naming the order and the field."""
    order_id = str(order.get("AmazonOrderId") or "")
    if not order_id:
        raise RecordError("missing", record_id="?", field="AmazonOrderId")
    market = _market(account, order.get("MarketplaceId"), order.get("SalesChannel"), record_id=order_id)
    purchased_at = _ts(order.get("PurchaseDate"), record_id=order_id, field="PurchaseDate")
    updated_at = _ts(
        order.get("LastUpdateDate") or order.get("PurchaseDate"), record_id=order_id, field="LastUpdateDate"
    )
    status = normalize_status(order.get("OrderStatus"))
    if not status:
        raise RecordError("missing", record_id=order_id, field="OrderStatus")

    lines: list[OrderLine] = []
    if items is not None:
        for n, item in enumerate(items):
            sku = str(item.get("SellerSKU") or "").strip()
            if not sku:
                raise RecordError("missing", record_id=order_id, field=f"OrderItems[{n}].SellerSKU")
            try:
                qty = int(item.get("QuantityOrdered") or 0)
            except (TypeError, ValueError):
                raise RecordError(
                    "not a whole number", record_id=order_id, field=f"OrderItems[{n}].QuantityOrdered"
                ) from None
            price = _amount(item.get("ItemPrice"), record_id=order_id, field=f"OrderItems[{n}].ItemPrice")
            discount = _amount(
                item.get("PromotionDiscount"), record_id=order_id, field=f"OrderItems[{n}].PromotionDiscount"
            )
            lines.append(
                OrderLine(
                    line_key=str(item.get("OrderItemId") or f"{sku}#{n + 1}"),
                    sku=sku,
                    title=str(item.get("Title") or sku),
                    quantity=qty,
                    unit_price=(price / qty).quantize(Decimal("0.01")) if price is not None and qty else None,
                    discount=abs(discount) if discount is not None else None,
                )
            )
    elif known_lines is not None:
        lines = list(known_lines)
    else:
        raise RecordError("no order items and none stored", record_id=order_id, field="OrderItems")

    addr = order.get("ShippingAddress") or (address or {})
    if not isinstance(addr, Mapping):
        addr = {}
    total_money = order.get("OrderTotal")
    replacement = _flag(order.get("IsReplacementOrder"), record_id=order_id, field="IsReplacementOrder")
    replaced = str(order.get("ReplacedOrderId") or "").strip() or None
    raw = _raw_v0(order, items, account)
    if address and not order.get("ShippingAddress"):
        raw["address"] = {k: address[k] for k in _ADDRESS_KEPT if k in address}
    return amazon_order_record(
        account=account,
        market=market,
        order_id=order_id,
        purchased_at=purchased_at,
        updated_at=updated_at,
        lines=lines,
        raw=raw,
        raw_kind="order",
        status=status,
        ship_country=addr.get("CountryCode"),
        postal_code=addr.get("PostalCode"),
        currency=_currency(total_money),
        total=_amount(total_money, record_id=order_id, field="OrderTotal"),
        replacement=replacement,
        replaced_order_id=replaced,
    )


def _raw_v0(order: Mapping[str, Any], items, account: AmazonAccount) -> dict[str, Any]:
    """The stored (and replayable) form of a v0 order and its items, buyer data stripped."""
    return {
        "format": RAW_V0,
        "store_key": account.key,
        "order": strip_pii_v0(order),
        "items": [_strip_item(i) for i in items] if items is not None else None,
    }


def try_map_order_v0(order, items, account, **kwargs) -> OrderRecord | Rejected:
    """:func:`map_order_v0` within the limits, with a Rejected (and the payload, for replay)
    instead of raising, whatever the payload holds."""
    try:
        raw: Any = _raw_v0(order, items, account)
    except Exception:  # not even the expected shape: kept as received, buyer data unread
        raw = {"format": RAW_V0, "store_key": account.key, "unkept": "not an order object"}
    return map_or_reject(map_order_v0, order, items, account, raw=raw, **kwargs)


# v2026-01-01 ---------------------------------------------------------------------------

_V2026_PENDING = frozenset({"pending", "pending_availability"})
_V2026_CANCELLED = frozenset({"cancelled", "canceled"})


def map_order_v2026(order: Mapping[str, Any], account: AmazonAccount) -> OrderRecord:
    """Map an Orders API v2026-01-01 order (``searchOrders`` item or ``getOrder.order``)."""
    order_id = str(order.get("orderId") or "")
    if not order_id:
        raise RecordError("missing", record_id="?", field="orderId")
    channel = order.get("salesChannel") or {}
    market = _market(
        account, channel.get("marketplaceId"), channel.get("marketplaceName"), record_id=order_id
    )
    purchased_at = _ts(order.get("createdTime"), record_id=order_id, field="createdTime")
    updated_at = _ts(
        order.get("lastUpdatedTime") or order.get("createdTime"), record_id=order_id, field="lastUpdatedTime"
    )
    fulfillment = order.get("fulfillment") or {}
    status = str(fulfillment.get("fulfillmentStatus") or "").strip().lower()
    if not status:
        raise RecordError("missing", record_id=order_id, field="fulfillment.fulfillmentStatus")
    lines: list[OrderLine] = []
    for n, item in enumerate(order.get("orderItems") or []):
        product = item.get("product") or {}
        sku = str(product.get("sellerSku") or "").strip()
        if not sku:
            raise RecordError("missing", record_id=order_id, field=f"orderItems[{n}].product.sellerSku")
        try:
            qty = int(item.get("quantityOrdered") or 0)
        except (TypeError, ValueError):
            raise RecordError(
                "not a whole number", record_id=order_id, field=f"orderItems[{n}].quantityOrdered"
            ) from None
        unit = _amount(
            (product.get("price") or {}).get("unitPrice"),
            record_id=order_id,
            field=f"orderItems[{n}].product.price.unitPrice",
        )
        lines.append(
            OrderLine(
                line_key=str(item.get("orderItemId") or f"{sku}#{n + 1}"),
                sku=sku,
                title=str(product.get("title") or sku),
                quantity=qty,
                unit_price=unit.quantize(Decimal("0.01")) if unit is not None else None,
            )
        )
    address = ((order.get("recipient") or {}).get("deliveryAddress")) or {}
    grand = (order.get("proceeds") or {}).get("grandTotal")
    raw_order = {
        k: v for k, v in order.items() if k not in ("buyer", "recipient", "tax", "payment", "packages")
    }
    raw_order["recipient"] = {"deliveryAddress": {k: address[k] for k in _ADDRESS_KEPT_2026 if k in address}}
    cancelled = status in _V2026_CANCELLED
    replaced_ids = [
        str(a.get("orderId") or "").strip()
        for a in order.get("associatedOrders") or []
        if isinstance(a, dict) and a.get("associationType") == "REPLACEMENT_ORIGINAL_ID"
    ]
    return amazon_order_record(
        account=account,
        market=market,
        order_id=order_id,
        purchased_at=purchased_at,
        updated_at=updated_at,
        lines=lines,
        raw={"format": RAW_V2026, "store_key": account.key, "order": raw_order},
        raw_kind="order",
        status="canceled" if cancelled else status,
        ship_country=address.get("countryCode"),
        postal_code=address.get("postalCode"),
        currency=_currency(grand),
        total=_amount(grand, record_id=order_id, field="proceeds.grandTotal"),
        pending=status in _V2026_PENDING,
        cancelled=cancelled,
        replacement=bool(replaced_ids),
        replaced_order_id=next((i for i in replaced_ids if i), None),
    )


def try_map_order_v2026(order, account) -> OrderRecord | Rejected:
    """:func:`map_order_v2026` within the limits, with a Rejected instead of raising."""
    try:
        raw: Any = {
            "format": RAW_V2026,
            "order": {
                k: v
                for k, v in order.items()
                if k not in ("buyer", "recipient", "tax", "payment", "packages")
            },
        }
    except Exception:
        raw = {"format": RAW_V2026, "unkept": "not an order object"}
    return map_or_reject(map_order_v2026, order, account, raw=raw)


def replay_record(raw: Any, account: AmazonAccount | None) -> Iterator[OrderRecord | Rejected]:
    """Map a stored rejected Orders API payload again."""
    if account is None or not isinstance(raw, dict):
        yield Rejected("replay", None, "replay needs the Amazon store and a stored payload", raw)
        return
    if raw.get("format") == RAW_V0:
        yield try_map_order_v0(raw.get("order") or {}, raw.get("items"), account)
    elif raw.get("format") == RAW_V2026:
        yield try_map_order_v2026(raw.get("order") or {}, account)
    else:
        yield Rejected("replay", None, "not an Amazon payload this version can replay", raw)
