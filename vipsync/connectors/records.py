"""Normalized records: what every connector produces and the store consumes.

Connectors map an outside shape (a Shopify order, an Amazon order, a flat-file row) to
these frozen dataclasses with a pure ``map_*`` function. The store never sees a source's
own shape except as the raw payload kept beside each record.

Conventions: timestamps are timezone-aware, dates are ``datetime.date``, money is
``Decimal`` with its currency, countries are ISO 3166-1 alpha-2 (``GB``, never ``UK``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from vipsync.connectors.json_text import canonical_json, canonical_json_finite

__all__ = [
    "FactKind",
    "MemberRecord",
    "OrderFact",
    "OrderLine",
    "OrderRecord",
    "Rejected",
    "Source",
    "canonical_json",
    "email_digest",
    "normalize_country",
    "normalize_email",
    "payload_sha256",
]

Source = Literal["shopify", "amazon"]

# Amazon's buyer e-mail relay; such addresses never create or match members.
AMAZON_RELAY_DOMAIN = "marketplace.amazon."


def normalize_email(value: str | None) -> str | None:
    """The one e-mail normalization (orders, members, proof factors; POLICY.md): trimmed,
    lower-cased, NFC, the domain in its ASCII (punycode) form; no plus-tag or dot
    stripping. None when empty."""
    if value is None:
        return None
    value = unicodedata.normalize("NFC", value.strip()).lower()
    if not value:
        return None
    local, at, domain = value.rpartition("@")
    if at and domain and not domain.isascii():
        # A domain the IDNA codec refuses is kept as written: it matches nothing else.
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
        value = f"{local}@{domain}"
    return value


def email_digest(value: str | None) -> str | None:
    """The plain SHA-256 of the normalized e-mail, the input of the keyed digest: the store
    keys it (``Digester.email_from_sha256``) before anything is written, and never keeps it
    as is (a list of candidate addresses would reverse it). Amazon relay addresses give None."""
    email = normalize_email(value)
    if email is None or "@" not in email:
        return None
    if AMAZON_RELAY_DOMAIN in email.split("@", 1)[1]:
        return None
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


def normalize_country(value: str | None) -> str | None:
    """ISO alpha-2 upper case; ``UK`` is written ``GB``; empty gives None."""
    if value is None:
        return None
    value = str(value).strip().upper()
    if not value:
        return None
    return "GB" if value == "UK" else value


def payload_sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One order line. ``line_key`` is the source's line id, or ``sku#n`` when it has none
    (flat-file reports). Units are keyed by SKU and ordinal, never by ``line_key``."""

    line_key: str
    sku: str
    title: str
    quantity: int
    refunded_quantity: int = 0
    unit_price: Decimal | None = None
    discount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One order from one official (or listed) store, normalized."""

    source: Source
    store_key: str
    external_id: str  # Shopify numeric order id; Amazon order id
    name: str  # Shopify "#1001"; the Amazon order id
    purchased_at: datetime  # aware
    purchase_date: date  # calendar date in the store's (marketplace's) zone
    updated_at: datetime  # aware; the source's own update time, decides which version wins
    lines: tuple[OrderLine, ...]
    raw: dict[str, Any] = field(compare=False, repr=False)
    raw_kind: str = "order"  # "order", "report_rows", "bulk_order", ...
    marketplace_id: str | None = None
    currency: str | None = None
    total_amount: Decimal | None = None
    financial_status: str | None = None  # the source's own word, lower case
    order_status: str | None = None
    payment_pending: bool = False
    cancelled_at: datetime | None = None
    is_cancelled: bool = False
    is_test: bool = False
    # The e-mail digest: a plain SHA-256 from a mapper (``email_key_id`` None), keyed by the
    # store; or a keyed digest kept in a minimized payload, with the id of its key.
    email_hash: str | None = None
    email_key_id: str | None = None
    country: str | None = None  # resolved: shipping, else billing, else the store's own
    country_source: Literal["shipping", "billing", "store"] = "store"
    shipping_postal_code: str | None = None
    discount_codes: tuple[str, ...] = ()
    # Trade-in codes the website put on the order as an attribute (Shopify), not a discount.
    trade_in_codes: tuple[str, ...] = ()
    # A free replacement of an earlier order (Amazon IsReplacementOrder, or a Shopify order
    # carrying the store's replacement tag): not a purchase, its units get no windows.
    is_replacement: bool = False
    replaced_order_id: str | None = None
    # What ops must look at (e.g. "replacement_with_total"); never personal data.
    ops_flags: tuple[str, ...] = ()
    # Facts after the sale the order's own payload carries (the exchanges of its returns),
    # kept with it by the store; the raw payload covers them in the content digest.
    facts: tuple[OrderFact, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("purchased_at", "updated_at", "cancelled_at"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"OrderRecord.{name} must be timezone-aware")

    @property
    def identity(self) -> tuple[str, str]:
        return (self.store_key, self.external_id)

    def content_hash(self, *, raw_sha256: str | None = None) -> str:
        """A digest of everything stored for this version, raw payload included
        (``raw_sha256``: the payload's digest when the caller has it already)."""
        body: dict[str, Any] = {
            "name": self.name,
            "purchased_at": self.purchased_at.astimezone(UTC).isoformat(),
            "purchase_date": self.purchase_date.isoformat(),
            "updated_at": self.updated_at.astimezone(UTC).isoformat(),
            "lines": [
                [
                    line.line_key,
                    line.sku,
                    line.title,
                    line.quantity,
                    line.refunded_quantity,
                    str(line.unit_price),
                    str(line.discount),
                ]
                for line in self.lines
            ],
            "marketplace_id": self.marketplace_id,
            "currency": self.currency,
            "total": str(self.total_amount),
            "fin": self.financial_status,
            "status": self.order_status,
            "pending": self.payment_pending,
            "cancelled": self.is_cancelled,
            "cancelled_at": self.cancelled_at.astimezone(UTC).isoformat() if self.cancelled_at else None,
            "test": self.is_test,
            "email": self.email_hash,
            "country": [self.country, self.country_source],
            "zip": self.shipping_postal_code,
            "codes": list(self.discount_codes),
            "raw": raw_sha256 or payload_sha256(self.raw),
            "raw_kind": self.raw_kind,
        }
        # Added later: only when set, so the digests of earlier versions stay the same.
        if self.is_replacement or self.replaced_order_id:
            body["replacement"] = [self.is_replacement, self.replaced_order_id]
        if self.trade_in_codes:
            body["trade_in_codes"] = list(self.trade_in_codes)
        if self.ops_flags:
            body["flags"] = list(self.ops_flags)
        # payload_sha256(body): the body holds text, integers, booleans and None only.
        return hashlib.sha256(canonical_json_finite(body).encode("utf-8")).hexdigest()

    def unit_keys(self) -> list[tuple[str, int]]:
        """(sku, ordinal) of every unit of quantity, ordinals 1..n per SKU in line order."""
        counts: dict[str, int] = {}
        keys: list[tuple[str, int]] = []
        for line in self.lines:
            for _ in range(max(line.quantity, 0)):
                counts[line.sku] = counts.get(line.sku, 0) + 1
                keys.append((line.sku, counts[line.sku]))
        return keys


FactKind = Literal["refund", "return", "deleted", "exchange"]


@dataclass(frozen=True, slots=True)
class OrderFact:
    """Something that happened to an order after the sale, as its source reported it: an
    Amazon refund event's line (``refund``), a returns-report row (``return``), a deletion
    at the source (``deleted``). Facts are kept apart from the order (they may arrive before
    it) and keyed by ``fact_key``, the source's own identity of the fact, so reading the
    same fact again changes nothing. An ``exchange`` (a Shopify exchange or order edit)
    says ``quantity`` units of the added line ``line_key`` took the place of as many units
    of the line ``returned_line_key`` on ``posted_at``; with no returned line they are a
    new purchase of that day. ``quantity`` is the refunded (or returned) quantity of
    the line ``line_key`` (Amazon's OrderItemId); ``principal`` the item price refunded for
    it and ``amount`` everything refunded (price, tax, shipping), both positive, in
    ``currency``; a refund that does not cover the price of its quantity is money alone."""

    source: Source
    store_key: str
    order_external_id: str
    kind: FactKind
    fact_key: str
    posted_at: datetime
    line_key: str | None = None
    sku: str | None = None
    quantity: int = 0
    principal: Decimal | None = None
    amount: Decimal | None = None
    currency: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    returned_line_key: str | None = None

    def __post_init__(self) -> None:
        if self.posted_at.tzinfo is None or self.posted_at.utcoffset() is None:
            raise ValueError("OrderFact.posted_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One VIP member from the members file or a registration."""

    email_hash: str  # plain SHA-256 (email_key_id None) or a kept keyed digest
    registered_at: date  # the date as given (a timestamp's UTC date when given as one)
    country: str | None = None
    exited_at: date | None = None
    record_id: str = ""  # where it came from (file line), for error reports
    registered_ts: datetime | None = None  # set when the source gave a timestamp
    exited_ts: datetime | None = None
    email_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record a reader could not map: which record, which field, why, and the record
    itself (so ops can fix and replay it). Readers yield these instead of raising, so one
    bad record never stops a batch. Messages name fields, never personal data."""

    record_id: str
    field: str | None
    message: str
    raw: Any = dataclasses.field(repr=False, default=None)
