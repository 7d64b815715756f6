"""Ops decisions kept in the store: classify a SKU or a SKU-less line, enable or disable a
policy version; every process applies them, only the affected units are re-tagged."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from vipsync.bootstrap import Context, set_context
from vipsync.cli.main import app
from vipsync.config.settings import Settings
from vipsync.devtools.factories import order_record
from vipsync.errors import VipsyncError
from vipsync.store.models import CatalogDecision, Claim, PolicyDecision, Unit, UnitTag
from vipsync.store.repository import Repository
from vipsync.workers.decisions import classify, set_policy

runner = CliRunner()
VIPSYNC = Path(sys.executable).parent / "vipsync"


def _default_env(ctx, db_url: str) -> dict[str, str]:
    """A process with default settings: no VIPSYNC_* variable but the database, the data
    directory and the personal-data key (a secret every process needs)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("VIPSYNC_") or k.startswith("VIPSYNC_PII_KEY")
    }
    env.update(VIPSYNC_DATABASE_URL=db_url, VIPSYNC_DATA_DIR=str(ctx.settings.data_dir))
    return env


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _load(ctx) -> None:
    no_sku = order_record(3, lines=(("", 2),), purchased_at=datetime(2025, 6, 1, 9, tzinfo=UTC))
    no_sku = dataclasses.replace(
        no_sku, lines=tuple(dataclasses.replace(line, title="Mystery  Gift box") for line in no_sku.lines)
    )
    with ctx.session_factory() as s:
        Repository(s).upsert_orders(
            [
                order_record(1, lines=(("HKS0401A3U", 1), ("zz-new-1", 2))),
                order_record(
                    2, store_key="shopify-eu", country="DE", purchased_at=datetime(2025, 12, 5, 9, tzinfo=UTC)
                ),
                no_sku,
                order_record(
                    4, store_key="shopify-eu", country="DE", purchased_at=datetime(2025, 12, 6, 9, tzinfo=UTC)
                ),
                order_record(5, store_key="shopify-us", purchased_at=datetime(2025, 12, 7, 9, tzinfo=UTC)),
            ]
        )
        s.commit()


def _tags(ctx) -> dict[tuple[str, str, int], UnitTag]:
    with ctx.session_factory() as s:
        rows = s.execute(select(Unit.order_external_id, Unit.sku, Unit.ordinal, UnitTag).join(UnitTag)).all()
        return {(o, sku, n): t for o, sku, n, t in rows}


