"""Read and write queries of the customer-facing side: members, order ownership, proof
links, the units of an order with their tags and claims, proof decisions.

Every lookup is by an indexed key (a member's e-mail digest, an order's store and name, an
order id), so one proof of purchase costs a handful of index reads whatever the size of
the store. Nothing personal is read or returned: members are their pseudonymous id.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import cache
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from vipsync.store.db import PREPARED
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
    table_of,
)

__all__ = [
    "OrderFacts",
    "find_orders",
    "link_order",
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
    # Its units' answers (:func:`order_unit_answers`) when the statement read them too.
    answers: tuple[list[dict[str, Any]], bool] | None = None


_O = table_of(Order)
_M = table_of(Member)
_L = table_of(OrderMemberLink)


def _owner_col() -> Any:
    """The member each order belongs to, as a column: the first verified proof, else
    (web-store orders) the member whose e-mail digest is the order's."""
    linked = (
        select(_L.c.member_id)
        .where(_L.c.order_id == _O.c.id)
        .order_by(_L.c.verified_at, _L.c.id)
        .limit(1)
        .correlate(_O)
        .scalar_subquery()
    )
    # Its own alias: the statement may read the presenting member from ``members`` too.
    owner = _M.alias("owner")
    by_email = select(owner.c.id).where(owner.c.email_hash == _O.c.email_hash).correlate(_O).scalar_subquery()
    return func.coalesce(linked, case((_O.c.source != "amazon", by_email), else_=None))


_ORDER_COLS = (
    _O.c.id,
    _O.c.source,
    _O.c.store_key,
    _O.c.name,
    _O.c.external_id,
    _O.c.email_hash,
    _O.c.shipping_postal_code,
    _O.c.country,
    _O.c.purchase_date,
)


def _connection(db: Session | Connection) -> Connection:
    """The connection a statement runs on: a session's, or the one given (a proof's reads
    and decisions run on an autocommit connection, outside any session)."""
    return db if isinstance(db, Connection) else db.connection()


def _facts(rows: Any) -> list[OrderFacts]:
    return [OrderFacts(*r) for r in rows]


# The statements of a proof are built once, their values bound at each call: building a
# SELECT with correlated subqueries cost more than running it (bench/proofs_bench.py).
# On PostgreSQL they are prepared statements (PREPARED): planning them cost more than
# running them too.
_LOOKUPS = ("names", "amazon", "amazon_in_stores")


def _order_filter(lookup: str) -> Any:
    """The condition of :func:`find_orders` for one kind of lookup, with bound values:
    ``stores`` and ``names`` (expanding), ``amazon_id``."""
    if lookup == "names":
        # One indexed query for every shop (store_key, name); a shop's own affixes are checked after.
        return and_(
            _O.c.store_key.in_(bindparam("stores", expanding=True)),
            _O.c.name.in_(bindparam("names", expanding=True)),
        )
    cond = and_(_O.c.source == "amazon", _O.c.external_id == bindparam("amazon_id"))
    if lookup == "amazon_in_stores":
        cond = and_(cond, _O.c.store_key.in_(bindparam("stores", expanding=True)))
    return cond


def _lookup(
    names: dict[str, list[str]] | None, amazon_id: str | None, amazon_stores: Sequence[str]
) -> tuple[str, dict[str, Any]] | None:
    """Which lookup and its values (None: no order can match)."""
    if amazon_id is not None:
        if amazon_stores:
            return "amazon_in_stores", {"amazon_id": amazon_id, "stores": list(amazon_stores)}
        return "amazon", {"amazon_id": amazon_id}
    if not names:
        return None
    return "names", {"stores": list(names), "names": sorted({n for wanted in names.values() for n in wanted})}


@cache
def _orders_statement(lookup: str) -> Any:
    return (
        select(*_ORDER_COLS, _owner_col())
        .where(_order_filter(lookup))
        .order_by(_O.c.id)
        .execution_options(**PREPARED)
    )


@cache
def _member_orders_statement(lookup: str | None) -> Any:
    anchor = select(literal(1).label("one")).subquery("anchor")
    member_cols = (_M.c.id, _M.c.registered_at, _M.c.exited_at, _M.c.erased_at)
    q = select(*member_cols).select_from(anchor).outerjoin(_M, _M.c.email_hash == bindparam("member_hash"))
    if lookup is not None:
        q = q.add_columns(*_ORDER_COLS, _owner_col(), *_ANSWER_COLS).outerjoin(_O, _order_filter(lookup))
        q = _answer_joins(q.outerjoin(_U, _U.c.order_id == _O.c.id)).order_by(_O.c.id, _U.c.id, _X.c.id)
    return q.execution_options(**PREPARED)


def _kept(found: list[OrderFacts], names: dict[str, list[str]] | None) -> list[OrderFacts]:
    return found if names is None else [o for o in found if o.name in names.get(o.store_key, ())]


def find_orders(
    db: Session | Connection,
    *,
    names: dict[str, list[str]] | None = None,
    amazon_id: str | None = None,
    amazon_stores: Sequence[str] = (),
) -> list[OrderFacts]:
    """Orders by Shopify name per shop (``{store_key: [name, ...]}``) or by Amazon order id,
    each with its owner: one statement."""
    found = _lookup(names, amazon_id, amazon_stores)
    if found is None:
        return []
    lookup, values = found
    rows = _connection(db).execute(_orders_statement(lookup), values)
    return _kept(_facts(rows), None if amazon_id is not None else names)


@dataclass(frozen=True, slots=True)
class MemberState:
    """What a proof needs of the member presenting it."""

    id: int
    registered_at: date | None
    exited_at: date | None
    erased_at: datetime | None


