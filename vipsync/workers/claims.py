"""Claims: one VIP benefit per unit (an exchange or a trade-in), ordinary warranty
exchanges, trade-in quotes and the trade-in codes that arrive on new orders.

A claim is judged on the unit's current facts and its policy version, with membership as
of the claim's date (a claim dated before the member's exit but recorded after it is
allowed). The day is the one the customer's request was opened: no later than today in
the unit's store zone, earlier than ``claim_backdate_days`` only with a support reason.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vipsync.eligibility.calendar import add_days, local_date
from vipsync.eligibility.claims import (
    check_claim,
    refuse_replacement_unit,
    replacement_coverage_end,
    trade_in_discount,
)
from vipsync.eligibility.engine import MemberFacts, UnitFacts, Verdict, evaluate
from vipsync.eligibility.refunds import FactRow, LineRow, after_sale
from vipsync.errors import BenefitAlreadyUsed, EligibilityError, RecordError
from vipsync.store.customers import member_by_digest, unit_answers
from vipsync.store.models import (
    Claim,
    Member,
    Order,
    OrderFactRow,
    OrderLineRow,
    TradeInQuote,
    Unit,
    WarrantyExchange,
)
from vipsync.workers.members import email_digest_of
from vipsync.workers.tagging import Rules, cached_rules, tag_units_now, verdicts_for_units

__all__ = [
    "CLAIM_KINDS",
    "UnitNotFound",
    "minor_unit",
    "quote_trade_in",
    "record_claim",
]

CLAIM_KINDS = ("exchange", "trade_in", "warranty_exchange")
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "CLP", "ISK", "HUF", "TWD", "VND"})
CODE_PREFIX = "TI-"


class UnitNotFound(RecordError):
    """No unit has this id."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def minor_unit(currency: str) -> Decimal:
    """The currency's minor unit (no decimals for JPY)."""
    return Decimal(1) if currency.upper() in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")


@dataclass(frozen=True)
class _UnitContext:
    unit: Any
    order: Any
    verdict: Verdict
    zone: Any


def _unit_context(session, rules: Rules, unit_id: int) -> _UnitContext:
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise UnitNotFound("no unit has this id", record_id=f"unit:{unit_id}", field="unit_id")
    order = session.get(Order, unit.order_id)
    verdict = verdicts_for_units(session, rules, [unit_id])[unit_id]
    return _UnitContext(unit, order, verdict, rules.zone(order.store_key, order.marketplace_id))


def _as_of_claim_date(session, rules: Rules, ctxu: _UnitContext, on: date) -> Verdict:
    """The verdict with membership as of ``on``: an exit after that date does not count."""
    v = ctxu.verdict
    if v.benefit_status != "member_exited" or v.member_id is None:
        return v
    member = session.get(Member, v.member_id)
    exited = local_date(member.exited_ts, ctxu.zone) if member.exited_ts else member.exited_at
    registered = local_date(member.registered_ts, ctxu.zone) if member.registered_ts else member.registered_at
    if exited is None or exited <= on:
        return v
    facts = UnitFacts(
        purchase_date=v.purchase_date,
        country=v.country,
        category=v.category,
        official=True,  # an eligible verdict passed every scope rule
        member=MemberFacts(member.id, registered, None),
    )
    return evaluate(facts, rules.policies.get(v.policy_version))


def _check_day(ctx, ctxu: _UnitContext, on: date, reason: str | None, now: datetime, *, field: str) -> None:
    today = local_date(now, ctxu.zone)
    if on > today:
        raise RecordError(
            f"a claim cannot be dated after today ({today.isoformat()} in the store's zone)", field=field
        )
    if on < today - timedelta(days=ctx.settings.claim_backdate_days) and not (reason or "").strip():
        raise RecordError(
            f"a request opened more than {ctx.settings.claim_backdate_days} days ago needs a support reason",
            field="reason",
        )


