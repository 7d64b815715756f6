"""`vipsync tag`, `vipsync units` and `vipsync catalog unclassified` through the real CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

from typer.testing import CliRunner

from vipsync.cli.main import app
from vipsync.connectors.records import MemberRecord, email_digest
from vipsync.devtools.factories import order_record
from vipsync.store.repository import Repository

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parents[2] / "vipsync" / "samples"
FIELDS = [
    "store",
    "order_id",
    "order_name",
    "sku",
    "category",
    "country",
    "purchase_date",
    "eligible",
    "reasons",
    "original_warranty_end",
    "registration_deadline",
    "member",
    "extended_warranty_end",
    "trade_in_opens",
    "benefit_status",
    "policy_version",
]


def _run(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _load(ctx) -> None:
    email = "vip@example.com"
    with ctx.session_factory() as s:
        repo = Repository(s)
        repo.upsert_orders(
            [
                order_record(
                    1,
                    purchased_at=datetime(2024, 2, 29, 18, tzinfo=UTC),
                    email=email,
                    lines=(("HKS0401A3U", 3), ("CAB-X", 1)),
                    refunded={"HKS0401A3U": 1},
                ),
                order_record(
                    2, store_key="shopify-eu", country="DE", purchased_at=datetime(2025, 1, 10, 9, tzinfo=UTC)
                ),
            ]
        )
        repo.upsert_members(
            [MemberRecord(email_hash=email_digest(email), registered_at=date(2024, 5, 1), country="US")]
        )
        s.commit()


def test_tag_then_units_json_is_one_array_with_every_documented_field(context):
    _load(context)
    out = _run("tag")
    assert "inserted" in out and "5" in out
    units = json.loads(_run("units", "--format", "json", "--as-of", "2025-02-10"))
    assert isinstance(units, list) and len(units) == 5
    for u in units:
        assert set(FIELDS) <= set(u)
    by_key = {(u["order_name"], u["sku"], u["ordinal"]): u for u in units}
    first = by_key[("#1001", "HKS0401A3U", 1)]
    assert first == first | {
        "store": "shopify-us",
        "order_id": "1000001",
        "category": "kvm_switch",
        "country": "US",
        "purchase_date": "2024-02-29",
        "eligible": True,
        "reasons": [],
        "original_warranty_end": "2025-02-28",
        "registration_deadline": "2025-02-28",
        "extended_warranty_end": "2027-02-28",
        "trade_in_opens": "2024-06-29",
        "benefit_status": "available",
        "policy_version": "vip-2024",
        "original_warranty_status": "closing_soon",
        "trade_in_status": "active",
        "extended_warranty_status": "not_started",
    }
    assert isinstance(first["member"], int)  # the pseudonymous id, never an e-mail
    refunded = by_key[("#1001", "HKS0401A3U", 3)]
    assert refunded["reasons"] == ["refunded"] and refunded["original_warranty_end"] is None
    cable = by_key[("#1001", "CAB-X", 1)]
    assert cable["reasons"] == ["unclassified_sku"] and cable["registration_deadline"] is None
    german = by_key[("#1002", "HKS0401A3U", 1)]
    assert german["original_warranty_end"] == "2027-01-10" and german["benefit_status"] == "not_member"
    assert german["extended_warranty_end"] is None and german["member"] is None


def test_units_filters_and_csv(context):
    _load(context)
    _run("tag")
    only_eu = json.loads(_run("units", "--format", "json", "--store", "shopify-eu"))
    assert [u["order_name"] for u in only_eu] == ["#1002"]
    by_name = json.loads(_run("units", "--format", "json", "--order", "#1001"))
    by_id = json.loads(_run("units", "--format", "json", "--order", "1000001"))
    assert len(by_name) == 4 and by_name == by_id
    rows = list(
        csv.DictReader(
            io.StringIO(_run("units", "--format", "csv", "--order", "#1002", "--as-of", "2025-02-01"))
        )
    )
    assert (
        rows[0]["eligible"] == "true" and rows[0]["extended_warranty_end"] == "" and rows[0]["reasons"] == ""
    )
    assert set(FIELDS) <= set(rows[0])
    table = _run("units", "--as-of", "2025-02-01")
    assert "#1001" in table and "5 unit(s)" in table
    assert json.loads(_run("units", "--format", "json", "--order", "#9999")) == []


def test_units_refuses_a_bad_date_and_a_bad_format(context):
    for args in (["units", "--as-of", "31/12/2025"], ["units", "--format", "xml"], ["tag", "--dry-run"]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0


def test_tag_all_rewrites_nothing_when_nothing_changed(context):
    _load(context)
    _run("tag")
    out = _run("tag", "--all")
    assert "tagging (all)" in out
    assert json.loads(_run("units", "--format", "json"))[0]["policy_version"] == "vip-2024"


def test_catalog_unclassified_lists_skus_with_order_counts(context):
    _load(context)
    _run("tag")
    rows = json.loads(_run("catalog", "unclassified", "--format", "json"))
    assert rows == [
        {"sku": "CAB-X", "title": "TESmart CAB-X", "category": "unknown", "orders": 1, "units": 1}
    ]
    assert "CAB-X" in _run("catalog", "unclassified")


def test_the_sample_orders_tag_without_personal_data(context):
    _run("import", "shopify", str(SAMPLES / "shopify_orders_sample.jsonl"), "--store", "shopify-us")
    _run("members", "import", str(SAMPLES / "members_sample.csv"))
    _run("tag")
    out = _run("units", "--format", "json")
    units = json.loads(out)
    assert units and all(u["tagged"] for u in units)
    assert "@" not in out
    for u in units:
        assert u["eligible"] == (u["reasons"] == [])
        if u["extended_warranty_end"]:
            assert u["extended_warranty_end"] > u["original_warranty_end"]


def test_a_bad_policy_file_stops_tagging_naming_the_file_and_key(context, tmp_path, monkeypatch):
    from vipsync.bootstrap import Context, set_context
    from vipsync.config.settings import Settings
    from vipsync.errors import PolicyError

    bad = tmp_path / "policies"
    bad.mkdir()
    src = (
        Path(__file__).resolve().parents[2] / "vipsync" / "config" / "policies" / "vip-2024.toml"
    ).read_text()
    (bad / "vip.toml").write_text(src.replace("extended_years = 3", "extended_years = 1"))
    monkeypatch.setenv("VIPSYNC_POLICIES_DIR", str(bad))
    set_context(Context(settings=Settings(), database_url=context.database_url))
    result = runner.invoke(app, ["tag"])
    assert isinstance(result.exception, PolicyError)
    assert str(bad / "vip.toml") in str(result.exception) and "warranty" in str(result.exception)
