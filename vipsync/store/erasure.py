"""Erasure and data requests: the one implementation of "forget this person".

``erase_person`` removes every piece of personal data the store holds about one e-mail
address, in every table: the e-mail digests of the member and of the orders bought with
it, the orders' postal codes, and whatever the kept payloads (raw payloads, webhook
deliveries, rejected records) still carry about those orders. What the program owes the
person stays, pseudonymous: the member row (its id is the pseudonym) with ``erased_at``
set and an exit at the moment of erasure, its units, tags and claims. The member's e-mail
matches become pseudonymous links first (``order_member_links`` with method ``email``,
dated before any other link of the order), so erasing changes no unit's owner.

``erase_store`` does the same for every order of one store (Shopify's ``shop/redact``);
``person_data`` gathers what the store holds about one address (``customers/data_request``)
for ops to send. None of these commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, func, or_, select, update
from sqlalchemy.orm import Session

from vipsync.connectors.minimize import EMAIL_DIGEST, EMAIL_KEY_ID, minimize
from vipsync.connectors.records import canonical_json, normalize_email
from vipsync.errors import StoreError
from vipsync.privacy import Digester, sha256_hex
from vipsync.store.models import (
    Claim,
    ImportError_,
    Member,
    Order,
    OrderLineRow,
    OrderMemberLink,
    RawPayload,
    Unit,
    UnitTag,
    WebhookDelivery,
)
from vipsync.store.sql import in_values

__all__ = [
    "ErasureReport",
    "email_digests",
    "erase_digests",
    "erase_person",
    "erase_store",
    "person_data",
    "person_data_by_digests",
    "redact_orders",
]

CHUNK = 500


@dataclass
class ErasureReport:
    """What an erasure touched (counts and ids only: a report holds no personal data)."""

    member_ids: list[int] = field(default_factory=list)
    orders: int = 0
    links_created: int = 0
    raw_payloads: int = 0
    import_errors: int = 0
    webhook_deliveries: int = 0
    units_to_retag: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __iadd__(self, other: ErasureReport) -> ErasureReport:
        self.member_ids.extend(other.member_ids)
        self.orders += other.orders
        self.links_created += other.links_created
        self.raw_payloads += other.raw_payloads
        self.import_errors += other.import_errors
        self.webhook_deliveries += other.webhook_deliveries
        self.units_to_retag += other.units_to_retag
        return self


def _chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _now() -> datetime:
    return datetime.now(UTC)


def email_digests(digester: Digester, email: str) -> list[str]:
    """Every digest this address may be stored under: one per key of the chain, and the
    plain SHA-256 of a store not migrated to keyed digests yet."""
    normalized = normalize_email(email) if isinstance(email, str) else None
    if (
        normalized is None
        or "@" not in normalized
        or len(normalized) > 320
        or any(not c.isprintable() or c.isspace() for c in normalized)
    ):
        raise StoreError(
            "an erasure or data request needs an e-mail address (at most 320 printable characters)"
        )
    return [d for _, d in digester.email_candidates(normalized)] + [sha256_hex(normalized)]


def _erased(payload: Any, *, source: str | None = None, topic: str | None = None) -> Any:
    """A kept payload with nothing left that points at the person: the allowlist, then no
    e-mail digest and no postal code."""
    kept = minimize(payload, digester=None, source=source, topic=topic)
    return _strip(kept)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if k not in (EMAIL_DIGEST, EMAIL_KEY_ID, "zip", "PostalCode", "postalCode", "ship-postal-code")
        } | ({"erased": True} if EMAIL_DIGEST in value or "erased" in value else {})
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _payload_mentions(payload: Any, needles: Sequence[str]) -> bool:
    text = canonical_json(payload).lower() if not isinstance(payload, str) else payload.lower()
    return any(n in text for n in needles)


def _link_email_owners(session: Session, order_ids: Sequence[int], pg: bool) -> int:
    """Turn the e-mail matches of these orders into links (method ``email``), dated before
    any other link of the order, so taking the digest away changes no unit's owner."""
    created = 0
    for chunk in _chunks(list(order_ids)):
        pairs = session.execute(
            select(Order.id, Order.purchased_at, Member.id.label("member_id"))
            .join(Member, Member.email_hash == Order.email_hash)
            .where(in_values(Order.id, chunk, pg=pg), Order.source != "amazon")
        ).all()
        for p in pairs:
            if session.execute(
                select(OrderMemberLink.id).where(
                    OrderMemberLink.order_id == p.id, OrderMemberLink.member_id == p.member_id
                )
            ).first():
                continue
            earliest = session.execute(
                select(func.min(OrderMemberLink.verified_at)).where(OrderMemberLink.order_id == p.id)
            ).scalar_one_or_none()
            verified = (
                p.purchased_at if earliest is None else min(p.purchased_at, earliest - timedelta(seconds=1))
            )
            session.add(
                OrderMemberLink(order_id=p.id, member_id=p.member_id, method="email", verified_at=verified)
            )
            created += 1
    session.flush()
    return created


