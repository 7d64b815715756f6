"""The official stores file: which Shopify shops and Amazon seller accounts are TESmart's own.

The file names the environment variables that hold each store's credentials; the secrets
themselves never live in it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vipsync.config.fields import FieldError, build, check
from vipsync.errors import ConfigError

__all__ = [
    "MARKETPLACES",
    "AmazonAccount",
    "Marketplace",
    "ShopifyShop",
    "StoreConfig",
    "load_stores",
]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError(("timezone",), f"unknown IANA time zone {value!r}") from None
    return value


def _country(value: str) -> str:
    value = value.strip().upper()
    if value == "UK":
        value = "GB"
    if len(value) != 2 or not value.isalpha():
        raise FieldError(("country",), f"not an ISO 3166-1 alpha-2 country code: {value!r}")
    return value


# The stores' classes are frozen dataclasses checked by vipsync.config.fields: each value
# against its annotation when built (from the file or in code), unknown keys refused by
# `load_stores`.


@dataclass(frozen=True, kw_only=True)
class Marketplace:
    """One Amazon marketplace an account sells in."""

    code: str  # US, DE, JP, ...
    id: str  # ATVPDKIKX0DER, ...
    sales_channel: str  # Amazon.com, Amazon.de, ... (the flat-file report's sales-channel)
    timezone: str
    country: str

    def __post_init__(self) -> None:
        check(self)
        object.__setattr__(self, "timezone", _zone(self.timezone))
        object.__setattr__(self, "country", _country(self.country))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True)
class _StoreBase:
    key: str
    name: str = ""
    official: bool = True
    credentials: dict[str, str] = field(default_factory=dict)
    endpoint: str | None = None

    def credential(self, name: str) -> str:
        """The secret named ``name``, read from the environment variable the file names."""
        var = self.credentials.get(name)
        if not var:
            raise ConfigError(f"store {self.key}: no environment variable is named for credential {name!r}")
        value = os.environ.get(var)
        if not value:
            raise ConfigError(f"store {self.key}: environment variable {var} ({name}) is not set")
        return value

    def has_credentials(self) -> bool:
        return all(os.environ.get(var) for var in self.credentials.values())


@dataclass(frozen=True, kw_only=True)
class ShopifyShop(_StoreBase):
    """One official Shopify web store."""

    kind: Literal["shopify"] = "shopify"
    shop_domain: str
    timezone: str
    country: str
    api_version: str = "2025-10"
    # The shop's order-name format (Shopify settings: "Order ID format"): proof-of-purchase
    # identifiers are read without them.
    order_name_prefix: str = "#"
    order_name_suffix: str = ""
    # An order at zero total carrying this tag is a free replacement (POLICY.md,
    # replacement_order); None: the shop marks no replacements.
    replacement_tag: str | None = None
    # The order attribute (Shopify "note attribute" / "custom attribute") the website writes a
    # trade-in quote's code into (POLICY.md, Trade-in); its value is read as a trade-in code.
    trade_in_attribute: str = "trade_in_code"

    def __post_init__(self) -> None:
        check(self)
        object.__setattr__(self, "timezone", _zone(self.timezone))
        object.__setattr__(self, "country", _country(self.country))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True)
class AmazonAccount(_StoreBase):
    """One official Amazon seller account in one SP-API region."""

    kind: Literal["amazon"] = "amazon"
    region: Literal["NA", "EU", "FE"]
    seller_id: str = ""
    marketplaces: tuple[Marketplace, ...]

    def __post_init__(self) -> None:
        check(self)
        ids = [m.id for m in self.marketplaces]
        if len(ids) != len(set(ids)):
            raise FieldError(("marketplaces",), "a marketplace is listed twice")
        if not ids:
            raise FieldError(("marketplaces",), "an Amazon account needs at least one marketplace")

    def marketplace_by_id(self, marketplace_id: str) -> Marketplace | None:
        return next((m for m in self.marketplaces if m.id == marketplace_id), None)

    def marketplace_by_channel(self, sales_channel: str) -> Marketplace | None:
        wanted = sales_channel.strip().lower()
        return next((m for m in self.marketplaces if m.sales_channel.lower() == wanted), None)


# The documented marketplace ids, sales channels and time zones, so the stores file can
# list marketplaces by code alone.
MARKETPLACES: dict[str, dict[str, str]] = {
    "US": {
        "id": "ATVPDKIKX0DER",
        "sales_channel": "Amazon.com",
        "timezone": "America/Los_Angeles",
        "country": "US",
    },
    "CA": {
        "id": "A2EUQ1WTGCTBG2",
        "sales_channel": "Amazon.ca",
        "timezone": "America/Los_Angeles",
        "country": "CA",
    },
    "MX": {
        "id": "A1AM78C64UM0Y8",
        "sales_channel": "Amazon.com.mx",
        "timezone": "America/Mexico_City",
        "country": "MX",
    },
    "DE": {
        "id": "A1PA6795UKMFR9",
        "sales_channel": "Amazon.de",
        "timezone": "Europe/Berlin",
        "country": "DE",
    },
    "FR": {"id": "A13V1IB3VIYZZH", "sales_channel": "Amazon.fr", "timezone": "Europe/Paris", "country": "FR"},
    "IT": {"id": "APJ6JRA9NG5V4", "sales_channel": "Amazon.it", "timezone": "Europe/Rome", "country": "IT"},
    "ES": {
        "id": "A1RKKUPIHCS9HS",
        "sales_channel": "Amazon.es",
        "timezone": "Europe/Madrid",
        "country": "ES",
    },
    "NL": {
        "id": "A1805IZSGTT6HS",
        "sales_channel": "Amazon.nl",
        "timezone": "Europe/Amsterdam",
        "country": "NL",
    },
    "SE": {
        "id": "A2NODRKZP88ZB9",
        "sales_channel": "Amazon.se",
        "timezone": "Europe/Stockholm",
        "country": "SE",
    },
    "PL": {
        "id": "A1C3SOZRARQ6R3",
        "sales_channel": "Amazon.pl",
        "timezone": "Europe/Warsaw",
        "country": "PL",
    },
    "BE": {
        "id": "AMEN7PMS3EDWL",
        "sales_channel": "Amazon.com.be",
        "timezone": "Europe/Brussels",
        "country": "BE",
    },
    "IE": {
        "id": "A28R8C7NBKEWEA",
        "sales_channel": "Amazon.ie",
        "timezone": "Europe/Dublin",
        "country": "IE",
    },
    "UK": {
        "id": "A1F83G8C2ARO7P",
        "sales_channel": "Amazon.co.uk",
        "timezone": "Europe/London",
        "country": "GB",
    },
    "JP": {
        "id": "A1VC38T7YXB528",
        "sales_channel": "Amazon.co.jp",
        "timezone": "Asia/Tokyo",
        "country": "JP",
    },
}

StoreConfig = ShopifyShop | AmazonAccount


@dataclass(frozen=True)
class Stores:
    """The loaded stores file: look stores up by key."""

    path: Path
    by_key: dict[str, StoreConfig] = field(default_factory=dict)

    def __iter__(self):
        return iter(self.by_key.values())

    def __len__(self) -> int:
        return len(self.by_key)

    def get(self, key: str) -> StoreConfig:
        try:
            return self.by_key[key]
        except KeyError:
            known = ", ".join(sorted(self.by_key)) or "none"
            raise ConfigError(f"unknown store {key!r} (stores in {self.path}: {known})") from None

    def of_kind(self, kind: str) -> list[StoreConfig]:
        return [s for s in self.by_key.values() if s.kind == kind]

    def shopify(self, key: str) -> ShopifyShop:
        store = self.get(key)
        if not isinstance(store, ShopifyShop):
            raise ConfigError(f"store {key!r} is an Amazon account, not a Shopify shop")
        return store

    def amazon(self, key: str) -> AmazonAccount:
        store = self.get(key)
        if not isinstance(store, AmazonAccount):
            raise ConfigError(f"store {key!r} is a Shopify shop, not an Amazon account")
        return store


def _marketplace(entry: object, where: str) -> dict:
    if isinstance(entry, str):
        code = entry.strip().upper()
        if code not in MARKETPLACES:
            raise ConfigError(
                f"{where}: unknown marketplace code {entry!r} (known: {', '.join(MARKETPLACES)})"
            )
        return {"code": code, **MARKETPLACES[code]}
    if isinstance(entry, dict):
        code = str(entry.get("code", "")).upper()
        base = dict(MARKETPLACES.get(code, {}))
        base.update(entry)
        base["code"] = code
        return base
    raise ConfigError(f"{where}: a marketplace is a code or a table")


def load_stores(path: Path | str) -> Stores:
    """Load and validate the stores file; errors name the file, the store and the key."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"stores file {path} does not exist (VIPSYNC_STORES_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"stores file {path} is not valid TOML: {exc}") from None
    stores: dict[str, StoreConfig] = {}
    for key, raw in (doc.get("stores") or {}).items():
        where = f"{path}: stores.{key}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a table")
        data = dict(raw, key=key)
        kind = data.get("kind")
        try:
            if kind == "shopify":
                store: StoreConfig = build(ShopifyShop, data)
            elif kind == "amazon":
                data["marketplaces"] = [_marketplace(m, where) for m in data.get("marketplaces", [])]
                store = build(AmazonAccount, data)
            else:
                raise ConfigError(f"{where}.kind: must be 'shopify' or 'amazon', not {kind!r}")
        except FieldError as exc:
            raise ConfigError(f"{where}.{exc}") from None
        stores[key] = store
    if not stores:
        raise ConfigError(f"stores file {path} lists no stores")
    return Stores(path=path, by_key=stores)