def member_and_orders(
    db: Session | Connection,
    member_hash: str,
    *,
    names: dict[str, list[str]] | None = None,
    amazon_id: str | None = None,
    amazon_stores: Sequence[str] = (),
) -> tuple[MemberState | None, list[OrderFacts]]:
    """The member with this e-mail digest and :func:`find_orders`, each order with its
    units' answers, in one statement: a row anchors the member (absent: nulls), the
    matching orders join it, their units join them."""
    found = _lookup(names, amazon_id, amazon_stores)
    lookup, values = found if found is not None else (None, {})
    statement = _member_orders_statement(lookup)
    rows: list[Any] = list(_connection(db).execute(statement, {**values, "member_hash": member_hash}).all())
    first = rows[0] if rows else None
    member = MemberState(*first[:4]) if first is not None and first[0] is not None else None
    if lookup is None:
        return member, []
    cut = 4 + len(_ORDER_COLS) + 1  # member, order, owner, then the answer's columns
    orders: list[OrderFacts] = []
    for _, group in groupby((r for r in rows if r[4] is not None), key=itemgetter(4)):
        order_rows = list(group)
        head = order_rows[0]
        answers = _answers([r[cut:] for r in order_rows if r[cut] is not None])
        orders.append(replace(OrderFacts(*head[4:cut]), answers=answers))
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


_U = table_of(Unit)
_T = table_of(UnitTag)
_C = table_of(Claim)
_X = table_of(WarrantyExchange)


# A unit's answer: the unit, its tag, its claim, its ordinary exchanges (one row each).
_ANSWER_COLS = (
    _U.c.id,
    _U.c.store_key,
    _U.c.order_external_id,
    _U.c.sku,
    _U.c.ordinal,
    _U.c.needs_tag,
    _T.c.policy_version,
    _T.c.eligible,
    _T.c.reasons,
    _T.c.purchase_date,
    _T.c.original_warranty_end,
    _T.c.registration_deadline,
    _T.c.extended_warranty_end,
    _T.c.trade_in_opens,
    _T.c.benefit_status,
    _T.c.member_id,
    _C.c.kind,
    _C.c.claimed_on,
    _C.c.ship_date,
    _C.c.replacement_cover_end,
    _X.c.requested_on.label("exchange_requested_on"),
    _X.c.ship_date.label("exchange_ship_date"),
    _X.c.replacement_cover_end.label("exchange_cover_end"),
)
# A row of those columns with their names (the answer statement's own rows, or a slice of
# the member-and-orders statement's).
_answer_row: Callable[[Sequence[Any]], Any] = namedtuple(  # type: ignore[attr-defined]
    "_AnswerRow", [c.name for c in _ANSWER_COLS]
)._make


def _answer_joins(q: Any) -> Any:
    """``q``, which reads ``units``, joined to their tags, claims and ordinary exchanges."""
    return (
        q.outerjoin(_T, _T.c.unit_id == _U.c.id)
        .outerjoin(_C, _C.c.unit_id == _U.c.id)
        .outerjoin(_X, _X.c.unit_id == _U.c.id)
    )


@cache
def _answers_statement(by: str) -> Any:
    """The units of one order (``by="order"``, bound ``order_id``) or of a list of units
    (``by="units"``, bound ``unit_ids``), with their tags, claims and ordinary exchanges."""
    where = (
        _U.c.order_id == bindparam("order_id")
        if by == "order"
        else _U.c.id.in_(bindparam("unit_ids", expanding=True))
    )
    return (
        _answer_joins(select(*_ANSWER_COLS).select_from(_U))
        .where(where)
        .order_by(_U.c.id, _X.c.id)
        .execution_options(**PREPARED)
    )


def unit_answers(session: Session, unit_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Each unit with its tag (windows, reasons, ``benefit_status``), its claim with the
    replacement's cover, and its ordinary warranty exchanges; no personal data."""
    if not unit_ids:
        return []
    return _read_answers(session, "units", {"unit_ids": list(unit_ids)})[0]


def order_unit_answers(session: Session, order_id: int) -> tuple[list[dict[str, Any]], bool]:
    """:func:`unit_answers` of every unit of an order, and whether their tags are current
    (none waits for its tag, none was never tagged): one statement."""
    return _read_answers(session, "order", {"order_id": order_id})


def _read_answers(
    db: Session | Connection, by: str, values: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    return _answers(_connection(db).execute(_answers_statement(by), values))


def _answers(rows: Any) -> tuple[list[dict[str, Any]], bool]:
    """The answers of rows of the answer's columns, and whether every tag is current."""
    out: list[dict[str, Any]] = []
    current = True
    last: dict[str, Any] | None = None
    for r in map(_answer_row, rows):
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


_DECISION = insert(table_of(ProofDecision)).execution_options(**PREPARED)
_LINK = insert(_L).execution_options(**PREPARED)


def record_decision(
    db: Session | Connection,
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
    _connection(db).execute(
        _DECISION,
        {
            "decided_at": now,
            "client": client,
            "order_id": order_id,
            "store_key": store_key,
            "member_id": member_id,
            "method": method,
            "outcome": outcome,
            "reason": reason,
        },
    )


def link_order(session: Session, *, order_id: int, member_id: int, method: str, now: datetime) -> None:
    """A verified proof: the order is the member's (unless an earlier link names another)."""
    session.connection().execute(
        _LINK, {"order_id": order_id, "member_id": member_id, "method": method, "verified_at": now}
    )


def open_quote_by_code(session: Session, code: str) -> TradeInQuote | None:
    return session.execute(select(TradeInQuote).where(TradeInQuote.code == code)).scalar_one_or_none()
