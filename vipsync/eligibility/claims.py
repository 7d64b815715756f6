"""Claims: one benefit per unit (an exchange or a trade-in, never both), their windows,
the replacement's coverage and the trade-in's value. Called by the claim and proof jobs
before anything is recorded; each refusal is an :class:`EligibilityError` that says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from vipsync.eligibility.calendar import add_days, whole_months_between
from vipsync.eligibility.engine import Verdict
from vipsync.eligibility.policy import Policy, TradeIn
from vipsync.errors import BenefitAlreadyUsed, EligibilityError

__all__ = [
    "REPLACEMENT_UNIT",
    "ClaimDecision",
    "check_claim",
    "refuse_replacement_unit",
    "replacement_coverage_end",
    "stacks_with_other_discount",
    "trade_in_discount",
]

CENT = Decimal("0.01")
REPLACEMENT_UNIT = (
    "a replacement unit (replacement_order) gets no exchange or trade-in benefit of its own: "
    "the unit it replaces keeps its windows, and the replacement's cover is recorded on that unit"
)


@dataclass(frozen=True, slots=True)
class ClaimDecision:
    """What a permitted claim does. ``uses_benefit`` is False for an exchange inside the
    original warranty (ordinary warranty service: nothing is recorded against the unit)."""

    kind: str
    on: date
    uses_benefit: bool
    replacement_covered_until: date | None = None  # first day no longer covered


def replacement_coverage_end(
    exchange_on: date, extended_warranty_end: date, *, replacement_days: int
) -> date:
    """The replacement is covered ``[exchange_on, max(exchange_on + days + 1, extended_end))``:
    through the ``replacement_days``-th day after the exchange, or the unit's remaining
    coverage when that is longer."""
    return max(add_days(exchange_on, replacement_days + 1), extended_warranty_end)


def refuse_replacement_unit(verdict: Verdict) -> None:
    """A free replacement's unit is offered and granted nothing (POLICY.md, One benefit per
    unit): EligibilityError saying so."""
    if "replacement_order" in verdict.reasons:
        raise EligibilityError(REPLACEMENT_UNIT)


def check_claim(verdict: Verdict, kind: str, on: date, policy: Policy) -> ClaimDecision:
    """May this unit make this claim on this date? Raises BenefitAlreadyUsed for a second
    benefit and EligibilityError (saying which rule) for any other refusal. ``policy`` must
    be the unit's own version (``verdict.policy_version``)."""
    if policy.version != verdict.policy_version:
        raise EligibilityError(
            f"the unit was judged under policy {verdict.policy_version!r}; claims use that version, not {policy.version!r}"
        )
    if kind not in ("exchange", "trade_in"):
        raise EligibilityError(f"unknown claim kind {kind!r} (exchange or trade_in)")
    refuse_replacement_unit(verdict)
    if not verdict.eligible:
        raise EligibilityError("the unit is not eligible for VIP benefits: " + ", ".join(verdict.reasons))
    if on < verdict.purchase_date:
        raise EligibilityError(
            f"a claim dated {on.isoformat()} is before the purchase ({verdict.purchase_date.isoformat()})"
        )
    if verdict.benefit_status in ("exchange_used", "trade_in_used"):
        used = verdict.benefit_status.removesuffix("_used").replace("_", "-")
        raise BenefitAlreadyUsed(
            f"the unit has already used its one benefit (a {used}); a unit gets one exchange or one trade-in"
        )
    if kind == "exchange":
        assert verdict.original_warranty_end is not None
        if on < verdict.original_warranty_end:
            return ClaimDecision("exchange", on, uses_benefit=False)
        end = verdict.extended_warranty_end
        if end is None:
            raise EligibilityError(
                f"no extended warranty ({verdict.benefit_status}): the original warranty ended "
                f"{verdict.original_warranty_end.isoformat()}"
            )
        if on >= end:
            raise EligibilityError(
                f"the extended warranty ended {end.isoformat()} (covered until the day before)"
            )
        covered = replacement_coverage_end(on, end, replacement_days=policy.exchange.replacement_days)
        return ClaimDecision("exchange", on, uses_benefit=True, replacement_covered_until=covered)
    opens = verdict.trade_in_opens
    if opens is None:
        raise EligibilityError(f"no trade-in for this unit ({verdict.benefit_status})")
    if on < opens:
        raise EligibilityError(f"the trade-in opens {opens.isoformat()}")
    if verdict.trade_in_closes is not None and on >= verdict.trade_in_closes:
        raise EligibilityError(f"the trade-in closed {verdict.trade_in_closes.isoformat()}")
    return ClaimDecision("trade_in", on, uses_benefit=True)


def trade_in_discount(
    terms: TradeIn,
    *,
    new_original_price: Decimal,
    old_amount_paid: Decimal,
    purchase_date: date,
    trade_in_date: date,
) -> Decimal:
    """The trade-in discount in money, rounded to the cent.

    ``percent_of_original_price`` (VIP): a percentage of the new product's original (list)
    price, never of a sale price. ``share_of_amount_paid_by_age`` (TESmart ID): a share of
    what was actually paid for the old unit, by its age in whole calendar months at the
    trade-in date (first band whose ``under_months`` exceeds the age; none past the last).
    """
    for name, value in (("new_original_price", new_original_price), ("old_amount_paid", old_amount_paid)):
        if not isinstance(value, Decimal) or value < 0:
            raise EligibilityError(f"{name} must be a non-negative Decimal")
    if terms.terms == "percent_of_original_price":
        assert terms.percent is not None
        return (new_original_price * terms.percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    age = whole_months_between(purchase_date, trade_in_date)
    for band in terms.bands:
        if age < band.under_months:
            return (old_amount_paid * band.percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    return Decimal("0.00")


def stacks_with_other_discount(
    *,
    discount_codes: Iterable[str],
    trade_in_codes: Iterable[str],
    automatic_discount: Decimal = Decimal(0),
    lines: Iterable[tuple[Decimal, Decimal]] = (),
) -> bool:
    """True when an order carries a trade-in discount and any other discount: another
    code, an automatic discount, or a line priced below its original price. ``lines`` are
    ``(price, original_price)`` pairs of the order's other lines. Such orders are flagged."""
    trade = {c.strip().upper() for c in trade_in_codes}
    codes = [c.strip().upper() for c in discount_codes]
    if not any(c in trade for c in codes):
        return False
    if any(c not in trade for c in codes):
        return True
    if automatic_discount > 0:
        return True
    return any(price < original for price, original in lines)
