"""Invariants of the engine, checked on generated facts (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from vipsync.eligibility.calendar import add_months, add_years
from vipsync.eligibility.claims import check_claim
from vipsync.eligibility.engine import BENEFIT_STATUSES, REASONS, ClaimFacts, MemberFacts, UnitFacts, evaluate
from vipsync.eligibility.loader import load_policy
from vipsync.eligibility.refunds import allocate_refunds
from vipsync.errors import BenefitAlreadyUsed, EligibilityError

POLICIES = Path(__file__).resolve().parents[2] / "vipsync" / "config" / "policies"
VERSIONS = [load_policy(POLICIES / "vip-2024.toml"), load_policy(POLICIES / "tesmart-id-2025-11-01.toml")]

dates = st.dates(min_value=date(2014, 1, 1), max_value=date(2035, 12, 31))
countries = st.sampled_from(["US", "JP", "DE", "FR", "AT", "GP", "GB", "CH", "NO", "PR", "CA", None])
categories = st.sampled_from(
    ["kvm_switch", "kvm_switch", "matrix", "kvm_extender", "accessory", "other", "unknown"]
)
members = st.none() | st.builds(MemberFacts, st.integers(1, 10**9), st.none() | dates, st.none() | dates)
claims = st.none() | st.builds(ClaimFacts, st.sampled_from(["exchange", "trade_in"]), dates)
unit_facts = st.builds(
    UnitFacts,
    purchase_date=dates,
    country=countries,
    category=categories,
    official=st.booleans(),
    cancelled=st.booleans(),
    test=st.booleans(),
    payment_pending=st.booleans(),
    refunded=st.booleans(),
    removed=st.booleans(),
    member=members,
    claim=claims,
)
policies = st.sampled_from(VERSIONS)


@settings(max_examples=400)
@given(unit_facts, policies)
def test_windows_are_ordered_and_null_when_not_eligible(facts, policy):
    v = evaluate(facts, policy)
    assert set(v.reasons) <= set(REASONS) and list(v.reasons) == sorted(v.reasons, key=REASONS.index)
    assert v.eligible == (not v.reasons)
    if v.original_warranty_end is not None:
        assert v.original_warranty_end > v.purchase_date
    if v.extended_warranty_end is not None:
        assert v.original_warranty_end is not None
        assert v.extended_warranty_end > v.original_warranty_end  # extended end after original end
    if v.trade_in_opens is not None:
        assert v.purchase_date < v.trade_in_opens
    if not v.eligible:
        assert (
            v.registration_deadline is v.extended_warranty_end is v.trade_in_opens is v.benefit_status is None
        )
    else:
        assert v.benefit_status in BENEFIT_STATUSES
    assert (v.original_warranty_end is not None) == v.valid_purchase


@settings(max_examples=400)
@given(unit_facts, policies)
def test_a_unit_never_has_both_benefits_open_after_one_is_used(facts, policy):
    v = evaluate(facts, policy)
    if v.benefit_status == "exchange_used":
        assert v.trade_in_opens is None
    if v.benefit_status == "trade_in_used":
        assert v.extended_warranty_end is None


@settings(max_examples=300)
@given(
    unit_facts,
    policies,
    st.sampled_from(["exchange", "trade_in"]),
    st.sampled_from(["exchange", "trade_in"]),
    st.integers(0, 4000),
)
def test_one_benefit_per_unit_whatever_the_order_of_claims(facts, policy, first, second, days):
    from dataclasses import replace

    facts = replace(facts, claim=None)
    on = facts.purchase_date + timedelta(days=days)
    v = evaluate(facts, policy)
    try:
        decision = check_claim(v, first, on, policy)
    except EligibilityError:
        return
    if not decision.uses_benefit:
        return
    used = evaluate(replace(facts, claim=ClaimFacts(first, on)), policy)
    try:
        check_claim(used, second, on + timedelta(days=1), policy)
    except BenefitAlreadyUsed:
        return
    raise AssertionError("a second benefit was allowed")


@settings(max_examples=300)
@given(unit_facts, policies)
def test_retagging_unchanged_facts_changes_nothing(facts, policy):
    a, b = evaluate(facts, policy), evaluate(facts, policy)
    assert a == b and a.digest() == b.digest()


@given(st.lists(st.integers(1, 50), unique=True, max_size=12), st.integers(0, 15), st.data())
def test_refunds_take_highest_unclaimed_units_then_claimed_ones(ordinals, qty, data):
    claimed = data.draw(st.lists(st.sampled_from(ordinals), unique=True) if ordinals else st.just([]))
    taken = allocate_refunds(ordinals, qty, claimed)
    free = sorted(set(ordinals) - set(claimed), reverse=True)
    held = sorted(set(claimed), reverse=True)
    assert len(taken) == min(qty, len(ordinals))
    assert sorted(taken - set(claimed), reverse=True) == free[: len(taken - set(claimed))]
    if taken & set(claimed):  # a claimed unit only once every unclaimed one is taken
        assert set(free) <= taken
        assert sorted(taken & set(claimed), reverse=True) == held[: len(taken & set(claimed))]


@given(dates, st.integers(-120, 120))
def test_add_months_stays_in_the_target_month_and_clamps_only_at_month_ends(day, months):
    out = add_months(day, months)
    assert (out.year * 12 + out.month) - (day.year * 12 + day.month) == months
    assert out.day == day.day or (out.day < day.day and (out + timedelta(days=1)).day == 1)


@given(dates, st.integers(1, 10))
def test_add_years_is_twelve_months(day, years):
    assert add_years(day, years) == add_months(day, 12 * years)
