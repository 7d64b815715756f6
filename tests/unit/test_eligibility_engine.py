"""The engine, clause by clause of POLICY.md (scope, windows, membership, one benefit,
policy versions), with the edges: leap days, month ends, German customers, deadline day."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from vipsync.eligibility.engine import REASONS, ClaimFacts, MemberFacts, UnitFacts, evaluate
from vipsync.eligibility.loader import load_policy

POLICIES = Path(__file__).resolve().parents[2] / "vipsync" / "config" / "policies"
VIP = load_policy(POLICIES / "vip-2024.toml")
TID = load_policy(POLICIES / "tesmart-id-2025-11-01.toml")

EU27 = [
    "AT",
    "BE",
    "BG",
    "HR",
    "CY",
    "CZ",
    "DK",
    "EE",
    "FI",
    "FR",
    "DE",
    "GR",
    "HU",
    "IE",
    "IT",
    "LV",
    "LT",
    "LU",
    "MT",
    "NL",
    "PL",
    "PT",
    "RO",
    "SK",
    "SI",
    "ES",
    "SE",
]
EU_TERRITORIES = ["GP", "MQ", "GF", "RE", "YT", "MF", "AX"]


def facts(**kw) -> UnitFacts:
    base = {"purchase_date": date(2025, 3, 10), "country": "US", "category": "kvm_switch", "official": True}
    base.update(kw)
    return UnitFacts(**base)


def member(
    registered: date | None = date(2025, 1, 1), exited: date | None = None, mid: int = 7
) -> MemberFacts:
    return MemberFacts(member_id=mid, registered_on=registered, exited_on=exited)


# ---------------------------------------------------------------- scope: regions
@pytest.mark.parametrize("country", ["US", "JP", *EU27, *EU_TERRITORIES])
def test_program_regions_are_eligible(country):
    v = evaluate(facts(country=country), VIP)
    assert v.eligible and v.reasons == ()


@pytest.mark.parametrize("country", ["GB", "CH", "NO", "CA", "MX", "PR", "AU", "IS", "LI", "TR", None])
def test_buyers_outside_the_regions_are_out(country):
    v = evaluate(facts(country=country, member=member()), VIP)
    assert not v.eligible and v.reasons == ("region_not_eligible",)
    assert v.registration_deadline is v.extended_warranty_end is v.trade_in_opens is None
    assert v.benefit_status is None


def test_the_eu_has_27_members_plus_7_territories_in_the_shipped_policy():
    assert VIP.scope.regions == frozenset(["US", "JP", *EU27, *EU_TERRITORIES])
    assert len(EU27) == 27


# ---------------------------------------------------------------- scope: channel, category
def test_unofficial_channel_is_out_while_the_policy_says_so():
    v = evaluate(facts(official=False), VIP)
    assert v.reasons == ("not_official_channel",)
    opened = VIP.model_copy(update={"scope": VIP.scope.model_copy(update={"official_only": False})})
    assert evaluate(facts(official=False), opened).eligible  # a policy switch, not code


@pytest.mark.parametrize("category", ["matrix", "hdmi_splitter", "kvm_extender", "accessory", "other"])
def test_only_the_kvm_main_unit_is_in_scope(category):
    v = evaluate(facts(category=category), VIP)
    assert v.reasons == ("not_kvm_main_unit",)
    assert v.original_warranty_end == date(2026, 3, 10)  # ordinary warranty still applies


def test_an_unclassified_sku_is_never_silently_in_scope():
    v = evaluate(facts(category="unknown", member=member()), VIP)
    assert v.reasons == ("unclassified_sku",) and not v.eligible and v.benefit_status is None


# ---------------------------------------------------------------- scope: order state
@pytest.mark.parametrize(
    "flags, reason",
    [
        ({"cancelled": True}, "order_cancelled"),
        ({"test": True}, "test_order"),
        ({"refunded": True}, "refunded"),
        ({"removed": True}, "refunded"),  # an order edit took the unit away
        ({"payment_pending": True}, "payment_pending"),
        ({"replacement": True}, "replacement_order"),  # a free replacement: no windows of its own
    ],
)
def test_invalid_purchases_have_a_reason_and_no_windows(flags, reason):
    v = evaluate(facts(member=member(), **flags), VIP)
    assert v.reasons == (reason,) and not v.valid_purchase and not v.eligible
    assert v.original_warranty_end is None and v.registration_deadline is None
    assert v.extended_warranty_end is None and v.trade_in_opens is None and v.benefit_status is None


def test_every_reason_is_reported_in_the_closed_list_order():
    v = evaluate(
        facts(
            country="GB",
            official=False,
            category="unknown",
            cancelled=True,
            test=True,
            refunded=True,
            payment_pending=True,
            replacement=True,
        ),
        VIP,
    )
    assert v.reasons == tuple(r for r in REASONS if r != "not_kvm_main_unit")
    v = evaluate(facts(country="CH", category="matrix", payment_pending=True), VIP)
    assert v.reasons == ("region_not_eligible", "not_kvm_main_unit", "payment_pending")


# ---------------------------------------------------------------- windows
@pytest.mark.parametrize(
    "purchase, country, original_end",
    [
        (date(2025, 3, 10), "US", date(2026, 3, 10)),
        (date(2024, 2, 29), "US", date(2025, 2, 28)),  # leap day
        (date(2024, 2, 29), "DE", date(2026, 2, 28)),
        (date(2025, 12, 31), "JP", date(2026, 12, 31)),
        (date(2025, 3, 10), "DE", date(2027, 3, 10)),  # German customers: two years
        (date(2025, 3, 10), "AT", date(2026, 3, 10)),  # German-speaking is not German
        (date(2025, 3, 10), "GB", date(2026, 3, 10)),  # ineligible but a valid purchase
    ],
)
def test_original_warranty_end(purchase, country, original_end):
    assert evaluate(facts(purchase_date=purchase, country=country), VIP).original_warranty_end == original_end


def test_german_customer_gets_two_year_original_warranty_and_the_same_extended_end():
    v = evaluate(facts(country="DE", member=member(date(2026, 3, 9))), VIP)
    assert v.original_warranty_end == date(2027, 3, 10)
    assert v.registration_deadline == date(2027, 3, 10)
    assert v.extended_warranty_end == date(2028, 3, 10)  # two original years plus one


def test_registration_deadline_is_the_original_end_for_eligible_units_only():
    assert evaluate(facts(), VIP).registration_deadline == date(2026, 3, 10)
    assert evaluate(facts(category="matrix"), VIP).registration_deadline is None


@pytest.mark.parametrize(
    "registered, status, extended",
    [
        (date(2026, 3, 9), "available", date(2028, 3, 10)),  # the day before the deadline
        (date(2026, 3, 10), "registered_too_late", None),  # on the deadline day: too late
        (date(2026, 9, 1), "registered_too_late", None),
        (date(2020, 5, 5), "available", date(2028, 3, 10)),  # registering before the purchase counts
        (date(2025, 3, 10), "available", date(2028, 3, 10)),  # the purchase day itself
    ],
)
def test_registration_before_the_deadline_gives_the_extended_warranty(registered, status, extended):
    v = evaluate(facts(member=member(registered)), VIP)
    assert v.benefit_status == status and v.extended_warranty_end == extended
    assert v.trade_in_opens == date(2025, 7, 10)  # the trade-in has no registration deadline


@pytest.mark.parametrize(
    "purchase, opens, extended",
    [
        (date(2025, 3, 10), date(2025, 7, 10), date(2028, 3, 10)),
        (date(2026, 10, 31), date(2027, 2, 28), date(2029, 10, 31)),  # month-end clamp
        (date(2027, 10, 31), date(2028, 2, 29), date(2030, 10, 31)),
        (date(2024, 2, 29), date(2024, 6, 29), date(2027, 2, 28)),  # leap day
        (date(2023, 11, 30), date(2024, 3, 30), date(2026, 11, 30)),
    ],
)
def test_trade_in_opens_four_months_after_purchase(purchase, opens, extended):
    v = evaluate(facts(purchase_date=purchase, member=member(date(2020, 1, 1))), VIP)
    assert v.trade_in_opens == opens and v.extended_warranty_end == extended
    assert v.trade_in_closes is None  # the FAQ sets no closing date


def test_a_policy_may_close_the_trade_in():
    closing = VIP.model_copy(update={"trade_in": VIP.trade_in.model_copy(update={"closes_after_months": 36})})
    assert evaluate(facts(member=member()), closing).trade_in_closes == date(2028, 3, 10)


# ---------------------------------------------------------------- membership
def test_eligible_unit_with_nobody_linked_is_not_member():
    v = evaluate(facts(), VIP)
    assert v.eligible and v.benefit_status == "not_member" and v.member_id is None
    assert v.extended_warranty_end is None and v.trade_in_opens is None
    assert v.registration_deadline == date(2026, 3, 10)


def test_an_exit_ends_the_benefits():
    v = evaluate(facts(member=member(date(2025, 1, 1), exited=date(2025, 6, 1))), VIP)
    assert v.benefit_status == "member_exited" and v.member_id == 7
    assert v.extended_warranty_end is None and v.trade_in_opens is None


def test_an_exit_on_the_registration_day_counts():
    v = evaluate(facts(member=member(date(2025, 6, 1), exited=date(2025, 6, 1))), VIP)
    assert v.benefit_status == "member_exited"


def test_a_new_registration_after_an_exit_is_a_new_registration_date():
    in_time = evaluate(facts(member=member(date(2025, 9, 1), exited=date(2025, 6, 1))), VIP)
    assert in_time.benefit_status == "available" and in_time.extended_warranty_end == date(2028, 3, 10)
    late = evaluate(facts(member=member(date(2026, 4, 1), exited=date(2025, 6, 1))), VIP)
    assert late.benefit_status == "registered_too_late" and late.extended_warranty_end is None
    assert late.trade_in_opens == date(2025, 7, 10)


def test_a_member_without_a_registration_is_not_active():
    v = evaluate(facts(member=member(None)), VIP)
    assert v.benefit_status == "member_exited" and v.extended_warranty_end is None


# ---------------------------------------------------------------- one benefit per unit
def test_an_exchange_uses_the_benefit_and_closes_the_trade_in():
    v = evaluate(facts(member=member(), claim=ClaimFacts("exchange", date(2026, 6, 1))), VIP)
    assert v.benefit_status == "exchange_used"
    assert v.extended_warranty_end == date(2028, 3, 10) and v.trade_in_opens is None


def test_a_trade_in_uses_the_benefit_and_ends_the_extended_warranty():
    v = evaluate(facts(member=member(), claim=ClaimFacts("trade_in", date(2025, 8, 1))), VIP)
    assert v.benefit_status == "trade_in_used"
    assert v.extended_warranty_end is None and v.trade_in_opens == date(2025, 7, 10)


# ---------------------------------------------------------------- both policy versions
def test_tesmart_id_terms_have_no_registration_deadline():
    late = member(date(2027, 1, 1))
    assert evaluate(facts(member=late), VIP).benefit_status == "registered_too_late"
    v = evaluate(facts(member=late), TID)
    assert v.policy_version == "tesmart-id-2025-11-01"
    assert v.registration_deadline is None and v.benefit_status == "available"
    assert v.extended_warranty_end == date(2028, 3, 10)  # the same end date as VIP


@pytest.mark.parametrize(
    "purchase, opens",
    [
        (date(2025, 11, 1), date(2026, 1, 30)),  # 90 days, not 4 months
        (date(2025, 12, 1), date(2026, 3, 1)),
        (date(2027, 12, 1), date(2028, 2, 29)),  # across a leap day
    ],
)
def test_tesmart_id_trade_in_opens_after_90_days(purchase, opens):
    v = evaluate(facts(purchase_date=purchase, member=member(date(2025, 1, 1))), TID)
    assert v.trade_in_opens == opens


def test_tesmart_id_keeps_the_german_two_years_and_the_scope_rules():
    v = evaluate(facts(country="DE", member=member()), TID)
    assert v.original_warranty_end == date(2027, 3, 10) and v.extended_warranty_end == date(2028, 3, 10)
    assert evaluate(facts(country="GB"), TID).reasons == ("region_not_eligible",)
    assert evaluate(facts(official=False), TID).reasons == ("not_official_channel",)


def test_the_verdict_names_its_policy_version_and_echoes_the_facts():
    f = facts(country="FR", purchase_date=date(2025, 5, 5), member=member())
    v = evaluate(f, VIP)
    assert (v.policy_version, v.country, v.purchase_date, v.category, v.member_id) == (
        "vip-2024",
        "FR",
        date(2025, 5, 5),
        "kvm_switch",
        7,
    )


def test_the_digest_changes_with_any_field_and_only_then():
    a = evaluate(facts(member=member()), VIP)
    assert a.digest() == evaluate(facts(member=member()), VIP).digest()
    for changed in (
        dataclasses.replace(a, extended_warranty_end=None),
        dataclasses.replace(a, benefit_status="not_member"),
        dataclasses.replace(a, policy_version="x"),
        dataclasses.replace(a, member_id=8),
        dataclasses.replace(a, reasons=("refunded",)),
    ):
        assert changed.digest() != a.digest()
