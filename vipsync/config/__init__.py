"""Typed settings and the data files (stores, catalog, policies)."""

from vipsync.config.settings import Settings, get_settings
from vipsync.config.stores import AmazonAccount, Marketplace, ShopifyShop, StoreConfig, load_stores

__all__ = [
    "AmazonAccount",
    "Marketplace",
    "Settings",
    "ShopifyShop",
    "StoreConfig",
    "get_settings",
    "load_stores",
]