def _error_candidates(
    session: Session, by_store: dict[str, list[str]], needles: Sequence[str], pg: bool
) -> list[ImportError_]:
    found: dict[int, ImportError_] = {}
    for needle in needles:
        for err in session.execute(
            select(ImportError_).where(ImportError_.raw.icontains(needle, autoescape=True))
        ).scalars():
            found[err.id] = err
    for store_key, ids in by_store.items():
        for chunk in _chunks(sorted(ids)):
            for err in session.execute(
                select(ImportError_).where(
                    ImportError_.store_key == store_key, in_values(ImportError_.record_id, chunk, pg=pg)
                )
            ).scalars():
                found[err.id] = err
    return list(found.values())


# Beyond this many orders, every delivery of their stores is read instead of searched.
_SEARCHED_IDS = 200


def _delivery_candidates(
    session: Session, by_store: dict[str, list[str]], needles: Sequence[str]
) -> list[WebhookDelivery]:
    text = cast(WebhookDelivery.payload, Text)  # JSON text: '"id": 123' on both databases
    found: dict[int, WebhookDelivery] = {}
    for needle in needles:
        for d in session.execute(
            select(WebhookDelivery).where(text.icontains(needle, autoescape=True))
        ).scalars():
            found[d.id] = d
    for store_key, ids in by_store.items():
        if len(ids) > _SEARCHED_IDS:
            query = select(WebhookDelivery).where(WebhookDelivery.store_key == store_key)
            found.update((d.id, d) for d in session.execute(query).scalars())
            continue
        for chunk in _chunks(sorted(ids), 25):
            patterns = [
                text.contains(f'"{key}": {quote}{i}{quote}', autoescape=True)
                for i in chunk
                for key in ("id", "order_id")
                for quote in ("", '"')
            ]
            query = select(WebhookDelivery).where(WebhookDelivery.store_key == store_key, or_(*patterns))
            found.update((d.id, d) for d in session.execute(query).scalars())
    return list(found.values())


def _redact_orders(
    session: Session, order_keys: set[tuple[str, str]], needles: Sequence[str], pg: bool
) -> ErasureReport:
    """Orders (by (store, external id)) and every kept payload that names them or one of
    ``needles`` (digests, the address): digests and postal codes gone."""
    report = ErasureReport()
    by_store: dict[str, list[str]] = {}
    for store_key, external_id in order_keys:
        by_store.setdefault(store_key, []).append(str(external_id))
    order_ids: list[int] = []
    for store_key, ids in by_store.items():
        for chunk in _chunks(sorted(ids)):
            order_ids.extend(
                session.execute(
                    select(Order.id).where(
                        Order.store_key == store_key, in_values(Order.external_id, chunk, pg=pg)
                    )
                ).scalars()
            )
    report.links_created += _link_email_owners(session, order_ids, pg)
    for store_key, ids in by_store.items():
        for chunk in _chunks(sorted(ids)):
            session.execute(
                update(Order)
                .where(Order.store_key == store_key, in_values(Order.external_id, chunk, pg=pg))
                .values(email_hash=None, email_key_id=None, shipping_postal_code=None)
            )
            for raw in session.execute(
                select(RawPayload).where(
                    RawPayload.store_key == store_key, in_values(RawPayload.external_id, chunk, pg=pg)
                )
            ).scalars():
                raw.payload = _erased(raw.payload, source=raw.source)
                report.raw_payloads += 1
    report.orders = len(order_ids)

    # Kept payloads: rejected records and deliveries that name these orders or the person.
    # The database narrows the rows (text search, ids); each candidate is then checked.
    wanted = {(s, str(e)) for s, e in order_keys}
    for err in _error_candidates(session, by_store, needles, pg):
        if (err.store_key, err.record_id) in wanted or _payload_mentions(err.raw, needles):
            err.raw = canonical_json(_erased(_loads(err.raw), source=err.source))
            report.import_errors += 1
    for delivery in _delivery_candidates(session, by_store, needles):
        payload = delivery.payload
        named = {
            str(payload.get(k)) for k in ("id", "order_id") if isinstance(payload, dict) and payload.get(k)
        }
        if any((delivery.store_key, i) in wanted for i in named) or _payload_mentions(payload, needles):
            delivery.payload = _erased(payload, topic=delivery.topic)
            report.webhook_deliveries += 1
    for chunk in _chunks(order_ids):
        res = session.execute(
            update(Unit).where(in_values(Unit.order_id, chunk, pg=pg)).values(needs_tag=True)
        )
        report.units_to_retag += getattr(res, "rowcount", 0) or 0
    return report


