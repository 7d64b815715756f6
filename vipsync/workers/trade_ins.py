"""Trade-in codes on arriving orders (POLICY.md, Trade-in).

:func:`apply_trade_in_codes` reads the web-store orders stored or changed since its last
run (a cursor on ``orders.updated_at``) and, for each trade-in code (``TI-...``) an order
carries (in the order attribute the website writes it into, or as a discount code):
- a valid open quote, the order placed before the quote expires, the unit's benefit still
  available and the unit still the quote's member's: the trade-in claim is recorded,
  dated by the new order's purchase date in the old unit's store zone, and the quote is
  ``used``; another discount on the order (another code, a line discount beyond the
  trade-in's) flags it for ops, and the claim is still recorded;
- an unknown, expired, used or released code, or a unit whose benefit was used meanwhile
  or that belongs to another member: flagged for ops, nothing recorded.
An order whose quote was used and that is now cancelled or fully refunded releases the
claim (deleted; the quote becomes ``released``, a dead code; the unit may be quoted again).

Flags are rows of the error table (source ``trade-in``) with the order's id and field.
The job is idempotent: a code already applied to its order is not applied again.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select

from vipsync.eligibility.calendar import local_date
from vipsync.store.models import Claim, Order, OrderLineRow, TradeInQuote
from vipsync.store.repository import Repository
from vipsync.workers.claims import CODE_PREFIX
from vipsync.workers.tagging import Rules, cached_rules, tag_units_now, verdicts_for_units

__all__ = ["TradeInResult", "apply_trade_in_codes"]

log = logging.getLogger(__name__)

CURSOR = ("*", "trade-in-codes")
SOURCE = "trade-in"


@dataclass
class TradeInResult:
    orders_read: int = 0
    recorded: int = 0
    released: int = 0
    flagged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _codes(order: Order) -> list[str]:
    """The order's codes: its discount codes, then the trade-in codes the website wrote into
    the order attribute (POLICY.md: "the website puts the code on the new order"), once each."""
    found: list[str] = []
    for codes in (order.discount_codes, order.trade_in_codes):
        for c in codes if isinstance(codes, list) else []:
            code = str(c).strip().upper() if isinstance(c, str | int) else ""
            if code and code not in found:
                found.append(code)
    return found


def _fully_refunded(session, order: Order) -> bool:
    if (order.financial_status or "").lower() == "refunded":
        return True
    qty, refunded = session.execute(
        select(
            func.coalesce(func.sum(OrderLineRow.quantity), 0),
            func.coalesce(func.sum(OrderLineRow.refunded_quantity), 0),
        ).where(OrderLineRow.order_id == order.id)
    ).one()
    return int(qty) > 0 and int(refunded) >= int(qty)


def _flag(repo: Repository, order: Order, message: str, result: TradeInResult) -> None:
    result.flagged += 1
    repo.record_error(
        source=SOURCE,
        store_key=order.store_key,
        record_id=f"order:{order.external_id}",
        field="discount_codes",
        message=message,
        raw={"order_id": order.id, "store": order.store_key, "name": order.name},
    )


def _release(session, rules: Rules, order: Order, result: TradeInResult, now: datetime) -> None:
    for quote in session.execute(
        select(TradeInQuote).where(TradeInQuote.order_id == order.id, TradeInQuote.status == "used")
    ).scalars():
        session.execute(delete(Claim).where(Claim.quote_id == quote.id))
        quote.status, quote.updated_at = "released", now
        tag_units_now(session, rules, [quote.unit_id])
        result.released += 1


def _apply(
    session, rules: Rules, repo: Repository, order: Order, code: str, result: TradeInResult, now: datetime
) -> None:
    quote = session.execute(select(TradeInQuote).where(TradeInQuote.code == code)).scalar_one_or_none()
    if quote is not None and quote.order_id == order.id:
        return  # applied on an earlier run
    if quote is None:
        _flag(repo, order, f"trade-in code {code} is unknown: nothing recorded", result)
        return
    if quote.status != "open":
        _flag(repo, order, f"trade-in code {code} is {quote.status}: nothing recorded", result)
        return
    if order.purchase_date >= quote.expires_on:
        _flag(
            repo,
            order,
            f"trade-in code {code} expired {quote.expires_on.isoformat()}: nothing recorded",
            result,
        )
        return
    verdict = verdicts_for_units(session, rules, [quote.unit_id]).get(quote.unit_id)
    if verdict is None or verdict.member_id != quote.member_id:
        _flag(
            repo, order, f"trade-in code {code}: the unit belongs to another member: nothing recorded", result
        )
        return
    if verdict.benefit_status != "available":
        _flag(
            repo,
            order,
            f"trade-in code {code}: the unit's benefit is {verdict.benefit_status}: nothing recorded",
            result,
        )
        return
    old_zone = rules.zone(*_unit_store(session, quote.unit_id))
    session.add(
        Claim(
            unit_id=quote.unit_id,
            kind="trade_in",
            claimed_on=local_date(order.purchased_at, old_zone),
            policy_version=quote.policy_version,
            created_at=now,
            member_id=quote.member_id,
            quote_id=quote.id,
            recorded_by="order",
        )
    )
    quote.status, quote.order_id, quote.updated_at = "used", order.id, now
    session.flush()
    tag_units_now(session, rules, [quote.unit_id])
    result.recorded += 1
    other_codes = [c for c in _codes(order) if c != code]
    line_discounts = session.execute(
        select(func.coalesce(func.sum(OrderLineRow.discount), 0)).where(OrderLineRow.order_id == order.id)
    ).scalar_one()
    if other_codes or Decimal(line_discounts or 0) > quote.discount:
        _flag(repo, order, f"trade-in code {code} is stacked with another discount (claim recorded)", result)


def _unit_store(session, unit_id: int) -> tuple[str, str | None]:
    from vipsync.store.models import Unit

    row = session.execute(
        select(Order.store_key, Order.marketplace_id)
        .join(Unit, Unit.order_id == Order.id)
        .where(Unit.id == unit_id)
    ).one()
    return row.store_key, row.marketplace_id


def apply_trade_in_codes(ctx, *, now: datetime | None = None) -> TradeInResult:
    """Apply and release trade-in codes of the orders changed since the last run."""
    now = now or _utcnow()
    result = TradeInResult()
    rules = cached_rules(ctx)
    with ctx.session_factory() as session:
        repo = Repository(session)
        cur = repo.get_cursor(*CURSOR)
        since = datetime.fromisoformat(cur.value) if cur is not None and cur.value else None
        q = select(Order).where(Order.source == "shopify").order_by(Order.updated_at, Order.id)
        if since is not None:
            q = q.where(Order.updated_at > since)
        newest = since
        for order in session.execute(q).scalars():
            result.orders_read += 1
            newest = order.updated_at if newest is None or order.updated_at > newest else newest
            if order.is_cancelled or _fully_refunded(session, order):
                _release(session, rules, order, result, now)
                continue
            for code in _codes(order):
                if code.startswith(CODE_PREFIX):
                    _apply(session, rules, repo, order, code, result, now)
        repo.set_cursor(*CURSOR, newest.isoformat() if newest else None)
        session.commit()
    log.info("trade-in codes applied", extra=result.as_dict())
    return result
