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

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

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
    "member_and_orders",
    "member_by_digest",
    "member_unit_ids",
    "order_unit_answers",
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
        .correlate(Order)
        .scalar_subquery()
    )
    # Its own alias: the statement may read the presenting member from ``members`` too.
    owner = aliased(Member)
    by_email = select(owner.id).where(owner.email_hash == Order.email_hash).correlate(Order).scalar_subquery()
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


def _order_filter(
    names: dict[str, list[str]] | None, amazon_id: str | None, amazon_stores: Sequence[str]
) -> Any:
    """The condition of :func:`find_orders` (None: no order can match)."""
    if amazon_id is not None:
        cond = and_(Order.source == "amazon", Order.external_id == amazon_id)
        return and_(cond, Order.store_key.in_(list(amazon_stores))) if amazon_stores else cond
    if not names:
        return None
    # One indexed query for every shop (store_key, name); a shop's own affixes are checked after.
    every = sorted({n for wanted in names.values() for n in wanted})
    return and_(Order.store_key.in_(list(names)), Order.name.in_(every))


def _kept(rows: Any, names: dict[str, list[str]] | None) -> list[OrderFacts]:
    found = _facts(rows)
    return found if names is None else [o for o in found if o.name in names.get(o.store_key, ())]


def find_orders(
    session: Session,
    *,
    names: dict[str, list[str]] | None = None,
    amazon_id: str | None = None,
    amazon_stores: Sequence[str] = (),
) -> list[OrderFacts]:
    """Orders by Shopify name per shop (``{store_key: [name, ...]}``) or by Amazon order id,
    each with its owner: one statement."""
    cond = _order_filter(names, amazon_id, amazon_stores)
    if cond is None:
        return []
    q = select(*_ORDER_COLS, _owner_col()).where(cond).order_by(Order.id)
    return _kept(session.execute(q), None if amazon_id is not None else names)


@dataclass(frozen=True, slots=True)
class MemberState:
    """What a proof needs of the member presenting it."""

    id: int
    registered_at: date | None
    exited_at: date | None
    erased_at: datetime | None


def member_and_orders(
    session: Session,
    member_hash: str,
    *,
    names: dict[str, list[str]] | None = None,
    amazon_id: str | None = None,
    amazon_stores: Sequence[str] = (),
) -> tuple[MemberState | None, list[OrderFacts]]:
    """The member with this e-mail digest and :func:`find_orders`, in one statement: a row
    anchors the member (absent: nulls), the matching orders join it."""
    anchor = select(literal(1).label("one")).subquery("anchor")
    member_cols = (Member.id, Member.registered_at, Member.exited_at, Member.erased_at)
    cond = _order_filter(names, amazon_id, amazon_stores)
    q = select(*member_cols).select_from(anchor).outerjoin(Member, Member.email_hash == member_hash)
    if cond is not None:
        q = q.add_columns(*_ORDER_COLS, _owner_col()).outerjoin(Order, cond).order_by(Order.id)
    rows: list[Any] = list(session.execute(q).all())
    first = rows[0] if rows else None
    member = MemberState(*first[:4]) if first is not None and first[0] is not None else None
    if cond is None:
        return member, []
    orders = [r[4:] for r in rows if r[4] is not None]
    return member, _kept(orders, None if amazon_id is not None else names)


def member_by_digest(session: Session, email_hash: str) -> Member | None:
    return session.execute(select(Member).where(Member.email_hash == email_hash)).scalar_one_or_none()


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


_ANSWER_COLS = (
    Unit.id,
    Unit.store_key,
    Unit.order_external_id,
    Unit.sku,
    Unit.ordinal,
    Unit.needs_tag,
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
    WarrantyExchange.requested_on.label("exchange_requested_on"),
    WarrantyExchange.ship_date.label("exchange_ship_date"),
    WarrantyExchange.replacement_cover_end.label("exchange_cover_end"),
)


def unit_answers(session: Session, unit_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Each unit with its tag (windows, reasons, ``benefit_status``), its claim with the
    replacement's cover, and its ordinary warranty exchanges; no personal data."""
    if not unit_ids:
        return []
    return _answers(session, Unit.id.in_(list(unit_ids)))[0]


def order_unit_answers(session: Session, order_id: int) -> tuple[list[dict[str, Any]], bool]:
    """:func:`unit_answers` of every unit of an order, and whether their tags are current
    (none waits for its tag, none was never tagged): one statement."""
    return _answers(session, Unit.order_id == order_id)


def _answers(session: Session, where: Any) -> tuple[list[dict[str, Any]], bool]:
    rows = session.execute(
        select(*_ANSWER_COLS)
        .outerjoin(UnitTag, UnitTag.unit_id == Unit.id)
        .outerjoin(Claim, Claim.unit_id == Unit.id)
        .outerjoin(WarrantyExchange, WarrantyExchange.unit_id == Unit.id)
        .where(where)
        .order_by(Unit.id, WarrantyExchange.id)
    ).all()
    out: list[dict[str, Any]] = []
    current = True
    last: dict[str, Any] | None = None
    for r in rows:
        if last is None or last["unit_id"] != r.id:
            last = _answer(r)
            out.append(last)
            current = current and not r.needs_tag and r.policy_version is not None
        if r.exchange_requested_on is not None:
            last["warranty_exchanges"].append(
                {
                    "requested_on": _iso(r.exchange_requested_on),
                    "ship_date": _iso(r.exchange_ship_date),
                    "replacement_cover_end": _iso(r.exchange_cover_end),
                }
            )
    return out, current


def _answer(r: Any) -> dict[str, Any]:
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
    return {
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
        "warranty_exchanges": [],
    }


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