def test_sku_classified_by_the_command_survives_a_tag_run_with_default_settings(context, db_url):
    _load(context)
    _run("tag")
    assert _tags(context)[("1000001", "zz-new-1", 1)].category == "unknown"
    unclassified = json.loads(_run("catalog", "unclassified", "--format", "json"))
    assert {"sku": "zz-new-1", "orders": 1, "units": 2}.items() <= next(
        r for r in unclassified if r["sku"] == "zz-new-1"
    ).items()

    out = _run("catalog", "classify", "ZZ-NEW-1", "kvm_switch", "--note", "new 4-port model")
    assert "2 unit(s) re-tagged" in out
    tags = _tags(context)
    assert tags[("1000001", "zz-new-1", 1)].category == "kvm_switch"
    assert tags[("1000001", "zz-new-1", 2)].eligible is not None
    assert "zz-new-1" not in [
        r["sku"] for r in json.loads(_run("catalog", "unclassified", "--format", "json"))
    ]

    # Another process, default settings (the packaged catalog.toml, no catalog variable).
    env = _default_env(context, db_url)
    done = subprocess.run(
        [str(VIPSYNC), "tag", "--all"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert _tags(context)[("1000001", "zz-new-1", 2)].category == "kvm_switch"
    with context.session_factory() as s:
        decision = s.execute(select(CatalogDecision)).scalar_one()
    assert (decision.sku, decision.category, decision.note) == ("ZZ-NEW-1", "kvm_switch", "new 4-port model")
    assert decision.decided_by.startswith("cli:") and decision.decided_at is not None


def test_lines_without_a_sku_are_listed_by_title_and_classified_by_title(context):
    _load(context)
    _run("tag")
    rows = json.loads(_run("catalog", "unclassified", "--format", "json"))
    no_sku = [r for r in rows if r["sku"] == ""]
    assert no_sku == [
        {"sku": "", "title": "Mystery  Gift box", "category": "no_sku", "orders": 1, "units": 2}
    ]
    _run("catalog", "classify", "--title", "mystery gift BOX", "accessory")
    tags = _tags(context)
    assert {tags[("1000003", "", n)].category for n in (1, 2)} == {"accessory"}
    assert not [r for r in json.loads(_run("catalog", "unclassified", "--format", "json")) if r["sku"] == ""]


def test_a_classify_dry_run_lists_the_units_and_writes_nothing(context):
    _load(context)
    _run("tag")
    before = {k: (t.category, t.tagged_at) for k, t in _tags(context).items()}
    out = json.loads(_run("catalog", "classify", "zz-new-1", "kvm_switch", "--dry-run", "--json"))
    assert out["dry_run"] is True and out["affected_units"] == 2 and out["changed_units"] == 2
    assert {c["sku"] for c in out["changes"]} == {"zz-new-1"}
    assert {k: (t.category, t.tagged_at) for k, t in _tags(context).items()} == before
    with context.session_factory() as s:
        assert s.execute(select(func.count()).select_from(CatalogDecision)).scalar_one() == 0


def test_classify_re_tags_only_the_units_of_the_sku(context):
    _load(context)
    _run("tag")
    before = {k: t.tagged_at for k, t in _tags(context).items()}
    result = classify(context, "zz-new-1", "accessory", decided_by="api:support-desk")
    assert result.affected_units == 2
    after = {k: t.tagged_at for k, t in _tags(context).items()}
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {("1000001", "zz-new-1", 1), ("1000001", "zz-new-1", 2)}


def test_enabling_tesmart_id_judges_only_eu_units_bought_since_and_keeps_claims(context):
    _load(context)
    _run("tag")
    eu_late = ("1000002", "HKS0401A3U", 1)
    us_late = ("1000005", "HKS0401A3U", 1)
    claimed_eu = ("1000004", "HKS0401A3U", 1)
    with context.session_factory() as s:
        uid = s.execute(select(Unit.id).where(Unit.order_external_id == "1000004")).scalar_one()
        s.add(
            Claim(
                unit_id=uid,
                kind="exchange",
                claimed_on=date(2026, 1, 2),
                policy_version="vip-2024",
                created_at=datetime.now(UTC),
            )
        )
        s.commit()
    dry = json.loads(_run("policy", "enable", "tesmart-id-2025-11-01", "--dry-run", "--json"))
    assert dry["affected_units"] == 1 and dry["claimed_units"] == [uid]
    assert [c["version_after"] for c in dry["changes"]] == ["tesmart-id-2025-11-01"]
    assert _tags(context)[eu_late].policy_version == "vip-2024"

    _run("policy", "enable", "tesmart-id-2025-11-01", "--note", "TESmart ID launch")
    tags = _tags(context)
    assert tags[eu_late].policy_version == "tesmart-id-2025-11-01"
    assert tags[us_late].policy_version == "vip-2024"  # limited to the EU stores
    assert tags[claimed_eu].policy_version == "vip-2024"  # the claim's version stays
    listed = {r["version"]: r for r in json.loads(_run("policy", "list", "--json"))}
    assert listed["tesmart-id-2025-11-01"]["enabled"] is True
    assert listed["tesmart-id-2025-11-01"]["stores"] == ["amazon-eu", "shopify-eu"]
    assert listed["tesmart-id-2025-11-01"]["note"] == "TESmart ID launch"

    # Widened to the US store by a decision, then disabled: the store's latest decision wins.
    set_policy(
        context, "tesmart-id-2025-11-01", enabled=True, stores=["shopify-us", "shopify-eu"], decided_by="ops"
    )
    assert _tags(context)[us_late].policy_version == "tesmart-id-2025-11-01"
    _run("policy", "disable", "tesmart-id-2025-11-01")
    tags = _tags(context)
    assert tags[eu_late].policy_version == tags[us_late].policy_version == "vip-2024"
    with context.session_factory() as s:
        assert s.execute(select(func.count()).select_from(PolicyDecision)).scalar_one() == 3


@pytest.mark.parametrize(
    "args",
    [
        ["catalog", "classify", "ZZ-1", "gadget"],
        ["catalog", "classify", "  ", "kvm_switch"],
        ["policy", "enable", "no-such-version"],
        ["policy", "disable", "vip-2024"],
        ["policy", "enable", "tesmart-id-2025-11-01", "--store", "shopify-mars"],
        ["policy", "enable", "tesmart-id-2025-11-01", "--country", "UK"],
    ],
)
def test_bad_decisions_are_refused_with_one_clear_line(context, args):
    result = runner.invoke(app, args)
    assert isinstance(result.exception, VipsyncError), result.exception
    with context.session_factory() as s:
        assert s.execute(select(func.count()).select_from(CatalogDecision)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(PolicyDecision)).scalar_one() == 0


def test_grant_readonly_is_refused_on_sqlite_which_has_no_roles(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VIPSYNC_DATABASE_URL", sqlite_url)
    set_context(Context(settings=Settings(), database_url=sqlite_url))
    try:
        result = runner.invoke(app, ["db", "grant-readonly", "dash"])
    finally:
        set_context(None)
    assert isinstance(result.exception, VipsyncError), result.exception
    assert "PostgreSQL" in str(result.exception)


def test_the_bad_decision_exits_2_without_a_traceback(context, db_url):
    env = _default_env(context, db_url)
    done = subprocess.run(
        [str(VIPSYNC), "catalog", "classify", "ZZ-1", "gadget"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "category" in done.stderr and "gadget" in done.stderr and "Traceback" not in done.stderr


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.text(max_size=200),
    category=st.sampled_from(["kvm_switch", "accessory", "unknown", "", "KVM_SWITCH", "x" * 40]),
    note=st.text(max_size=3000),
    by_title=st.booleans(),
)
def test_hostile_classifications_are_kept_or_refused_never_crash(context, key, category, note, by_title):
    try:
        result = classify(
            context, key, category, by_title=by_title, note=note, decided_by="fuzz", dry_run=True
        )
    except VipsyncError as exc:
        assert str(exc)
    else:
        assert result.dry_run and result.affected_units >= 0
