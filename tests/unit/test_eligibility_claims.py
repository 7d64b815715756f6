"""Claims (one benefit per unit, exchange window, replacement coverage, trade-in opening
and value, stacked discounts), membership rules and refund allocation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from vipsync.eligibility.claims import (
    check_claim,
    replacement_coverage_end,
    stacks_with_other_discount,
    trade_in_discount,
)
from vipsync.eligibility.engine import ClaimFacts, MemberFacts, UnitFacts, evaluate
from vipsync.eligibility.loader import load_policy
from vipsync.eligibility.membership import (
    active_registration,
    check_registration,
    is_active_member,
    registration_from_events,
)
from vipsync.eligibility.refunds import allocate_refunds
from vipsync.errors import BenefitAlreadyUsed, EligibilityError, MembershipRefused

POLICIES = Path(__file__).resolve().parents[2] / "vipsync" / "config" / "policies"
VIP = load_policy(POLICIES / "vip-2024.toml")
TID = load_policy(POLICIES / "tesmart-id-2025-11-01.toml")


def verdict(*, registered=date(2025, 1, 1), claim=None, country="US", policy=VIP, **kw):
    m = MemberFacts(1, registered) if registered is not None else None
    f = UnitFacts(
        purchase_date=date(2025, 3, 10),
        country=country,
        category="kvm_switch",
        official=True,
        member=m,
        claim=claim,
        **kw,
    )
    return evaluate(f, policy)


# ---------------------------------------------------------------- exchange
def test_an_exchange_inside_the_original_warranty_uses_nothing():
    d = check_claim(verdict(), "exchange", date(2026, 3, 9), VIP)
    assert d.uses_benefit is False and d.replacement_covered_until is None


def test_an_exchange_in_the_extended_window_uses_the_benefit_and_keeps_the_remaining_coverage():
    d = check_claim(verdict(), "exchange", date(2026, 3, 10), VIP)  # first day after the original warranty
    assert d.uses_benefit and d.replacement_covered_until == date(2028, 3, 10)


def test_a_late_exchange_is_covered_through_the_90th_day_after_it():
    d = check_claim(verdict(), "exchange", date(2028, 3, 1), VIP)
    assert d.replacement_covered_until == date(2028, 5, 31)  # 2028-03-01 + 91 days: first day not covered


def test_an_exchange_on_the_extended_end_day_is_refused():
    with pytest.raises(EligibilityError, match="extended warranty ended 2028-03-10"):
        check_claim(verdict(), "exchange", date(2028, 3, 10), VIP)
    check_claim(verdict(), "exchange", date(2028, 3, 9), VIP)  # the day before is covered


@pytest.mark.parametrize(
    "kw, status",
    [
        ({"registered": None}, "not_member"),
        ({"registered": date(2026, 3, 10)}, "registered_too_late"),
    ],
)
def test_no_exchange_after_the_original_warranty_without_the_extended_one(kw, status):
    with pytest.raises(EligibilityError, match=status):
        check_claim(verdict(**kw), "exchange", date(2026, 6, 1), VIP)


def test_replacement_coverage_is_the_longer_of_91_days_and_the_remaining_coverage():
    assert replacement_coverage_end(date(2026, 1, 1), date(2028, 1, 1), replacement_days=90) == date(
        2028, 1, 1
    )
    assert replacement_coverage_end(date(2027, 12, 1), date(2028, 1, 1), replacement_days=90) == date(
        2028, 3, 1
    )


def test_a_german_unit_exchanges_only_after_its_two_original_years():
    v = verdict(country="DE")
    assert not check_claim(v, "exchange", date(2027, 3, 9), VIP).uses_benefit
    assert check_claim(v, "exchange", date(2027, 3, 10), VIP).uses_benefit


# ---------------------------------------------------------------- trade-in
def test_the_trade_in_opens_on_its_day_not_before():
    with pytest.raises(EligibilityError, match="opens 2025-07-10"):
        check_claim(verdict(), "trade_in", date(2025, 7, 9), VIP)
    assert check_claim(verdict(), "trade_in", date(2025, 7, 10), VIP).uses_benefit


def test_the_trade_in_needs_no_registration_deadline_but_an_active_member():
    assert check_claim(verdict(registered=date(2027, 1, 1)), "trade_in", date(2027, 2, 1), VIP).uses_benefit
    with pytest.raises(EligibilityError, match="not_member"):
        check_claim(verdict(registered=None), "trade_in", date(2027, 2, 1), VIP)


def test_a_closing_trade_in_is_refused_on_its_closing_day():
    closing = VIP.model_copy(update={"trade_in": VIP.trade_in.model_copy(update={"closes_after_months": 12})})
    v = verdict(policy=closing)
    check_claim(v, "trade_in", date(2026, 3, 9), closing)
    with pytest.raises(EligibilityError, match="closed 2026-03-10"):
        check_claim(v, "trade_in", date(2026, 3, 10), closing)


# ---------------------------------------------------------------- one benefit per unit
@pytest.mark.parametrize("used", ["exchange", "trade_in"])
@pytest.mark.parametrize("second", ["exchange", "trade_in"])
def test_a_second_benefit_on_a_unit_is_refused(used, second):
    v = verdict(claim=ClaimFacts(used, date(2026, 6, 1)))
    with pytest.raises(BenefitAlreadyUsed, match="one benefit"):
        check_claim(v, second, date(2026, 7, 1), VIP)


def test_claims_on_ineligible_units_are_refused_with_the_reasons():
    with pytest.raises(EligibilityError, match="region_not_eligible"):
        check_claim(verdict(country="GB"), "trade_in", date(2026, 1, 1), VIP)


def test_claims_use_the_units_own_policy_version():
    with pytest.raises(EligibilityError, match="judged under policy 'vip-2024'"):
        check_claim(verdict(), "trade_in", date(2026, 1, 1), TID)


def test_a_claim_before_the_purchase_or_of_an_unknown_kind_is_refused():
    with pytest.raises(EligibilityError, match="before the purchase"):
        check_claim(verdict(), "exchange", date(2025, 3, 9), VIP)
    with pytest.raises(EligibilityError, match="unknown claim kind"):
        check_claim(verdict(), "refund", date(2026, 1, 1), VIP)


# ---------------------------------------------------------------- trade-in value
def test_vip_trade_in_is_30_percent_of_the_new_products_original_price():
    value = trade_in_discount(
        VIP.trade_in,
        new_original_price=Decimal("299.99"),
        old_amount_paid=Decimal("10.00"),
        purchase_date=date(2025, 3, 10),
        trade_in_date=date(2025, 8, 1),
    )
    assert value == Decimal("90.00")  # 89.997 rounded to the cent; the old price plays no part


@pytest.mark.parametrize(
    "trade_in_on, value",
    [
        (date(2025, 6, 9), Decimal("100.00")),  # 2 months old: 50%
        (date(2028, 3, 9), Decimal("100.00")),  # 35 whole months: 50%
        (date(2028, 3, 10), Decimal("80.00")),  # 36 months: 40%
        (date(2029, 3, 10), Decimal("60.00")),  # 48 months: 30%
        (date(2030, 3, 9), Decimal("60.00")),  # 59 months: 30%
        (date(2030, 3, 10), Decimal("0.00")),  # 60 months: nothing
    ],
)
def test_tesmart_id_trade_in_is_a_share_of_the_amount_paid_by_whole_months_of_age(trade_in_on, value):
    assert (
        trade_in_discount(
            TID.trade_in,
            new_original_price=Decimal("999.00"),
            old_amount_paid=Decimal("200.00"),
            purchase_date=date(2025, 3, 10),
            trade_in_date=trade_in_on,
        )
        == value
    )


def test_trade_in_value_refuses_floats():
    with pytest.raises(EligibilityError, match="Decimal"):
        trade_in_discount(
            VIP.trade_in,
            new_original_price=299.99,
            old_amount_paid=Decimal(0),  # type: ignore[arg-type]
            purchase_date=date(2025, 3, 10),
            trade_in_date=date(2025, 8, 1),
        )


@pytest.mark.parametrize(
    "codes, automatic, lines, flagged",
    [
        (["VIP-TRADEIN"], Decimal(0), [(Decimal(100), Decimal(100))], False),
        (["VIP-TRADEIN", "SUMMER10"], Decimal(0), [], True),  # another code
        (["VIP-TRADEIN"], Decimal("5.00"), [], True),  # an automatic discount
        (["VIP-TRADEIN"], Decimal(0), [(Decimal(90), Decimal(100))], True),  # a sale price
        (["SUMMER10"], Decimal("5.00"), [(Decimal(90), Decimal(100))], False),  # no trade-in at all
        (["vip-tradein "], Decimal(0), [], False),
    ],
)
def test_a_trade_in_never_stacks_with_another_discount(codes, automatic, lines, flagged):
    assert (
        stacks_with_other_discount(
            discount_codes=codes, trade_in_codes=["VIP-TRADEIN"], automatic_discount=automatic, lines=lines
        )
        is flagged
    )


# ---------------------------------------------------------------- membership
@pytest.mark.parametrize(
    "registered, exited, active",
    [
        (date(2025, 1, 1), None, True),
        (date(2025, 1, 1), date(2025, 6, 1), False),
        (date(2025, 6, 1), date(2025, 6, 1), False),
        (date(2025, 9, 1), date(2025, 6, 1), True),  # re-registered after the exit
        (None, None, False),
    ],
)
def test_an_active_member_has_a_registration_and_no_exit_after_it(registered, exited, active):
    assert is_active_member(registered, exited) is active
    assert active_registration(registered, exited) == (registered if active else None)


def test_membership_history_folds_to_the_latest_registration():
    assert registration_from_events([(date(2024, 1, 1), "register")]) == (date(2024, 1, 1), None)
    assert registration_from_events(
        [(date(2024, 1, 1), "register"), (date(2024, 5, 1), "exit"), (date(2024, 9, 1), "register")]
    ) == (date(2024, 9, 1), None)
    assert registration_from_events([(date(2024, 1, 1), "register"), (date(2024, 5, 1), "exit")]) == (
        date(2024, 1, 1),
        date(2024, 5, 1),
    )
    # registering twice keeps the first date; an exit without a registration is nothing
    assert registration_from_events(
        [(date(2024, 3, 1), "exit"), (date(2024, 4, 1), "register"), (date(2024, 6, 1), "register")]
    ) == (
        date(2024, 4, 1),
        None,
    )
    with pytest.raises(ValueError):
        registration_from_events([(date(2024, 1, 1), "pause")])


@pytest.mark.parametrize("country", ["GB", "UK", "CH", "NO", "PR", "CA", "MX", "", None])
def test_a_registration_from_outside_the_regions_is_refused(country):
    with pytest.raises(MembershipRefused, match="registration refused"):
        check_registration(country, VIP.scope.regions)


@pytest.mark.parametrize(
    "country, code", [("US", "US"), ("de", "DE"), ("JP", "JP"), ("GP", "GP"), (" fr ", "FR")]
)
def test_a_registration_from_the_regions_is_accepted(country, code):
    assert check_registration(country, VIP.scope.regions) == code


# ---------------------------------------------------------------- refunds
@pytest.mark.parametrize(
    "ordinals, qty, claimed, refunded",
    [
        ([1, 2, 3], 1, [], {3}),  # quantity 3 with one refunded: the highest unit
        ([1, 2, 3], 2, [], {2, 3}),
        ([1, 2, 3], 1, [3], {2}),  # unclaimed units before claimed ones
        ([1, 2, 3], 3, [2], {1, 2, 3}),  # only the claimed unit left: it is taken too
        ([1, 2, 3], 2, [2, 3], {1, 3}),  # then the highest claimed one
        ([1, 2, 3], 0, [], set()),  # a refund of money alone takes none
        ([1, 2], 5, [], {1, 2}),
        ([], 1, [], set()),
        ([1, 3], 1, [], {3}),  # ordinals need not be contiguous (a removed unit)
    ],
)
def test_refunds_take_the_highest_unclaimed_units_then_claimed_ones(ordinals, qty, claimed, refunded):
    assert allocate_refunds(ordinals, qty, claimed) == frozenset(refunded)