def redact_orders(session: Session, store_key: str, external_ids: Iterable[str]) -> ErasureReport:
    """Erase the personal data kept for these orders of one store (``orders_to_redact``);
    the orders, units, owners and warranty records stay. Does not commit."""
    pg = session.get_bind().dialect.name == "postgresql"
    return _redact_orders(session, {(store_key, str(e)) for e in external_ids}, [], pg)


def _loads(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def erase_digests(
    session: Session, digests: Sequence[str], *, extra_needles: Sequence[str] = ()
) -> ErasureReport:
    """Erase the person known by these stored e-mail digests (see :func:`erase_person`)."""
    pg = session.get_bind().dialect.name == "postgresql"
    digests = [d for d in dict.fromkeys(digests) if d]
    report = ErasureReport()
    if not digests:
        return report
    orders = session.execute(
        select(Order.store_key, Order.external_id).where(in_values(Order.email_hash, digests, pg=pg))
    ).all()
    # Orders first: their e-mail matches become links while the member still has its digest.
    report += _redact_orders(
        session, {(o.store_key, o.external_id) for o in orders}, [*digests, *extra_needles], pg
    )
    now = _now()
    members = list(
        session.execute(select(Member).where(in_values(Member.email_hash, digests, pg=pg))).scalars()
    )
    for member in members:
        member.email_hash = None
        member.email_key_id = None
        member.erased_at = now
        if member.exited_at is None or member.exited_at < member.registered_at:  # an exit, now
            member.exited_at = now.date()
            member.exited_ts = now
        member.updated_at = now
        report.member_ids.append(member.id)
    session.flush()
    for chunk in _chunks(report.member_ids):
        linked = select(OrderMemberLink.order_id).where(in_values(OrderMemberLink.member_id, chunk, pg=pg))
        res = session.execute(update(Unit).where(Unit.order_id.in_(linked)).values(needs_tag=True))
        report.units_to_retag += getattr(res, "rowcount", 0) or 0
    return report


def erase_person(session: Session, digester: Digester, email: str) -> ErasureReport:
    """Remove every piece of personal data about the person with this e-mail address from
    every table; the member row stays pseudonymous (``erased_at`` set, exited now) with its
    warranty records and claims. Does not commit."""
    normalized = normalize_email(email) or ""
    return erase_digests(session, email_digests(digester, email), extra_needles=[normalized])


def erase_store(session: Session, store_key: str) -> ErasureReport:
    """Erase the personal data of every order of one store (``shop/redact``): digests and
    postal codes, and the kept payloads of its orders, deliveries and rejected records.
    Members are not per store and stay. Does not commit."""
    pg = session.get_bind().dialect.name == "postgresql"
    report = ErasureReport()
    keys = {
        (store_key, e)
        for (e,) in session.execute(select(Order.external_id).where(Order.store_key == store_key)).all()
    }
    report += _redact_orders(session, keys, [], pg)
    for err in session.execute(select(ImportError_).where(ImportError_.store_key == store_key)).scalars():
        err.raw = canonical_json(_erased(_loads(err.raw), source=err.source))
        report.import_errors += 1
    for delivery in session.execute(
        select(WebhookDelivery).where(WebhookDelivery.store_key == store_key)
    ).scalars():
        delivery.payload = _erased(delivery.payload, topic=delivery.topic)
        report.webhook_deliveries += 1
    for raw in session.execute(select(RawPayload).where(RawPayload.store_key == store_key)).scalars():
        raw.payload = _erased(raw.payload, source=raw.source)
    return report


def person_data(session: Session, digester: Digester, email: str) -> dict[str, Any]:
    """What the store holds about the person with this address, as JSON-ready data for ops
    to send (``customers/data_request``): member rows, orders with their lines and units'
    warranty windows, claims. The address itself is not stored, so it is not in the answer."""
    return person_data_by_digests(session, email_digests(digester, email))


def person_data_by_digests(session: Session, digests: Sequence[str]) -> dict[str, Any]:
    """:func:`person_data` for stored digests (a webhook's request carries only the digest)."""
    pg = session.get_bind().dialect.name == "postgresql"
    members = list(
        session.execute(select(Member).where(in_values(Member.email_hash, digests, pg=pg))).scalars()
    )
    member_ids = [m.id for m in members]
    order_q = select(Order).where(
        or_(
            in_values(Order.email_hash, digests, pg=pg),
            Order.id.in_(select(OrderMemberLink.order_id).where(OrderMemberLink.member_id.in_(member_ids))),
        )
        if member_ids
        else in_values(Order.email_hash, digests, pg=pg)
    )
    orders = list(session.execute(order_q.order_by(Order.id)).scalars())
    out_orders = []
    for o in orders:
        lines = session.execute(
            select(
                OrderLineRow.sku, OrderLineRow.title, OrderLineRow.quantity, OrderLineRow.refunded_quantity
            )
            .where(OrderLineRow.order_id == o.id)
            .order_by(OrderLineRow.id)
        ).all()
        units = session.execute(
            select(Unit.id, Unit.sku, Unit.ordinal, UnitTag, Claim.kind, Claim.claimed_on)
            .outerjoin(UnitTag, UnitTag.unit_id == Unit.id)
            .outerjoin(Claim, Claim.unit_id == Unit.id)
            .where(Unit.order_id == o.id)
            .order_by(Unit.id)
        ).all()
        out_orders.append(
            {
                "store": o.store_key,
                "order_id": o.external_id,
                "name": o.name,
                "purchase_date": o.purchase_date.isoformat(),
                "country": o.country,
                "postal_code": o.shipping_postal_code,
                "currency": o.currency,
                "total": str(o.total_amount) if o.total_amount is not None else None,
                "cancelled": o.is_cancelled,
                "lines": [
                    {
                        "sku": ln.sku,
                        "title": ln.title,
                        "quantity": ln.quantity,
                        "refunded": ln.refunded_quantity,
                    }
                    for ln in lines
                ],
                "units": [
                    {
                        "unit_id": u.id,
                        "sku": u.sku,
                        "ordinal": u.ordinal,
                        "eligible": u.UnitTag.eligible if u.UnitTag else None,
                        "original_warranty_end": _iso(u.UnitTag.original_warranty_end if u.UnitTag else None),
                        "extended_warranty_end": _iso(u.UnitTag.extended_warranty_end if u.UnitTag else None),
                        "trade_in_opens": _iso(u.UnitTag.trade_in_opens if u.UnitTag else None),
                        "benefit_status": u.UnitTag.benefit_status if u.UnitTag else None,
                        "claim": {"kind": u.kind, "claimed_on": _iso(u.claimed_on)} if u.kind else None,
                    }
                    for u in units
                ],
            }
        )
    return {
        "members": [
            {
                "member_id": m.id,
                "country": m.country,
                "registered_at": _iso(m.registered_at),
                "exited_at": _iso(m.exited_at),
                "source": m.source,
                "erased_at": _iso(m.erased_at),
            }
            for m in members
        ],
        "orders": out_orders,
        "note": "e-mail addresses are not stored; this store matches them by keyed digest only",
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
