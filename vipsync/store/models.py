"""The normalized store's tables.

One row per order, order line, unit of quantity, product, member; every order points at
the raw payload it came from. Units are keyed by (store, order id, SKU, ordinal), never by
a source's line id, so an Amazon order first seen in a flat-file report and later through
the Orders API keeps the same units.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from vipsync.store.types import JSONType, UTCDateTime

__all__ = [
    "Base",
    "CatalogDecision",
    "Claim",
    "ImportError_",
    "ImportRun",
    "Member",
    "Order",
    "OrderFactRow",
    "OrderLineRow",
    "OrderMemberLink",
    "PolicyDecision",
    "PrivacyRequest",
    "Product",
    "ProofDecision",
    "RawPayload",
    "StoreSyncHealth",
    "SyncCursor",
    "TagRules",
    "TradeInQuote",
    "Unit",
    "UnitCount",
    "UnitCountsState",
    "UnitTag",
    "WarrantyExchange",
    "WebhookDelivery",
    "table_of",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(14, 2)
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, typed as one (``__table__`` is typed as FromClause)."""
    return cast(Table, model.__table__)


class RawPayload(Base):
    """A payload exactly as received; one row per distinct version of a record."""

    __tablename__ = "raw_payloads"
    __table_args__ = (UniqueConstraint("store_key", "kind", "external_id", "sha256"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    store_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Product(Base):
    """A SKU seen in any order; ``category`` is set by the catalog classifier."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sku: Mapped[str] = mapped_column(String(255), unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str | None] = mapped_column(String(32))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("store_key", "external_id"),
        Index("ix_orders_store_name", "store_key", "name"),
        Index("ix_orders_email_hash", "email_hash"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    store_key: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    marketplace_id: Mapped[str | None] = mapped_column(String(32))
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    purchase_date: Mapped[date] = mapped_column(Date)
    source_updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    currency: Mapped[str | None] = mapped_column(String(3))
    total_amount: Mapped[Decimal | None] = mapped_column(Money)
    financial_status: Mapped[str | None] = mapped_column(String(32))
    order_status: Mapped[str | None] = mapped_column(String(32))
    payment_pending: Mapped[bool] = mapped_column(Boolean, server_default=false())
    is_cancelled: Mapped[bool] = mapped_column(Boolean, server_default=false())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_test: Mapped[bool] = mapped_column(Boolean, server_default=false())
    email_hash: Mapped[str | None] = mapped_column(String(64))
    email_key_id: Mapped[str | None] = mapped_column(String(32))  # the key of email_hash
    country: Mapped[str | None] = mapped_column(String(2))
    country_source: Mapped[str] = mapped_column(String(16))
    shipping_postal_code: Mapped[str | None] = mapped_column(String(32))
    discount_codes: Mapped[Any] = mapped_column(JSONType)
    # Trade-in codes the website put on the order as an attribute; a JSON list or null.
    trade_in_codes: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    # A free replacement (POLICY.md replacement_order) and the order it replaces, if known.
    is_replacement: Mapped[bool] = mapped_column(Boolean, server_default=false())
    replaced_order_id: Mapped[str | None] = mapped_column(String(64))
    # What ops must look at on this order (e.g. "replacement_with_total"); a JSON list or null.
    ops_flags: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw_payload_id: Mapped[int | None] = mapped_column(ForeignKey("raw_payloads.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OrderLineRow(Base):
    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "line_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    line_key: Mapped[str] = mapped_column(String(255))
    sku: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[int] = mapped_column(Integer)
    refunded_quantity: Mapped[int] = mapped_column(Integer, server_default="0")
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    discount: Mapped[Decimal | None] = mapped_column(Money)


class OrderFactRow(Base):
    """A fact after the sale (refund, return, deletion), kept whether or not its order is
    stored yet: tagging reads the facts of each order by store and order id, so the order of
    arrival never changes a verdict. One row per source fact (``fact_key``)."""

    __tablename__ = "order_facts"
    __table_args__ = (
        UniqueConstraint("store_key", "kind", "fact_key"),
        Index("ix_order_facts_order", "store_key", "order_external_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    store_key: Mapped[str] = mapped_column(String(64))
    order_external_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # refund | return | deleted | exchange
    fact_key: Mapped[str] = mapped_column(String(200))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    line_key: Mapped[str | None] = mapped_column(String(255))
    sku: Mapped[str | None] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer, server_default="0")
    principal: Mapped[Decimal | None] = mapped_column(Money)  # the item price refunded
    amount: Mapped[Decimal | None] = mapped_column(Money)  # everything refunded (tax, shipping...)
    currency: Mapped[str | None] = mapped_column(String(3))
    raw: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # An exchange: the line whose units the added line's units take the place of.
    returned_line_key: Mapped[str | None] = mapped_column(String(255))


class Unit(Base):
    """One unit of quantity. ``removed`` marks a unit whose order no longer carries it
    (an order edit lowered the quantity); it is kept, never deleted."""

    __tablename__ = "units"
    __table_args__ = (
        UniqueConstraint("store_key", "order_external_id", "sku", "ordinal"),
        Index("ix_units_order_id", "order_id"),
        # Only the flagged units: clearing a flag adds no entry. Lookups by store alone use
        # the unique key, which starts with the store.
        Index(
            "ix_units_needs_tag",
            "needs_tag",
            postgresql_where=text("needs_tag"),
            sqlite_where=text("needs_tag"),
        ),
        # The live units of a SKU, counted by the unclassified queue without the heap.
        Index(
            "ix_units_live_sku",
            "sku",
            "order_id",
            postgresql_where=text("NOT removed"),
            sqlite_where=text("NOT removed"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    store_key: Mapped[str] = mapped_column(String(64))
    order_external_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(255))
    ordinal: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text, default="")
    removed: Mapped[bool] = mapped_column(Boolean, server_default=false())
    needs_tag: Mapped[bool] = mapped_column(Boolean, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UnitTag(Base):
    """The eligibility engine's verdict for one unit, as of the policy version it names.
    Statuses that depend on today (active, expired, closing soon) are computed on read."""

    __tablename__ = "unit_tags"
    __table_args__ = (
        # A version's tags by purchase date: what a policy change can move (retag_all).
        Index("ix_unit_tags_version_purchase_date", "policy_version", "purchase_date"),
        Index("ix_unit_tags_original_warranty_end", "original_warranty_end", "unit_id"),
        Index("ix_unit_tags_registration_deadline", "registration_deadline", "unit_id"),
        Index("ix_unit_tags_extended_warranty_end", "extended_warranty_end", "unit_id"),
        Index("ix_unit_tags_tagged_at", "tagged_at"),
    )

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    policy_version: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(2))
    purchase_date: Mapped[date] = mapped_column(Date)
    eligible: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[Any] = mapped_column(JSONType)
    valid_purchase: Mapped[bool] = mapped_column(Boolean)
    original_warranty_end: Mapped[date | None] = mapped_column(Date)
    registration_deadline: Mapped[date | None] = mapped_column(Date)
    extended_warranty_end: Mapped[date | None] = mapped_column(Date)
    trade_in_opens: Mapped[date | None] = mapped_column(Date)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    benefit_status: Mapped[str | None] = mapped_column(String(32))
    facts_hash: Mapped[str] = mapped_column(String(64))
    tagged_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TagRules(Base):
    """The fingerprint of the rules each policy version was last applied with by a
    completed re-tagging run: a version whose fingerprint differs now has its units judged
    again; the others only where the version a date selects has changed."""

    __tablename__ = "tag_rules"

    policy_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Member(Base):
    """A VIP member. The e-mail is kept only as a keyed digest (vipsync/privacy.py): it can
    be matched, not read back. Erasure clears ``email_hash`` and keeps the row (its id is
    the pseudonym).

    A registration or exit given as a date is that date (``registered_at``/``exited_at``);
    given as a timestamp it is also kept in ``registered_ts``/``exited_ts``, because POLICY.md
    takes its calendar date in the zone of each unit's store, which differs per unit."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    email_key_id: Mapped[str | None] = mapped_column(String(32))  # the key of email_hash
    country: Mapped[str | None] = mapped_column(String(2))
    registered_at: Mapped[date] = mapped_column(Date)
    exited_at: Mapped[date | None] = mapped_column(Date)
    registered_ts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exited_ts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(32), default="import")
    # Why support or an import gave a registration date other than the server's clock.
    registration_reason: Mapped[str | None] = mapped_column(Text)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OrderMemberLink(Base):
    """A member's verified proof of purchase for an order (Amazon and guest checkouts)."""

    __tablename__ = "order_member_links"
    __table_args__ = (UniqueConstraint("order_id", "member_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(32))  # "email", "postal_code", "invoice"
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Claim(Base):
    """A benefit used on a unit: one exchange or one trade-in, never both.

    ``claimed_on`` is the day the customer's request was opened (a trade-in: the new
    order's purchase date). An exchange also stores the day the replacement ships and the
    first day its cover no longer runs. A trade-in recorded from an order names its quote;
    a claim released (the order cancelled or fully refunded) is deleted, its quote kept
    as ``released``."""

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "exchange" | "trade_in"
    claimed_on: Mapped[date] = mapped_column(Date)
    policy_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ship_date: Mapped[date | None] = mapped_column(Date)
    replacement_cover_end: Mapped[date | None] = mapped_column(Date)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("trade_in_quotes.id", ondelete="SET NULL"))
    recorded_by: Mapped[str | None] = mapped_column(String(64))  # token name, "cli" or "order"
    reason: Mapped[str | None] = mapped_column(Text)  # a support reason for a back-dated claim


class WarrantyExchange(Base):
    """An ordinary warranty exchange (during the original warranty or a replacement's
    cover): recorded for every valid purchase, it uses no benefit."""

    __tablename__ = "warranty_exchanges"
    __table_args__ = (Index("ix_warranty_exchanges_unit_id", "unit_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    requested_on: Mapped[date] = mapped_column(Date)
    ship_date: Mapped[date] = mapped_column(Date)
    replacement_cover_end: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TradeInQuote(Base):
    """A trade-in quote: the unit, its policy version, the new product's list price in the
    shop where it is bought, the discount, and a single-use code valid until ``expires_on``
    (the first day it no longer applies). ``status``: open, used, released."""

    __tablename__ = "trade_in_quotes"
    __table_args__ = (Index("ix_trade_in_quotes_unit_id", "unit_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    policy_version: Mapped[str] = mapped_column(String(64))
    store_key: Mapped[str] = mapped_column(String(64))  # the shop of the new order
    new_sku: Mapped[str] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    list_price: Mapped[Decimal] = mapped_column(Money)
    discount: Mapped[Decimal] = mapped_column(Money)
    final_price: Mapped[Decimal] = mapped_column(Money)
    price_source: Mapped[str] = mapped_column(String(16))  # "store" | "caller"
    reason: Mapped[str | None] = mapped_column(Text)
    quoted_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    recorded_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProofDecision(Base):
    """One proof-of-purchase decision, without personal data: when, which API token (or
    the CLI), the order it concerned when one was found, the method, the outcome and why."""

    __tablename__ = "proof_decisions"
    __table_args__ = (Index("ix_proof_decisions_decided_at", "decided_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    client: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    store_key: Mapped[str | None] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    method: Mapped[str] = mapped_column(String(16))  # email | postal_code | invoice
    outcome: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)


class SyncCursor(Base):
    """The bookmark of one stream of one store (e.g. shopify-us / orders)."""

    __tablename__ = "sync_cursors"
    __table_args__ = (UniqueConstraint("store_key", "stream"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    store_key: Mapped[str] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(Text)
    state: Mapped[Any] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ImportRun(Base):
    """One run of an import or a sync, with its counts."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    store_key: Mapped[str | None] = mapped_column(String(64))
    source_name: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="running")
    read: Mapped[int] = mapped_column(Integer, server_default="0")
    inserted: Mapped[int] = mapped_column(Integer, server_default="0")
    updated: Mapped[int] = mapped_column(Integer, server_default="0")
    unchanged: Mapped[int] = mapped_column(Integer, server_default="0")
    rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ImportError_(Base):
    """A record that could not be imported: its source, id, field and message, and the
    record itself so it can be replayed once fixed."""

    __tablename__ = "import_errors"
    __table_args__ = (Index("ix_import_errors_status", "status"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("import_runs.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(32))  # "shopify", "amazon-report", "members", ...
    store_key: Mapped[str | None] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(128))
    field: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | replayed | dropped
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """A webhook as received, stored before it is answered and processed in the background."""

    __tablename__ = "webhook_deliveries"
    # The same body under another webhook id is the same delivery (a replay changes nothing).
    __table_args__ = (
        UniqueConstraint("store_key", "topic", "body_sha256", name="uq_webhook_deliveries_body"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(128), unique=True)
    store_key: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSONType)
    # Keyed digest (HMAC-SHA-256, vipsync/privacy.py) of the raw body, as signed.
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    # pending | done | failed (cannot be processed: see ``error``) | deferred | ignored
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CatalogDecision(Base):
    """An ops decision classifying a SKU (or, for order lines without a SKU, a title); the
    latest decision per key wins over the packaged catalog. Kept forever: who, when, why."""

    __tablename__ = "catalog_decisions"
    __table_args__ = (Index("ix_catalog_decisions_key", "sku", "title_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sku: Mapped[str] = mapped_column(String(255))  # normalized; "" for a title decision
    title_key: Mapped[str] = mapped_column(String(512), server_default="")  # casefolded title, or ""
    category: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, server_default="")
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PolicyDecision(Base):
    """An ops decision enabling or disabling a policy version, optionally limited to stores
    and countries; the latest decision per version wins over the shipped policy file."""

    __tablename__ = "policy_decisions"
    __table_args__ = (Index("ix_policy_decisions_version", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean)
    stores: Mapped[Any] = mapped_column(
        JSONType, nullable=True
    )  # list of store keys, or null: as the file says
    countries: Mapped[Any] = mapped_column(
        JSONType, nullable=True
    )  # list of ISO codes, or null: as the file says
    note: Mapped[str] = mapped_column(Text, server_default="")
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoreSyncHealth(Base):
    """How each store's syncs go: the last success, the bookmark's lag then, the errors
    since, and the time waited on the source's rate limits. One row per store."""

    __tablename__ = "store_sync_health"

    store_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_cursor: Mapped[str | None] = mapped_column(Text)
    syncs_ok: Mapped[int] = mapped_column(Integer, server_default="0")
    errors_total: Mapped[int] = mapped_column(Integer, server_default="0")
    errors_since_success: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rate_limit_wait_s: Mapped[Decimal] = mapped_column(Numeric(14, 1), server_default="0")
    orders_read: Mapped[int] = mapped_column(BigInteger, server_default="0")


class UnitCount(Base):
    """The units of ``ops_units`` counted by the dashboard's dimensions: a summary rebuilt
    on the first read after the tagged data changed (see vipsync.store.ops_queries)."""

    __tablename__ = "unit_counts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    store: Mapped[str] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(2))
    category: Mapped[str] = mapped_column(String(32))
    eligible: Mapped[bool | None] = mapped_column(Boolean)
    benefit_status: Mapped[str | None] = mapped_column(String(32))
    policy_version: Mapped[str | None] = mapped_column(String(64))
    units: Mapped[int] = mapped_column(BigInteger)


class UnitCountsState(Base):
    """One row: what ``unit_counts`` was built from (the newest tag time and unit id)."""

    __tablename__ = "unit_counts_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marker: Mapped[str] = mapped_column(String(128))
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PrivacyRequest(Base):
    """A privacy request (Shopify compliance webhook, member erasure, ops data request) and
    what was done about it. No personal data: the subject is its keyed e-mail digest or
    the source's customer id; ``report`` holds counts and ids."""

    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_status", "status"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # customers_redact | customers_data_request | shop_redact | erase | data_request
    kind: Mapped[str] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(32))  # "webhook", "cli", "api"
    store_key: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    subject_digest: Mapped[str | None] = mapped_column(String(64))
    subject_key_id: Mapped[str | None] = mapped_column(String(32))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="received")  # received | done | failed
    report: Mapped[Any] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
