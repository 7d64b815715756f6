"""The access scopes granted to the app on a shop (``currentAppInstallation``)."""

from __future__ import annotations

from vipsync.connectors.shopify.client import ShopifyClient
from vipsync.connectors.shopify.queries import ACCESS_SCOPES_QUERY

__all__ = ["fetch_access_scopes"]


def fetch_access_scopes(client: ShopifyClient) -> set[str]:
    """The handles of the granted scopes (``read_orders``, ``read_all_orders``, ...)."""
    doc = client.execute(ACCESS_SCOPES_QUERY, cost=2)
    install = (doc.get("data") or {}).get("currentAppInstallation") or {}
    return {
        str(s.get("handle"))
        for s in install.get("accessScopes") or []
        if isinstance(s, dict) and s.get("handle")
    }
