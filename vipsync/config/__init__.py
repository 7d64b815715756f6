"""Typed settings and the data files (stores, catalog, policies)."""

from vipsync.config.settings import Settings, get_settings
from vipsync.config.stores import AmazonAccount, Marketplace, ShopifyShop, StoreConfig, load_stores

__all__ = [
    "Settings",
    "get_settings",
    "StoreConfig",
    "ShopifyShop",
    "AmazonAccount",
    "Marketplace",
    "load_stores",
]
