"""Policy files: validation with the file, the key and the reason; version selection."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from vipsync.eligibility.loader import load_policies, load_policy, parse_policy
from vipsync.eligibility.policy import PolicySet, select_policy
from vipsync.errors import PolicyError

POLICIES = Path(__file__).resolve().parents[2] / "vipsync" / "config" / "policies"
VIP_TEXT = (POLICIES / "vip-2024.toml").read_text()
VIP_DOC = tomllib.loads(VIP_TEXT)


def doc(**changes) -> dict:
    """The VIP document with dotted keys changed (value None removes the key)."""
    d = tomllib.loads(VIP_TEXT)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = d
        for p in path:
            node = node[p]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return d


def version(name: str, effective: date, *, enabled: bool = True, retroactive: bool = False):
    return parse_policy(doc(version=name, effective_from=effective, enabled=enabled, retroactive=retroactive))


# ---------------------------------------------------------------- shipped files
def test_shipped_vip_policy_is_enabled_with_the_faq_numbers():
    p = load_policy(POLICIES / "vip-2024.toml")
    assert (p.version, p.enabled, p.retroactive) == ("vip-2024", True, False)
    assert p.effective_from <= date(2014, 1, 1)  # covers all order history
    assert p.warranty.original_years == 1 and p.warranty.original_years_for("DE") == 2
    assert p.warranty.extended_years == 3
    assert p.registration.deadline == "original_warranty_end"
    assert (p.trade_in.opens_after_months, p.trade_in.opens_after_days) == (4, 0)
    assert p.trade_in.terms == "percent_of_original_price" and p.trade_in.percent == Decimal(30)
    assert p.exchange.replacement_days == 90
    assert p.scope.official_only and p.scope.categories == frozenset({"kvm_switch"})


def test_shipped_tesmart_id_terms_are_a_disabled_second_version():
    p = load_policy(POLICIES / "tesmart-id-2025-11-01.toml")
    assert (p.enabled, p.effective_from) == (False, date(2025, 11, 1))
    assert p.registration.deadline == "none" and p.registration.membership == "verified_email"
    assert (p.trade_in.opens_after_months, p.trade_in.opens_after_days) == (0, 90)
    assert [(b.under_months, b.percent) for b in p.trade_in.bands] == [(36, 50), (48, 40), (60, 30)]


def test_the_shipped_directory_selects_vip_for_every_date_until_tesmart_id_is_enabled():
    ps = load_policies(POLICIES)
    assert ps.select(date(2014, 1, 1)).version == "vip-2024"
    assert ps.select(date(2026, 6, 1)).version == "vip-2024"


# ---------------------------------------------------------------- selection
def test_latest_enabled_version_on_or_before_the_purchase_date_wins():
    a, b = version("a", date(2014, 1, 1)), version("b", date(2025, 11, 1))
    assert select_policy([a, b], date(2025, 10, 31)).version == "a"
    assert select_policy([a, b], date(2025, 11, 1)).version == "b"  # on the effective day
    assert select_policy([b, a], date(2026, 1, 1)).version == "b"


def test_disabled_versions_are_never_selected():
    a, b = version("a", date(2014, 1, 1)), version("b", date(2025, 11, 1), enabled=False)
    assert select_policy([a, b], date(2026, 1, 1)).version == "a"


def test_a_later_retroactive_version_judges_earlier_purchases():
    a = version("a", date(2014, 1, 1))
    r = version("r", date(2026, 1, 1), retroactive=True)
    assert select_policy([a, r], date(2024, 5, 5)).version == "r"
    assert select_policy([a, r], date(2026, 5, 5)).version == "r"
    disabled = version("r", date(2026, 1, 1), retroactive=True, enabled=False)
    assert select_policy([a, disabled], date(2024, 5, 5)).version == "a"


def test_a_retroactive_version_is_outranked_by_a_later_ordinary_version_for_later_purchases():
    r = version("r", date(2020, 1, 1), retroactive=True)
    b = version("b", date(2025, 1, 1))
    assert select_policy([r, b], date(2019, 1, 1)).version == "r"
    assert select_policy([r, b], date(2025, 2, 1)).version == "b"


def test_a_purchase_before_every_version_has_no_policy():
    with pytest.raises(PolicyError, match="2013-12-31"):
        select_policy([version("a", date(2014, 1, 1))], date(2013, 12, 31))


def test_a_version_defined_twice_is_refused():
    with pytest.raises(PolicyError, match="twice"):
        PolicySet((version("a", date(2014, 1, 1)), version("a", date(2015, 1, 1))))


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "changes, key, reason",
    [
        ({"version": None}, "version", "required"),
        ({"effective_from": "soon"}, "effective_from", "date"),
        ({"enabled": None}, "enabled", "required"),
        ({"warranty__extended_years": 2}, "warranty", "must exceed every original warranty"),
        ({"warranty__original_years": 0}, "warranty.original_years", "greater than or equal to 1"),
        ({"warranty__original_years_by_country": {"UK": 2}}, "warranty.original_years_by_country", "GB"),
        ({"scope__regions": ["US", "Germany"]}, "scope.regions", "alpha-2"),
        ({"scope__categories": ["kvm"]}, "scope.categories", "unknown categories"),
        ({"registration__deadline": "never"}, "registration.deadline", "original_warranty_end"),
        ({"trade_in__percent": None}, "trade_in", "percent: required"),
        ({"trade_in__percent": 130}, "trade_in.percent", "less than or equal to 100"),
        ({"trade_in__opens_after_months": 0}, "trade_in", "opens_after_months or opens_after_days"),
        ({"trade_in__terms": "share_of_amount_paid_by_age"}, "trade_in", "bands: required"),
        ({"exchange__replacement_days": -1}, "exchange.replacement_days", "greater than or equal to 0"),
        ({"colour": "blue"}, "colour", "unknown key"),
        ({"trade_in__discount": 5}, "trade_in.discount", "unknown key"),
    ],
)
def test_a_bad_policy_file_names_the_file_the_key_and_the_reason(tmp_path, changes, key, reason):
    path = tmp_path / "bad.toml"
    path.write_text(_dump(doc(**changes)))
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}:"), message
    assert reason in message


def test_the_test_writer_round_trips_the_shipped_policy(tmp_path):
    path = tmp_path / "same.toml"
    path.write_text(_dump(doc()))
    assert load_policy(path) == load_policy(POLICIES / "vip-2024.toml")


def test_invalid_toml_and_a_missing_file_name_the_file(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("version = \n")
    with pytest.raises(PolicyError, match=r"broken\.toml is not valid TOML"):
        load_policy(bad)
    with pytest.raises(PolicyError, match=r"nothere\.toml does not exist"):
        load_policy(tmp_path / "nothere.toml")


def test_a_policies_directory_needs_an_enabled_version_and_unique_versions(tmp_path):
    (tmp_path / "a.toml").write_text(_dump(doc(enabled=False)))
    with pytest.raises(PolicyError, match="no enabled policy version"):
        load_policies(tmp_path)
    (tmp_path / "b.toml").write_text(_dump(doc()))
    with pytest.raises(PolicyError, match=r"b\.toml: version: 'vip-2024' is already defined"):
        load_policies(tmp_path)
    with pytest.raises(PolicyError, match="does not exist"):
        load_policies(tmp_path / "missing")


def _dump(d: dict) -> str:
    """A tiny TOML writer for the policy documents of these tests."""
    lines: list[str] = []

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float, date)):
            return v.isoformat() if isinstance(v, date) else str(v)
        if isinstance(v, str):
            return '"' + v.replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(v)

    tables = {}
    for k, v in d.items():
        if isinstance(v, dict) and k in {"scope", "warranty", "registration", "exchange", "trade_in"}:
            tables[k] = v
        else:
            lines.append(f"{k} = {value(v)}")
    for name, table in tables.items():
        arrays = {k: v for k, v in table.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
        lines.append(f"[{name}]")
        lines += [f"{k} = {value(v)}" for k, v in table.items() if k not in arrays]
        for k, items in arrays.items():
            for item in items:
                lines.append(f"[[{name}.{k}]]")
                lines += [f"{ik} = {value(iv)}" for ik, iv in item.items()]
    return "\n".join(lines) + "\n"
