"""Shopify webhooks: signature check and what each topic means for the store (pure).

Shopify signs each delivery with ``X-Shopify-Hmac-Sha256``: the base64 HMAC-SHA256 of the
raw request body keyed with the app's secret. It is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Literal

__all__ = [
    "SIXTY_DAY_NOTE",
    "TOPICS",
    "Action",
    "lacks_all_orders",
    "sign",
    "topic_action",
    "verify_hmac",
]

Action = Literal["upsert_order", "refetch_order", "order_deleted", "compliance"]

# What each subscribed topic does:
# - upsert_order: the payload is the whole order (REST shape): map it and store it; the
#   store refuses a version older than the one it holds, so out-of-order deliveries settle
#   on the newest.
# - refetch_order: the payload is part of an order (an edit, a refund): fetch the order
#   itself from the API; Shopify also sends orders/updated, and the scheduled sync is the
#   safety net.
# - order_deleted: noted; the order and its units stay in the store (history, claims).
# - compliance: the mandatory privacy topics.
TOPICS: dict[str, Action] = {
    "orders/create": "upsert_order",
    "orders/updated": "upsert_order",
    "orders/cancelled": "upsert_order",
    "orders/paid": "upsert_order",
    "orders/edited": "refetch_order",
    "refunds/create": "refetch_order",
    "orders/delete": "order_deleted",
    "customers/data_request": "compliance",
    "customers/redact": "compliance",
    "shop/redact": "compliance",
}

SIXTY_DAY_NOTE = (
    "This app lacks the read_all_orders scope: Shopify returns only the last 60 days of orders. "
    "Older orders are missing from this backfill; grant read_all_orders, or import an export "
    "with `vipsync import shopify`."
)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value for ``body``."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def verify_hmac(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not header or not secret:
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), header.strip().encode("ascii", "replace"))


def topic_action(topic: str | None) -> Action | None:
    """What to do with a delivery of ``topic`` (None: a topic we do not handle)."""
    return TOPICS.get((topic or "").strip().lower())


def lacks_all_orders(scope_handles: set[str]) -> bool:
    """True when the granted scopes limit the orders API to the last 60 days."""
    return "read_all_orders" not in scope_handles
