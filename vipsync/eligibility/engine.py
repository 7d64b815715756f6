"""The engine: one unit's facts and a policy version in; its windows, eligibility, reasons
and benefit status out. Pure: the same facts and policy always give the same verdict.

Conventions (POLICY.md): windows are half-open ``[start, end)``: every ``*_end`` and
``registration_deadline`` is the first day no longer covered. A window that does not apply
is None.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Literal

from vipsync.eligibility.calendar import add_days, add_months, add_years
from vipsync.eligibility.membership import is_active_member
from vipsync.eligibility.policy import Policy

__all__ = [
    "BENEFIT_STATUSES",
    "REASONS",
    "ClaimFacts",
    "MemberFacts",
    "UnitFacts",
    "Verdict",
    "evaluate",
    "member_reading",
]

# The closed list of reasons, in the order they are reported.
REASONS = (
    "region_not_eligible",
    "not_official_channel",
    "not_kvm_main_unit",
    "unclassified_sku",
    "order_cancelled",
    "test_order",
    "refunded",
    "payment_pending",
    "replacement_order",
)

BENEFIT_STATUSES = (
    "not_member",
    "registered_too_late",
    "available",
    "exchange_used",
    "trade_in_used",
    "member_exited",
)

ClaimKind = Literal["exchange", "trade_in"]


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """The member a unit belongs to (by e-mail, or by a verified proof of purchase):
    the pseudonymous id and the membership dates, nothing personal."""

    member_id: int
    registered_on: date | None
    exited_on: date | None = None

    @property
    def active(self) -> bool:
        return is_active_member(self.registered_on, self.exited_on)


@dataclass(frozen=True, slots=True)
class ClaimFacts:
    """The benefit recorded on a unit."""

    kind: ClaimKind
    claimed_on: date


@dataclass(frozen=True, slots=True)
class UnitFacts:
    """Everything the rules read about one unit of quantity.

    ``refunded`` is already allocated (see :func:`vipsync.eligibility.refunds.allocate_refunds`);
    ``removed`` is a unit an order edit took away (judged like a returned unit).
    """

    purchase_date: date
    country: str | None
    category: str
    official: bool
    cancelled: bool = False
    test: bool = False
    payment_pending: bool = False
    refunded: bool = False
    removed: bool = False
    member: MemberFacts | None = None
    claim: ClaimFacts | None = None
    replacement: bool = False  # a free replacement order: not a purchase, no windows of its own


@dataclass(frozen=True, slots=True)
class Verdict:
    """A unit's tag. ``trade_in_closes`` is set only when the policy closes trade-ins."""

    policy_version: str
    category: str
    country: str | None
    purchase_date: date
    eligible: bool
    reasons: tuple[str, ...]
    valid_purchase: bool
    original_warranty_end: date | None
    registration_deadline: date | None
    extended_warranty_end: date | None
    trade_in_opens: date | None
    trade_in_closes: date | None
    member_id: int | None
    benefit_status: str | None

    def digest(self) -> str:
        """A stable digest of the whole verdict (stored as ``unit_tags.facts_hash``):
        equal digests mean re-tagging would write the same row."""
        return hashlib.sha256(self.digest_text().encode()).hexdigest()

    def digest_text(self) -> str:
        """The text :meth:`digest` hashes: every field, ``|``-separated, the member id
        second to last and the benefit status last."""
        parts = (
            self.policy_version,
            self.category,
            self.country or "",
            _d(self.purchase_date),
            "1" if self.eligible else "0",
            ",".join(self.reasons),
            "1" if self.valid_purchase else "0",
            _d(self.original_warranty_end),
            _d(self.registration_deadline),
            _d(self.extended_warranty_end),
            _d(self.trade_in_opens),
            _d(self.trade_in_closes),
            "" if self.member_id is None else str(self.member_id),
            self.benefit_status or "",
        )
        return "|".join(parts)


def _d(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def member_reading(
    member: MemberFacts | None, registration_deadline: date | None
) -> tuple[bool, bool] | None:
    """All :func:`evaluate` reads of a unit's member besides its id, once the unit is
    eligible and its registration deadline known: (active member, registered before the
    deadline). Two eligible units with the same other facts and the same reading get the
    same verdict but for ``member_id`` (what :class:`vipsync.eligibility.judge.Judge` relies
    on). None: no member."""
    if member is None:
        return None
    registered_on = member.registered_on
    if registered_on is None or not member.active:
        return (False, False)
    return (True, registration_deadline is None or registered_on < registration_deadline)


def evaluate(facts: UnitFacts, policy: Policy) -> Verdict:
    """Judge one unit under one policy version."""
    scope = policy.scope
    reasons: list[str] = []
    if facts.country not in scope.regions:
        reasons.append("region_not_eligible")
    if scope.official_only and not facts.official:
        reasons.append("not_official_channel")
    if facts.category == "unknown":
        reasons.append("unclassified_sku")
    elif facts.category not in scope.categories:
        reasons.append("not_kvm_main_unit")
    invalid: list[str] = []
    if facts.cancelled:
        invalid.append("order_cancelled")
    if facts.test:
        invalid.append("test_order")
    if facts.refunded or facts.removed:
        invalid.append("refunded")
    if facts.payment_pending:
        invalid.append("payment_pending")
    if facts.replacement:
        invalid.append("replacement_order")
    reasons.extend(invalid)
    reasons.sort(key=REASONS.index)

    valid = not invalid
    eligible = not reasons
    purchase = facts.purchase_date
    original_end = add_years(purchase, policy.warranty.original_years_for(facts.country)) if valid else None
    member = facts.member
    member_id = member.member_id if member is not None else None
    if not eligible:
        return Verdict(
            policy.version,
            facts.category,
            facts.country,
            purchase,
            False,
            tuple(reasons),
            valid,
            original_end,
            None,
            None,
            None,
            None,
            member_id,
            None,
        )

    deadline = original_end if policy.registration.deadline == "original_warranty_end" else None
    active, in_time = member_reading(member, deadline) or (False, False)
    extended_end = trade_opens = trade_closes = None
    if active:
        if in_time:
            extended_end = add_years(purchase, policy.warranty.extended_years)
        t = policy.trade_in
        trade_opens = add_days(add_months(purchase, t.opens_after_months), t.opens_after_days)
        if t.closes_after_months is not None:
            trade_closes = add_months(purchase, t.closes_after_months)
        status = "available" if in_time else "registered_too_late"
    elif member is None:
        status = "not_member"
    else:
        status = "member_exited"

    claim = facts.claim
    if claim is not None:
        # One benefit per unit: the used one excludes the other.
        if claim.kind == "exchange":
            status = "exchange_used"
            trade_opens = trade_closes = None
        else:
            status = "trade_in_used"
            extended_end = None
    return Verdict(
        policy.version,
        facts.category,
        facts.country,
        purchase,
        True,
        (),
        True,
        original_end,
        deadline,
        extended_end,
        trade_opens,
        trade_closes,
        member_id,
        status,
    )
