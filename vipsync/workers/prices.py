"""The list price of a product in a web store, read when a trade-in is quoted: the
variant's compare-at price, else its price, in the shop's currency (POLICY.md, Trade-in)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from vipsync.errors import EligibilityError, TransientSourceError
from vipsync.workers.shopify_jobs import make_client

__all__ = ["VARIANT_PRICE_COST", "VARIANT_PRICE_QUERY", "shop_list_price"]

VARIANT_PRICE_QUERY = """
query VariantPrice($query: String!) {
  productVariants(first: 1, query: $query) { nodes { sku price compareAtPrice } }
  shop { currencyCode }
}
"""
# Shopify's calculated query cost: the connection 2, its one variant 1, the shop 1.
VARIANT_PRICE_COST = 4


def _money(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount > 0 else None


def shop_list_price(ctx, store_key: str, sku: str, *, timeout_s: float = 5.0) -> tuple[Decimal, str]:
    """(list price, currency) of ``sku`` in the shop; EligibilityError when the shop does
    not sell it, TransientSourceError when the shop cannot be reached."""
    shop = ctx.stores.shopify(store_key)
    if not shop.has_credentials():
        raise EligibilityError(f"{store_key}: no credentials to read prices: give list_price with a reason")
    client = make_client(shop, timeout_s=timeout_s, max_attempts=2)
    safe = sku.replace("\\\\", "").replace('"', "")
    doc = client.execute(VARIANT_PRICE_QUERY, {"query": f'sku:"{safe}"'}, cost=VARIANT_PRICE_COST)
    data = doc.get("data") or {}
    nodes = ((data.get("productVariants") or {}).get("nodes")) or []
    currency = ((data.get("shop") or {}).get("currencyCode")) or ""
    for node in nodes:
        if isinstance(node, dict) and node.get("sku") == sku:
            price = _money(node.get("compareAtPrice")) or _money(node.get("price"))
            if price is None or len(currency) != 3:
                raise TransientSourceError(f"{store_key}: the variant's price could not be read")
            return price, currency
    raise EligibilityError(f"{store_key} does not sell SKU {sku}")
