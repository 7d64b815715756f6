"""Read and write queries of the customer-facing side: members, order ownership, proof
links, the units of an order with their tags and claims, proof decisions.

Every lookup is by an indexed key (a member's e-mail digest, an order's store and name, an
order id), so one proof of purchase costs a handful of index reads whatever the size of
the store. Nothing personal is read or returned: members are their pseudonymous id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from vipsync.store.models import (
    Claim,
    Member,
    Order,
    OrderMemberLink,
    ProofDecision,
    TradeInQuote,
    Unit,
    UnitTag,
    WarrantyExchange,
)

__all__ = [
    "OrderFacts",
    "find_orders",
    "member_by_digest",
    "member_unit_ids",
    "order_unit_states",
    "record_decision",
    "unit_answers",
]


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What a proof of purchase compares: an order's keys and its second factors, and the
    member it belongs to (``owner``), read in the same statement."""

    id: int
    source: str
    store_key: str
    name: str
    external_id: str
    email_hash: str | None
    postal_code: str | None
    country: str | None
    purchase_date: date
    owner: int | None = None


def _owner_col() -> Any:
    """The member each order belongs to, as a column: the first verified proof, else
    (web-store orders) the member whose e-mail digest is the order's."""
    linked = (
        select(OrderMemberLink.member_id)
        .where(OrderMemberLink.order_id == Order.id)
        .order_by(OrderMemberLink.verified_at, OrderMemberLink.id)
        .limit(1)
        .scalar_subquery()
    )
    by_email = select(Member.id).where(Member.email_hash == Order.email_hash).scalar_subquery()
    return func.coalesce(linked, case((Order.source != "amazon", by_email), else_=None))


_ORDER_COLS = (
    Order.id,
    Order.source,
    Order.store_key,
    Order.name,
    Order.external_id,
    Order.email_hash,
    Order.shipping_postal_code,
    Order.country,
    Order.purchase_date,
)


def _facts(rows: Any) -> list[OrderFacts]:
    return [OrderFacts(*r) for r in rows]


def find_orders(
    session: Session,
    *,
    names: dict[str, list[str]] | None = None,
    amazon_id: str | None = None,
    amazon_stores: Sequence[str] = (),
) -> list[OrderFacts]:
    """Orders by Shopify name per shop (``{store_key: [name, ...]}``) or by Amazon order id,
    each with its owner: one statement."""
    cols = (*_ORDER_COLS, _owner_col())
    if amazon_id is not None:
        q = select(*cols).where(Order.source == "amazon", Order.external_id == amazon_id)
        if amazon_stores:
            q = q.where(Order.store_key.in_(list(amazon_stores)))
        return _facts(session.execute(q.order_by(Order.id)))
    names = names or {}
    if not names:
        return []
    # One indexed query for every shop (store_key, name); a shop's own affixes are checked after.
    every = sorted({n for wanted in names.values() for n in wanted})
    q = select(*cols).where(Order.store_key.in_(list(names)), Order.name.in_(every))
    return [o for o in _facts(session.execute(q.order_by(Order.id))) if o.name in names[o.store_key]]


def member_by_digest(session: Session, email_hash: str) -> Member | None:
    return session.execute(select(Member).where(Member.email_hash == email_hash)).scalar_one_or_none()


def order_unit_states(session: Session, order_id: int) -> list[tuple[int, bool]]:
    """(unit id, whether it waits for its tag) of each unit of an order."""
    rows = session.execute(
        select(Unit.id, Unit.needs_tag).where(Unit.order_id == order_id).order_by(Unit.id)
    ).all()
    return [(int(uid), bool(pending)) for uid, pending in rows]


