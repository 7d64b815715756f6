"""The allowlist of what a stored payload may keep: personal data never reaches the store.

Every payload the store keeps (raw payloads of orders, webhook deliveries, rejected records
in ``import_errors``) passes through :func:`minimize` at the storage boundary. It keeps a
key only when the key is on the allowlist of the payload's shape, at any depth, and drops
everything else: names, street lines, cities, phones, e-mails, IPs, notes, gift messages,
client details, tracking numbers, customer objects. An address keeps only its country code
and postal code; a customer only its id. The e-mail the program matches on becomes its
keyed digest (``email_digest`` and ``email_key_id``), so a kept payload can be replayed
and still matches its member. Applying :func:`minimize` twice gives the same payload, so a
replayed payload stores the same version as the first arrival.

Shapes and what they keep (besides ``email_digest``/``email_key_id``):

- ``shopify_order``: Shopify orders in the REST/webhook, GraphQL and bulk shapes: ids and
  names (``#1001``), times, financial/fulfillment statuses, cancel reason, test flag, tags,
  currency and amounts (money sets), discount codes, the order attributes that carry a
  trade-in code (and nothing of the others), line items (id, SKU, title, product
  and variant ids, quantities, price, discounts), refunds (ids, times, refund line items
  with quantities and restock type, transactions' kind/status/amount), returns (return
  status, ids, times, returned and exchange items with their line ids and quantities),
  addresses reduced to country code and postal code, ``customer.id``.
- ``shopify_refund`` (``refunds/create``) and ``shopify_order_edit`` (``orders/edited``):
  the same keys, plus ``order_id``, ``order_edit`` and its line item additions/removals.
- ``shopify_compliance`` (``customers/redact``, ``customers/data_request``,
  ``shop/redact``): shop id and domain, ``orders_to_redact``, ``orders_requested``,
  ``data_request.id``, ``customer.id``; the customer's e-mail as its digest.
- ``amazon``: the stored forms of Orders API v0 (order and items), v2026-01-01 and the
  order report rows: order and item ids, times, statuses, channel and marketplace, SKUs,
  ASINs, titles, quantities, amounts, promotion ids, replacement and business flags,
  addresses reduced to country code and postal code. Buyer info is dropped.
- ``members_row``: a members file row: registration and exit dates, country, the line.

An unknown shape keeps nothing but its ids and times (``fallback``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from vipsync.privacy import Digester, sha256_hex

__all__ = ["ALLOWLISTS", "EMAIL_DIGEST", "EMAIL_KEY_ID", "minimize", "shape_of", "stored_email_digest"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")

EMAIL_DIGEST = "email_digest"
EMAIL_KEY_ID = "email_key_id"

# Objects that describe a person's address: reduced to these keys whatever the shape.
ADDRESS_OBJECTS = frozenset(
    {
        "shipping_address",
        "billing_address",
        "shippingAddress",
        "billingAddress",
        "ShippingAddress",
        "address",
        "deliveryAddress",
    }
)
ADDRESS_KEPT = frozenset(
    {"country_code", "countryCode", "countryCodeV2", "CountryCode", "zip", "PostalCode", "postalCode"}
)
# Objects that describe a person: reduced to their ids.
PERSON_OBJECTS = frozenset({"customer"})
PERSON_KEPT = frozenset({"id", "admin_graphql_api_id", "legacyResourceId"})
# E-mail fields: replaced by the keyed digest of the first one that holds an address.
EMAIL_FIELDS = ("email", "contact_email", "customer.email", "email_sha256")

_COMMON = frozenset(
    {
        "id",
        "admin_graphql_api_id",
        "legacyResourceId",
        "created_at",
        "updated_at",
        "processed_at",
        "createdAt",
        "updatedAt",
        "processedAt",
        EMAIL_DIGEST,
        EMAIL_KEY_ID,
    }
)
_MONEY = frozenset(
    {
        "amount",
        "currency_code",
        "currencyCode",
        "shop_money",
        "presentment_money",
        "shopMoney",
        "presentmentMoney",
    }
)
_SHOPIFY_ORDER = (
    _COMMON
    | _MONEY
    | {
        # order
        "name",
        "order_number",
        "number",
        "cancelled_at",
        "cancelledAt",
        "closed_at",
        "closedAt",
        "cancel_reason",
        "cancelReason",
        "financial_status",
        "fulfillment_status",
        "displayFinancialStatus",
        "displayFulfillmentStatus",
        "test",
        "tags",
        "source_name",
        "currency",
        "presentment_currency",
        "total_price",
        "subtotal_price",
        "total_tax",
        "total_discounts",
        "total_line_items_price",
        "total_price_set",
        "subtotal_price_set",
        "total_discounts_set",
        "totalPriceSet",
        "subtotalPriceSet",
        "totalDiscountsSet",
        "totalTaxSet",
        "discount_codes",
        "discountCodes",
        # order attributes: only a trade-in code's (see _keep)
        "note_attributes",
        "customAttributes",
        "code",
        "type",
        "customer",
        "shipping_address",
        "billing_address",
        "shippingAddress",
        "billingAddress",
        # connections and bulk rows
        "nodes",
        "edges",
        "node",
        "__parentId",
        "__typename",
        # line items
        "line_items",
        "lineItems",
        "sku",
        "title",
        "quantity",
        "current_quantity",
        "currentQuantity",
        "fulfillable_quantity",
        "product_id",
        "variant_id",
        "price",
        "price_set",
        "total_discount",
        "total_discount_set",
        "originalUnitPriceSet",
        "totalDiscountSet",
        "discount_allocations",
        "discountAllocations",
        "allocatedAmountSet",
        # refunds
        "refunds",
        "refund_line_items",
        "refundLineItems",
        "line_item_id",
        "line_item",
        "lineItem",
        "restock_type",
        "restockType",
        "subtotal",
        "subtotal_set",
        "transactions",
        "kind",
        "status",
        "order_id",
        # orders/edited
        "order_edit",
        "additions",
        "removals",
        "delta",
        # returns and exchanges (GraphQL Order.returns): ids, quantities, dates
        "returnStatus",
        "returns",
        "returnLineItems",
        "exchangeLineItems",
        "fulfillmentLineItem",
    }
)
_SHOPIFY_COMPLIANCE = _COMMON | {
    "shop_id",
    "shop_domain",
    "orders_to_redact",
    "orders_requested",
    "data_request",
    "customer",
}
_AMAZON = (
    _COMMON
    | _MONEY
    | {
        # stored forms, report windows
        "format",
        "start",
        "end",
        "report_id",
        "store_key",
        "order",
        "items",
        "rows",
        "address",
        # v0
        "AmazonOrderId",
        "PurchaseDate",
        "LastUpdateDate",
        "OrderStatus",
        "FulfillmentChannel",
        "SalesChannel",
        "MarketplaceId",
        "OrderType",
        "OrderTotal",
        "CurrencyCode",
        "Amount",
        "NumberOfItemsShipped",
        "NumberOfItemsUnshipped",
        "IsReplacementOrder",
        "ReplacedOrderId",
        "IsBusinessOrder",
        "IsPrime",
        "ShippingAddress",
        "OrderItemId",
        "SellerSKU",
        "ASIN",
        "Title",
        "QuantityOrdered",
        "QuantityShipped",
        "ItemPrice",
        "ItemTax",
        "PromotionDiscount",
        "PromotionDiscountTax",
        "PromotionIds",
        # v2026-01-01
        "orderId",
        "createdTime",
        "lastUpdatedTime",
        "salesChannel",
        "marketplaceId",
        "marketplaceName",
        "channelName",
        "programs",
        "fulfillment",
        "fulfillmentStatus",
        "fulfilledBy",
        "orderItems",
        "orderItemId",
        "quantityOrdered",
        "product",
        "sellerSku",
        "asin",
        "title",
        "price",
        "unitPrice",
        "proceeds",
        "grandTotal",
        "recipient",
        "deliveryAddress",
        "associatedOrders",
        "associationType",
        # order report rows (connectors/amazon/flatfile.py KEPT_COLUMNS)
        "amazon-order-id",
        "merchant-order-id",
        "purchase-date",
        "last-updated-date",
        "order-status",
        "fulfillment-channel",
        "sales-channel",
        "order-channel",
        "ship-service-level",
        "product-name",
        "sku",
        "item-status",
        "quantity",
        "currency",
        "item-price",
        "item-tax",
        "shipping-price",
        "shipping-tax",
        "gift-wrap-price",
        "gift-wrap-tax",
        "item-promotion-discount",
        "ship-promotion-discount",
        "ship-postal-code",
        "ship-country",
        "promotion-ids",
        "is-business-order",
        "price-designation",
        "number-of-items",
        # Finances API v0 refund events (connectors/amazon/finances.py)
        "refund_event",
        "SellerOrderId",
        "MarketplaceName",
        "PostedDate",
        "ShipmentItemAdjustmentList",
        "OrderAdjustmentItemId",
        "ItemChargeAdjustmentList",
        "ChargeType",
        "ChargeAmount",
        "CurrencyAmount",
        # returns report rows, by our column names (connectors/amazon/finances.py)
        "row",
        "order_id",
        "date",
        "refunded",
        "rma",
        "status",
    }
)
_MEMBERS_ROW = frozenset(
    {"registered_at", "exited_at", "country", "line", "source", "reason", EMAIL_DIGEST, EMAIL_KEY_ID}
)
_FALLBACK = _COMMON | {"order_id", "record_id", "unit_id", "start", "end", "report_id"}

ALLOWLISTS: dict[str, frozenset[str]] = {
    "shopify_order": frozenset(_SHOPIFY_ORDER),
    "shopify_compliance": frozenset(_SHOPIFY_COMPLIANCE),
    "amazon": frozenset(_AMAZON),
    "members_row": _MEMBERS_ROW,
    "fallback": frozenset(_FALLBACK),
}

_TOPIC_SHAPES = {
    "customers/redact": "shopify_compliance",
    "customers/data_request": "shopify_compliance",
    "shop/redact": "shopify_compliance",
}


def shape_of(payload: Any, *, source: str | None = None, topic: str | None = None) -> str:
    """The shape of a payload from where it came (a webhook topic, an error's source) and
    what it carries."""
    if topic:
        return _TOPIC_SHAPES.get(topic, "shopify_order" if "/" in topic else "fallback")
    if source and source.startswith("members"):
        return "members_row"
    if source and source.startswith("amazon"):
        return "amazon"
    if source and source.startswith("shopify"):
        return "shopify_order"
    if isinstance(payload, Mapping) and "format" in payload:
        return "amazon"
    return "fallback"


def _email_of(payload: Mapping[str, Any]) -> str | None:
    for path in EMAIL_FIELDS:
        value: Any = payload
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str) and value.strip():
            return path if path == "email_sha256" else value.strip().lower()
    return None


def stored_email_digest(payload: Any, digester: Digester | None) -> tuple[str | None, str | None]:
    """(digest, key id) of the e-mail a payload carries: the kept digest of a minimized
    payload, else the keyed digest of its address (or of a members row's plain SHA-256)."""
    if not isinstance(payload, Mapping):
        return None, None
    kept = payload.get(EMAIL_DIGEST)
    if isinstance(kept, str) and _HEX64.fullmatch(kept):
        key_id = payload.get(EMAIL_KEY_ID)
        return kept, key_id if isinstance(key_id, str) and _KEY_ID.fullmatch(key_id) else None
    found = _email_of(payload)
    if found is None or digester is None:
        return None, None
    if found == "email_sha256":
        inner = str(payload["email_sha256"]).strip().lower()
        if not _HEX64.fullmatch(inner):
            return None, None
    elif "@" not in found:
        return None, None
    else:
        inner = sha256_hex(found)
    return digester.email_from_sha256(inner), digester.key_id


def _text(value: Any) -> Any:
    """A kept scalar as JSON storage can hold it: NUL (which PostgreSQL refuses) becomes
    U+FFFD, a number that is not finite (NaN, infinity) becomes null."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# Order attributes hold free text (gift messages, engravings): only an entry whose value is a
# trade-in quote's code (``TI-`` and hex, vipsync.workers.claims) is kept, with its name.
ATTRIBUTE_LISTS = frozenset({"note_attributes", "customAttributes"})
_TRADE_IN_CODE = re.compile(r"\s*TI-[0-9A-F]{4,32}\s*", re.IGNORECASE)


def _code_attributes(items: list) -> list:
    return [
        {k: _text(v) for k, v in item.items() if k in ("name", "key", "value") and isinstance(v, str)}
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("value"), str)
        and _TRADE_IN_CODE.fullmatch(item["value"])
    ]


def _keep(value: Any, allowed: frozenset[str], key: str | None) -> Any:
    if key in ATTRIBUTE_LISTS:
        return _code_attributes(value) if isinstance(value, list) else None
    if isinstance(value, dict):
        if key in ADDRESS_OBJECTS:
            return {
                k: _text(v) for k, v in value.items() if k in ADDRESS_KEPT and not isinstance(v, (dict, list))
            }
        if key in PERSON_OBJECTS:
            return {
                k: _text(v) for k, v in value.items() if k in PERSON_KEPT and not isinstance(v, (dict, list))
            }
        if key == "recipient":
            return {"deliveryAddress": _keep(value.get("deliveryAddress") or {}, allowed, "deliveryAddress")}
        out = {}
        for k, v in value.items():
            if k in allowed:
                kind = type(v)  # _kept's first cases, inline: most values of an order
                if kind is str:
                    out[k] = v if "\x00" not in v else v.replace("\x00", "\ufffd")
                elif kind is int or kind is bool or v is None:
                    out[k] = v
                else:
                    out[k] = _kept(v, allowed, k)
        return out
    if isinstance(value, list):
        return [_kept(v, allowed, key) for v in value]
    return _text(value)


def _kept(v: Any, allowed: frozenset[str], key: str | None) -> Any:
    """One value under a kept key: what ``_keep`` or ``_text`` gives, the plain JSON types
    (what a parser returns) decided by their exact type first, the hot path of an import."""
    kind = type(v)
    if kind is str:
        return v if "\x00" not in v else v.replace("\x00", "\ufffd")
    if kind is int or kind is bool or v is None:
        return v
    if kind is dict or kind is list or isinstance(v, (dict, list)):
        return _keep(v, allowed, key)
    return _text(v)


def minimize(
    payload: Any,
    *,
    digester: Digester | None,
    source: str | None = None,
    topic: str | None = None,
    shape: str | None = None,
) -> Any:
    """The payload reduced to its shape's allowlist, its e-mail replaced by the keyed digest.

    Without a digester (no key configured) the e-mail is dropped, never kept. A payload that
    is not a JSON object or list is replaced by a note of its type and size: free text may
    hold anything."""
    if isinstance(payload, (str, bytes)):
        return {"dropped": f"{type(payload).__name__} of {len(payload)} characters, not kept"}
    if isinstance(payload, Mapping) and not isinstance(payload, dict):
        payload = dict(payload)
    if not isinstance(payload, (dict, list)):
        return payload if payload is None or isinstance(payload, (bool, int, float)) else None
    allowed = ALLOWLISTS[shape or shape_of(payload, source=source, topic=topic)]
    if isinstance(payload, list):
        return [_keep(v, allowed, None) for v in payload]
    digest, key_id = stored_email_digest(payload, digester)
    out = _keep(payload, allowed, None)
    out.pop(EMAIL_DIGEST, None)
    out.pop(EMAIL_KEY_ID, None)
    if digest is not None:
        out[EMAIL_DIGEST] = digest
        out[EMAIL_KEY_ID] = key_id
    return out