def _covers(session, unit_id: int, verdict: Verdict) -> date | None:
    """The end of the ordinary cover: the original warranty, or any replacement's cover."""
    ends = [verdict.original_warranty_end] if verdict.original_warranty_end else []
    claim_end = session.execute(
        select(Claim.replacement_cover_end).where(Claim.unit_id == unit_id)
    ).scalar_one_or_none()
    if claim_end is not None:
        ends.append(claim_end)
    ends.extend(
        session.execute(
            select(WarrantyExchange.replacement_cover_end).where(WarrantyExchange.unit_id == unit_id)
        ).scalars()
    )
    return max(ends) if ends else None


def record_claim(
    ctx,
    *,
    unit_id: int,
    kind: str,
    on: date,
    ship_date: date | None = None,
    reason: str | None = None,
    recorded_by: str = "cli",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record an exchange, a trade-in or an ordinary warranty exchange on a unit. Raises
    BenefitAlreadyUsed (a second benefit), EligibilityError (any other rule) or RecordError."""
    now = now or _utcnow()
    if kind not in CLAIM_KINDS:
        raise RecordError(f"one of {', '.join(CLAIM_KINDS)}", field="kind")
    if ship_date is not None and ship_date < on:
        raise RecordError("the replacement cannot ship before the request date", field="ship_date")
    if reason is not None and len(reason) > 500:
        raise RecordError("a reason of at most 500 characters", field="reason")
    rules = cached_rules(ctx)
    with ctx.session_factory() as session:
        ctxu = _unit_context(session, rules, unit_id)
        _check_day(ctx, ctxu, on, reason, now, field="on")
        verdict = _as_of_claim_date(session, rules, ctxu, on)
        ship = ship_date or on
        if kind in ("exchange", "warranty_exchange"):
            cover = _covers(session, unit_id, verdict) if verdict.valid_purchase else None
            if cover is not None and on < cover and on >= verdict.purchase_date:
                # Ordinary warranty service: uses nothing, never counts as "already used".
                end = max(
                    add_days(ship, rules.policies.get(verdict.policy_version).exchange.replacement_days + 1),
                    cover,
                )
                session.add(
                    WarrantyExchange(
                        unit_id=unit_id,
                        requested_on=on,
                        ship_date=ship,
                        replacement_cover_end=end,
                        recorded_by=recorded_by,
                        reason=reason,
                        created_at=now,
                    )
                )
                session.flush()
                tag_units_now(session, rules, [unit_id])
                answer = _answer(session, unit_id)
                session.commit()
                return {"recorded": "warranty_exchange", "uses_benefit": False, "unit": answer}
            if kind == "warranty_exchange":
                refuse_replacement_unit(verdict)
                if not verdict.valid_purchase:
                    raise EligibilityError("not a valid purchase: " + ", ".join(verdict.reasons))
                raise EligibilityError(
                    "outside the original warranty and any replacement's cover: a VIP exchange (kind exchange) may apply"
                )
        policy = rules.policies.get(verdict.policy_version)
        decision = check_claim(verdict, kind, on, policy)
        cover_end = None
        if kind == "exchange":
            assert verdict.extended_warranty_end is not None
            cover_end = replacement_coverage_end(
                ship, verdict.extended_warranty_end, replacement_days=policy.exchange.replacement_days
            )
        session.add(
            Claim(
                unit_id=unit_id,
                kind=decision.kind,
                claimed_on=on,
                policy_version=policy.version,
                created_at=now,
                ship_date=ship if kind == "exchange" else None,
                replacement_cover_end=cover_end,
                member_id=verdict.member_id,
                recorded_by=recorded_by,
                reason=reason,
            )
        )
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            raise BenefitAlreadyUsed(
                "the unit has already used its one benefit; a unit gets one exchange or one trade-in"
            ) from None
        tag_units_now(session, rules, [unit_id])
        answer = _answer(session, unit_id)
        session.commit()
    return {"recorded": kind, "uses_benefit": True, "unit": answer}


def _answer(session, unit_id: int) -> dict[str, Any]:
    return unit_answers(session, [unit_id])[0]


# ---------------------------------------------------------------------- trade-in quotes
def _spread(total: int, n: int) -> list[int]:
    """``total`` minor units divided equally among ``n`` units, the remainder to the first."""
    base, rest = divmod(total, n)
    return [base + 1] * rest + [base] * (n - rest)


def _amount_paid(session, unit, order, currency: str) -> Decimal:
    """ "Amount paid" of the TESmart ID terms (POLICY.md): the unit's share of its line after
    every discount allocation, minus money refunds. A line's amount is divided equally among
    its units in minor units, the remainder to the lowest ordinals; a money refund (one that
    takes no unit) is spread the same way over its line's units, or over every unit of the
    order when it names no line."""
    minor = minor_unit(currency)

    def minor_units(value: Decimal) -> int:
        return int((value / minor).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    lines = session.execute(
        select(
            OrderLineRow.line_key,
            OrderLineRow.sku,
            OrderLineRow.unit_price,
            OrderLineRow.discount,
            OrderLineRow.quantity,
        )
        .where(OrderLineRow.order_id == unit.order_id)
        .order_by(OrderLineRow.id)
    ).all()
    # The unit's line: ordinals run 1..n per SKU in line order.
    seen_of_sku = 0
    position = 0  # the unit's place among every unit of the order
    found = None
    for line in lines:
        qty = max(int(line.quantity or 0), 0)
        if found is None and line.sku == unit.sku and seen_of_sku < unit.ordinal <= seen_of_sku + qty:
            found = (line, unit.ordinal - seen_of_sku - 1)
            position += unit.ordinal - seen_of_sku - 1
        elif found is None:
            position += qty
        if line.sku == unit.sku:
            seen_of_sku += qty
    if found is None or found[0].unit_price is None:
        raise EligibilityError("the amount paid for this unit is not known: ops decides the quote")
    line, index = found
    qty = int(line.quantity)
    total = Decimal(line.unit_price) * qty - Decimal(line.discount or 0)
    paid = _spread(minor_units(total), qty)[index]
    order_units = sum(max(int(r.quantity or 0), 0) for r in lines)
    line_keys = {r.line_key for r in lines}
    prices = [LineRow(r.line_key, r.sku, int(r.quantity or 0), r.unit_price) for r in lines]
    for fact in session.execute(
        select(
            OrderFactRow.kind,
            OrderFactRow.line_key,
            OrderFactRow.sku,
            OrderFactRow.quantity,
            OrderFactRow.principal,
            OrderFactRow.amount,
        )
        .where(
            OrderFactRow.store_key == order.store_key,
            OrderFactRow.order_external_id == order.external_id,
            OrderFactRow.kind.in_(("refund", "return")),
        )
        .order_by(OrderFactRow.id)
    ):
        money = fact.amount if fact.amount is not None else fact.principal
        if not money:
            continue
        if after_sale([FactRow(*fact)], prices, None).refunded_by_sku:
            continue  # it takes units away: its money is theirs, not a refund of this unit's price
        refund = minor_units(abs(Decimal(money)))
        if fact.line_key in line_keys:  # a refund of one line
            if fact.line_key == line.line_key:
                paid -= _spread(refund, qty)[index]
        elif fact.sku:  # a line known by its SKU only
            if fact.sku == unit.sku:
                paid -= _spread(refund, qty)[index]
        elif order_units:  # a refund of the order
            paid -= _spread(refund, order_units)[position]
    return max(Decimal(paid) * minor, Decimal(0)).quantize(minor)


def quote_trade_in(
    ctx,
    *,
    unit_id: int,
    member_email: str,
    store: str,
    sku: str,
    list_price: Decimal | None,
    currency: str | None,
    reason: str | None,
    caller_scope: str,
    recorded_by: str,
    price_lookup: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Quote a trade-in of ``unit_id`` against the new product ``sku`` in shop ``store``:
    the list price read from that shop (``price_lookup(store_key, sku) -> (price, currency)``),
    or given by a ``support`` caller with a reason; a single-use code with an expiry."""
    now = now or _utcnow()
    if not isinstance(sku, str) or not sku.strip() or len(sku) > 255:
        raise RecordError("a SKU of 1 to 255 characters", field="sku")
    shop = next((s for s in ctx.stores if s.key == store and s.kind == "shopify" and s.official), None)
    if shop is None:
        raise RecordError("not an official web store", field="store")
    if list_price is not None:
        if caller_scope != "support" or not (reason or "").strip():
            raise RecordError("a list price is given only by support, with a reason", field="list_price")
        if currency is None or len(currency) != 3 or not currency.isalpha():
            raise RecordError("the currency of the given list price (ISO 4217)", field="currency")
        price, cur = list_price, currency.upper()
        source = "caller"
    else:
        if price_lookup is None:
            raise EligibilityError("the shop's price cannot be read here: give list_price with a reason")
        price, cur = price_lookup(store, sku.strip())
        source = "store"
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        raise RecordError("a positive list price", field="list_price")
    member_hash = email_digest_of(ctx, member_email, field="member_email")
    rules = cached_rules(ctx)
    with ctx.session_factory() as session:
        member = member_by_digest(session, member_hash)
        ctxu = _unit_context(session, rules, unit_id)
        v = ctxu.verdict
        if member is None or v.member_id != member.id:
            raise EligibilityError("the unit does not belong to this member")
        refuse_replacement_unit(v)
        if not v.eligible:
            raise EligibilityError("the unit is not eligible: " + ", ".join(v.reasons))
        today = local_date(now, ctxu.zone)
        policy = rules.policies.get(v.policy_version)
        check_claim(v, "trade_in", today, policy)  # benefit available, trade-in open today
        terms = policy.trade_in
        minor = minor_unit(cur)
        if terms.terms == "percent_of_original_price":
            assert terms.percent is not None
            discount = (price * terms.percent / 100).quantize(minor, rounding=ROUND_HALF_UP)
        else:
            if (ctxu.order.currency or "").upper() != cur:
                raise EligibilityError("a quote on the amount paid across currencies goes to ops")
            paid = _amount_paid(session, ctxu.unit, ctxu.order, cur)
            discount = trade_in_discount(
                terms,
                new_original_price=price,
                old_amount_paid=paid,
                purchase_date=v.purchase_date,
                trade_in_date=today,
            ).quantize(minor, rounding=ROUND_HALF_UP)
            if discount <= 0:
                raise EligibilityError("no trade-in value at this unit's age")
        discount = min(discount, price)
        code = CODE_PREFIX + secrets.token_hex(6).upper()
        quote = TradeInQuote(
            code=code,
            unit_id=unit_id,
            member_id=member.id,
            policy_version=policy.version,
            store_key=store,
            new_sku=sku.strip(),
            currency=cur,
            list_price=price,
            discount=discount,
            final_price=price - discount,
            price_source=source,
            reason=(reason or "").strip() or None,
            quoted_on=today,
            expires_on=today + timedelta(days=ctx.settings.trade_in_quote_days),
            status="open",
            recorded_by=recorded_by,
            created_at=now,
            updated_at=now,
        )
        session.add(quote)
        session.commit()
        return quote_dict(quote)


def quote_dict(q: TradeInQuote) -> dict[str, Any]:
    return {
        "quote": q.id,
        "code": q.code,
        "unit_id": q.unit_id,
        "policy_version": q.policy_version,
        "store": q.store_key,
        "sku": q.new_sku,
        "currency": q.currency,
        "list_price": str(q.list_price),
        "discount": str(q.discount),
        "final_price": str(q.final_price),
        "price_source": q.price_source,
        "quoted_on": q.quoted_on.isoformat(),
        "expires_on": q.expires_on.isoformat(),
        "status": q.status,
    }