def member_unit_ids(session: Session, member: Member) -> list[int]:
    """The units of every order the member owns (by e-mail for web-store orders, or by a
    verified proof of purchase)."""
    owned = select(OrderMemberLink.order_id).where(OrderMemberLink.member_id == member.id)
    cond: Any = Unit.order_id.in_(owned)
    if member.email_hash:
        by_email = select(Order.id).where(Order.email_hash == member.email_hash, Order.source != "amazon")
        cond = or_(cond, Unit.order_id.in_(by_email))
    return [int(u) for u in session.execute(select(Unit.id).where(cond).order_by(Unit.id)).scalars()]


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def unit_answers(session: Session, unit_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Each unit with its tag (windows, reasons, ``benefit_status``), its claim with the
    replacement's cover, and its ordinary warranty exchanges; no personal data."""
    if not unit_ids:
        return []
    ids = list(unit_ids)
    rows = session.execute(
        select(
            Unit.id,
            Unit.store_key,
            Unit.order_external_id,
            Unit.sku,
            Unit.ordinal,
            UnitTag.policy_version,
            UnitTag.eligible,
            UnitTag.reasons,
            UnitTag.purchase_date,
            UnitTag.original_warranty_end,
            UnitTag.registration_deadline,
            UnitTag.extended_warranty_end,
            UnitTag.trade_in_opens,
            UnitTag.benefit_status,
            UnitTag.member_id,
            Claim.kind,
            Claim.claimed_on,
            Claim.ship_date,
            Claim.replacement_cover_end,
        )
        .outerjoin(UnitTag, UnitTag.unit_id == Unit.id)
        .outerjoin(Claim, Claim.unit_id == Unit.id)
        .where(Unit.id.in_(ids))
        .order_by(Unit.id)
    ).all()
    exchanges: dict[int, list[dict[str, Any]]] = {}
    for uid, requested, ship, cover in session.execute(
        select(
            WarrantyExchange.unit_id,
            WarrantyExchange.requested_on,
            WarrantyExchange.ship_date,
            WarrantyExchange.replacement_cover_end,
        )
        .where(WarrantyExchange.unit_id.in_(ids))
        .order_by(WarrantyExchange.id)
    ):
        exchanges.setdefault(uid, []).append(
            {"requested_on": _iso(requested), "ship_date": _iso(ship), "replacement_cover_end": _iso(cover)}
        )
    out = []
    for r in rows:
        claim = None
        if r.kind is not None:
            claim = {
                "kind": r.kind,
                "claimed_on": _iso(r.claimed_on),
                "ship_date": _iso(r.ship_date),
                "replacement_cover_end": _iso(r.replacement_cover_end),
            }
        # A recorded claim always shows, whatever the tag says later.
        status = r.benefit_status
        if claim is not None and status in (None, "member_exited", "not_member", "available"):
            status = f"{claim['kind']}_used"
        out.append(
            {
                "unit_id": r.id,
                "store": r.store_key,
                "order_id": r.order_external_id,
                "sku": r.sku,
                "ordinal": r.ordinal,
                "policy_version": r.policy_version,
                "eligible": r.eligible,
                "reasons": list(r.reasons or []),
                "purchase_date": _iso(r.purchase_date),
                "original_warranty_end": _iso(r.original_warranty_end),
                "registration_deadline": _iso(r.registration_deadline),
                "extended_warranty_end": _iso(r.extended_warranty_end),
                "trade_in_opens": _iso(r.trade_in_opens),
                "benefit_status": status,
                "member": r.member_id,
                "claim": claim,
                "warranty_exchanges": exchanges.get(r.id, []),
            }
        )
    return out


def record_decision(
    session: Session,
    *,
    client: str,
    method: str,
    outcome: str,
    reason: str,
    now: datetime,
    order_id: int | None = None,
    store_key: str | None = None,
    member_id: int | None = None,
) -> None:
    session.add(
        ProofDecision(
            decided_at=now,
            client=client,
            order_id=order_id,
            store_key=store_key,
            member_id=member_id,
            method=method,
            outcome=outcome,
            reason=reason,
        )
    )


def open_quote_by_code(session: Session, code: str) -> TradeInQuote | None:
    return session.execute(select(TradeInQuote).where(TradeInQuote.code == code)).scalar_one_or_none()
