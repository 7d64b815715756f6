"""The judge shares evaluations between units with the same facts; every unit still gets
exactly `evaluate(facts, policy)` and its digest (checked on generated batches)."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vipsync.eligibility.calendar import add_months
from vipsync.eligibility.engine import ClaimFacts, MemberFacts, UnitFacts, evaluate
from vipsync.eligibility.judge import Judge
from vipsync.eligibility.loader import load_policy
from vipsync.eligibility.policy import PolicySet
from vipsync.errors import PolicyError

POLICIES = Path(__file__).resolve().parents[2] / "vipsync" / "config" / "policies"
VIP = load_policy(POLICIES / "vip-2024.toml")
TID = load_policy(POLICIES / "tesmart-id-2025-11-01.toml").model_copy(update={"enabled": True})
BOTH = PolicySet((VIP, TID))

# A narrow range around the second version's start, so batches repeat facts and cross versions.
dates = st.dates(min_value=date(2025, 9, 1), max_value=date(2025, 12, 31))
members = st.none() | st.builds(
    MemberFacts, st.integers(1, 50), st.none() | dates | st.just(date(2028, 1, 1)), st.none() | dates
)
unit_facts = st.builds(
    UnitFacts,
    purchase_date=dates,
    country=st.sampled_from(["US", "DE", "JP", "CN", None]),
    category=st.sampled_from(["kvm_switch", "matrix", "accessory", "unknown"]),
    official=st.booleans(),
    cancelled=st.booleans(),
    refunded=st.booleans(),
    member=members,
    claim=st.none() | st.builds(ClaimFacts, st.sampled_from(["exchange", "trade_in"]), dates),
    replacement=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(unit_facts, min_size=1, max_size=40))
def test_every_unit_gets_exactly_the_engines_verdict_and_digest(batch):
    judge = Judge(BOTH, max_entries=16)
    for facts in batch * 2:  # the second pass is served from the caches
        expected = evaluate(facts, BOTH.select(facts.purchase_date))
        assert judge.verdict(facts) == (expected, expected.digest())
    # At most two evaluations per unit and pass (without and with the member's reading),
    # even when the small cache is cleared under it.
    assert judge.evaluations <= 4 * len(batch)


def test_members_registered_alike_share_one_evaluation():
    judge = Judge(BOTH)
    day = date(2025, 10, 10)
    for member_id in range(1, 101):
        facts = UnitFacts(day, "US", "kvm_switch", True, member=MemberFacts(member_id, date(2025, 10, 20)))
        verdict, digest = judge.verdict(facts)
        assert verdict.member_id == member_id and verdict.benefit_status == "available"
        assert digest == evaluate(facts, VIP).digest()
    assert judge.evaluations == 2  # the facts without the member, then with an active member in time


def test_a_date_no_version_covers_raises_policy_error_every_time():
    judge = Judge(PolicySet((TID,)))
    facts = UnitFacts(date(2024, 1, 1), "DE", "kvm_switch", True)
    for _ in range(2):
        with pytest.raises(PolicyError):
            judge.judge(facts)


@settings(max_examples=300)
@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 1, 1)), st.integers(-400, 400))
def test_add_months_clamps_to_the_last_day_of_the_target_month(day, months):
    index = day.year * 12 + day.month - 1 + months
    year, month = index // 12, index % 12 + 1
    assert add_months(day, months) == date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _step_version(steps, day):
    version = steps[0][1]
    for start, v in steps[1:]:
        if start is not None and day >= start:
            version = v
    return version


versions = st.builds(
    lambda v, start, enabled, retro: VIP.model_copy(
        update={"version": v, "effective_from": start, "enabled": enabled, "retroactive": retro}
    ),
    st.sampled_from(["a", "b", "c", "d"]),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2026, 12, 31)),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=200)
@given(
    st.lists(versions, max_size=4, unique_by=lambda p: p.version),
    st.lists(st.dates(min_value=date(2019, 1, 1), max_value=date(2027, 12, 31)), max_size=30),
)
def test_selection_steps_say_the_version_select_picks_for_every_date(policies, days):
    pset = PolicySet(tuple(policies))
    steps = pset.selection_steps()
    edges = [p.effective_from + timedelta(days=k) for p in policies for k in (-1, 0, 1)]
    for day in [*days, *edges]:
        try:
            expected = pset.select(day).version
        except PolicyError:
            expected = None
        assert _step_version(steps, day) == expected, (day, steps)


scoped_versions = st.builds(
    lambda v, start, enabled, retro, stores, countries: VIP.model_copy(
        update={
            "version": v,
            "effective_from": start,
            "enabled": enabled,
            "retroactive": retro,
            "stores": frozenset(stores),
            "countries": frozenset(countries),
        }
    ),
    st.sampled_from(["a", "b", "c", "d"]),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2026, 12, 31)),
    st.booleans(),
    st.booleans(),
    st.sets(st.sampled_from(["shopify-eu", "amazon-eu"]), max_size=2),
    st.sets(st.sampled_from(["DE", "FR"]), max_size=2),
)


@settings(max_examples=200)
@given(
    st.lists(scoped_versions, max_size=4, unique_by=lambda p: p.version),
    st.lists(
        st.tuples(
            st.dates(min_value=date(2019, 1, 1), max_value=date(2027, 12, 31)),
            st.sampled_from(["shopify-eu", "amazon-eu", "shopify-us"]),
            st.sampled_from(["DE", "FR", "US", None]),
        ),
        max_size=30,
    ),
)
def test_selection_classes_say_the_version_select_picks_for_every_unit(policies, units):
    pset = PolicySet(tuple(policies))
    classes = pset.selection_classes()
    assert classes[-1][:2] == (None, None)
    for day, store, country in units:
        steps = next(steps for s, c, steps in classes if s in (None, store) and (c is None or c == country))
        try:
            expected = pset.select(day, store_key=store, country=country).version
        except PolicyError:
            expected = None
        assert _step_version(steps, day) == expected, (day, store, country, classes)
