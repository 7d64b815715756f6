"""The catalog classifier: exact SKU, then SKU patterns, then ordered title keywords."""

from __future__ import annotations

from pathlib import Path

import pytest

from vipsync.eligibility.catalog import CATEGORIES
from vipsync.eligibility.loader import load_catalog, parse_catalog
from vipsync.errors import ConfigError

CATALOG_FILE = Path(__file__).resolve().parents[2] / "vipsync" / "config" / "catalog.toml"
CATALOG = load_catalog(CATALOG_FILE)


@pytest.mark.parametrize(
    "sku, category",
    [
        ("HKS0401A3U", "kvm_switch"),
        ("HKS0802A1U", "kvm_switch"),
        ("HKS1601A1U", "kvm_switch"),
        ("DKS0401A30", "kvm_switch"),
        ("HDK202-P23", "kvm_switch"),
        ("HMA404-L23", "matrix"),
        ("HMA0808A10", "matrix"),
        ("HME040410H", "matrix"),
        ("HKE0802A10", "accessory"),  # a KVM control panel: the HK prefix does not decide
        (" hks0401a3u ", "kvm_switch"),  # SKUs compare trimmed and upper-cased
    ],
)
def test_known_tesmart_models_are_listed_exactly(sku, category):
    assert CATALOG.explain(sku, "")[0] == category
    assert CATALOG.explain(sku, "")[1] == "sku"


@pytest.mark.parametrize(
    "sku, category",
    [
        ("HKS0801A2U", "kvm_switch"),
        ("HKS0202A1U", "kvm_switch"),
        ("DKS0801A10", "kvm_switch"),
        ("HDK402-P21", "kvm_switch"),
        ("HMA0404A20", "matrix"),
        ("HME080810H", "matrix"),
        ("HSW0401A1U", "other"),  # HDMI switches are not KVM switches
    ],
)
def test_precise_patterns_place_new_models_of_a_known_family(sku, category):
    cat, rule = CATALOG.explain(sku, "")
    assert cat == category and rule.startswith("pattern:")


@pytest.mark.parametrize("sku", ["HKE0402A10", "HKS", "HKS0401", "HKS0401A3U-X-Y", "HK0401A3U", "HDK", "HMA"])
def test_a_prefix_alone_never_decides(sku):
    assert CATALOG.classify(sku, "") == "unknown"


@pytest.mark.parametrize(
    "title, category",
    [
        ("TESmart HDMI KVM Extender over Cat6 60m", "kvm_extender"),
        ("4K HDMI KVM Switch 4 Port with USB 3.0", "kvm_switch"),
        ("TESmart 4x4 HDMI Matrix Switch 4K60", "matrix"),
        ("1x4 HDMI Splitter 4K", "hdmi_splitter"),
        ("KVM Control Panel for 8 port KVM", "accessory"),
        ("8 Port HDMI KVM Switch with 8 KVM cables", "kvm_switch"),  # a switch shipped with cables
        ("KVM Cable USB HDMI 1.5m", "accessory"),
        ("IR Remote Controller", "accessory"),
        ("12V Power Adapter", "accessory"),
        ("DC Power Adaptor EU plug", "accessory"),
        ("3 Port HDMI Switch", "other"),
        ("Dual monitor KVM switcher", "kvm_switch"),
        ("Something else entirely", "unknown"),
        ("kvm-switch 2 port", "kvm_switch"),  # separators between words
        ("Superextender Box", "unknown"),  # phrases start at a word boundary
        ("KVM Cables set", "accessory"),  # and may end inside one (plurals)
    ],
)
def test_ordered_title_keywords_first_match_wins(title, category):
    assert CATALOG.classify("NEW-MODEL-1", title) == category


def test_exact_sku_outranks_pattern_and_title():
    assert CATALOG.classify("HKE0802A10", "8 Port KVM Switch") == "accessory"
    assert CATALOG.classify("HKS0801A2U", "HDMI KVM Extender") == "kvm_switch"


def test_a_catalog_with_a_title_rule_order_reversed_changes_the_answer():
    doc = {
        "version": "t",
        "keywords": [
            {"all": ["kvm switch"], "category": "kvm_switch"},
            {"all": ["extender"], "category": "kvm_extender"},
        ],
    }
    assert parse_catalog(doc).classify("X", "HDMI KVM Switch Extender") == "kvm_switch"
    doc["keywords"].reverse()
    assert parse_catalog(doc).classify("X", "HDMI KVM Switch Extender") == "kvm_extender"


def test_keyword_rules_with_none_phrases():
    doc = {
        "version": "t",
        "keywords": [{"all": ["switch"], "none": ["hdmi switch"], "category": "kvm_switch"}],
    }
    cat = parse_catalog(doc)
    assert cat.classify("X", "USB switch box") == "kvm_switch"
    assert cat.classify("X", "4 port HDMI switch") == "unknown"


def test_every_category_name_is_known():
    assert set(CATEGORIES) == {
        "kvm_switch",
        "matrix",
        "hdmi_splitter",
        "kvm_extender",
        "accessory",
        "other",
        "unknown",
    }


@pytest.mark.parametrize(
    "doc, key, reason",
    [
        ({}, "version", "required"),
        ({"version": "v", "skus": {"A1": "kvm"}}, "skus.A1", "unknown category"),
        ({"version": "v", "skus": {"A1": "unknown"}}, "skus.A1", "unknown category"),
        (
            {"version": "v", "patterns": [{"regex": "^HKS", "category": "kvm_switch"}]},
            "patterns[0].regex",
            "anchored",
        ),
        (
            {"version": "v", "patterns": [{"regex": "^HKS(\\d$", "category": "kvm_switch"}]},
            "patterns[0].regex",
            "not a valid",
        ),
        ({"version": "v", "patterns": [{"regex": "^A$"}]}, "patterns[0]", "regex and category"),
        ({"version": "v", "keywords": [{"all": [], "category": "other"}]}, "keywords[0].all", "at least one"),
        ({"version": "v", "keywords": [{"all": "kvm", "category": "other"}]}, "keywords[0].all", "list"),
        (
            {"version": "v", "keywords": [{"all": ["x"], "category": "other", "any": ["y"]}]},
            "keywords[0]",
            "optionally none",
        ),
        ({"version": "v", "rules": []}, "rules", "unknown key"),
        ({"version": "v", "skus": {"A1": "other", "a1": "other"}}, "skus.a1", "listed twice"),
    ],
)
def test_a_bad_catalog_names_the_file_the_key_and_the_reason(doc, key, reason):
    with pytest.raises(ConfigError) as err:
        parse_catalog(doc, source="catalog.toml")
    assert str(err.value).startswith(f"catalog.toml: {key}"), str(err.value)
    assert reason in str(err.value)


def test_a_missing_or_broken_catalog_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nothere\.toml does not exist"):
        load_catalog(tmp_path / "nothere.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[skus\n")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        load_catalog(bad)
