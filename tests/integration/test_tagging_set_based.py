"""The set-based tagging path (one fact query per batch, units sharing facts judged once,
tags written by COPY / staging UPDATE on PostgreSQL and executemany on SQLite) writes
exactly what judging each unit on its own gives; claimed units stay under their claim's
policy version. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from vipsync.connectors.records import MemberRecord, email_digest
from vipsync.devtools.factories import order_record
from vipsync.store.models import Claim, ImportError_, Order, Unit, UnitTag
from vipsync.store.repository import Repository
from vipsync.workers.tagging import _TagWriter, load_rules, retag_all, tag_pending, verdicts_for_units

CONFIG = Path(__file__).resolve().parents[2] / "vipsync" / "config"
TAG_FIELDS = (
    "policy_version",
    "category",
    "country",
    "purchase_date",
    "eligible",
    "reasons",
    "valid_purchase",
    "original_warranty_end",
    "registration_deadline",
    "extended_warranty_end",
    "trade_in_opens",
    "member_id",
    "benefit_status",
)
SKUS = ("HKS0401A3U", "HKS0802A1U", "ZZ-UNKNOWN-1")
STORES = ("shopify-us", "shopify-eu")


def _context(context, tmp_path: Path, monkeypatch):
    from vipsync.bootstrap import Context, set_context
    from vipsync.config.settings import Settings

    policies = tmp_path / "policies"
    shutil.copytree(CONFIG / "policies", policies)
    monkeypatch.setenv("VIPSYNC_POLICIES_DIR", str(policies))
    ctx = Context(settings=Settings(), database_url=context.database_url)
    set_context(ctx)
    return ctx, policies


def _enable_tesmart_id(policies: Path, *, everywhere: bool = False, enabled: bool = True) -> None:
    path = policies / "tesmart-id-2025-11-01.toml"
    body = (CONFIG / "policies" / "tesmart-id-2025-11-01.toml").read_text()
    if enabled:
        body = body.replace("enabled = false", "enabled = true")
    if everywhere:
        body = body.replace('stores = ["shopify-eu", "amazon-eu"]\n', "")
    path.write_text(body)


def _generated_store(ctx, n_orders: int, seed: int) -> None:
    """Orders over three years in two stores, one to three units a line, some refunded,
    cancelled or test orders, half with a member (registered early, late, or exited),
    and claims on some units."""
    rng = random.Random(seed)
    emails = [f"m{i}@example.com" for i in range(n_orders // 4 + 1)]
    orders = []
    for n in range(1, n_orders + 1):
        day = date(2023, 6, 1) + timedelta(days=rng.randrange(3 * 365))
        lines = tuple((sku, rng.randint(1, 3)) for sku in rng.sample(SKUS, rng.randint(1, 2)))
        refunded = {sku: rng.randint(1, qty) for sku, qty in lines if rng.random() < 0.15}
        orders.append(
            order_record(
                n,
                store_key=rng.choice(STORES),
                purchased_at=datetime(day.year, day.month, day.day, rng.randrange(24), tzinfo=UTC),
                lines=lines,
                refunded=refunded,
                country=rng.choice(("US", "DE", "FR", "GB", "JP")),
                email=rng.choice(emails) if rng.random() < 0.6 else None,
                cancelled=rng.random() < 0.05,
            )
        )
    members = []
    for email in emails:
        if rng.random() < 0.7:
            registered = date(2023, 1, 1) + timedelta(days=rng.randrange(3 * 365))
            exited = registered + timedelta(days=rng.randrange(30, 400)) if rng.random() < 0.2 else None
            members.append(
                MemberRecord(
                    email_hash=email_digest(email), registered_at=registered, exited_at=exited, country="US"
                )
            )
    with ctx.session_factory() as s:
        repo = Repository(s)
        repo.upsert_orders(orders)
        repo.upsert_members(members)
        s.flush()
        s.execute(update(Order).where(Order.id % 17 == 0).values(is_test=True))
        unit_ids = s.execute(select(Unit.id).order_by(Unit.id)).scalars().all()
        for uid in rng.sample(list(unit_ids), len(unit_ids) // 12):
            s.add(
                Claim(
                    unit_id=uid,
                    kind=rng.choice(("exchange", "trade_in")),
                    claimed_on=date(2025, 1, 1) + timedelta(days=rng.randrange(500)),
                    policy_version="vip-2024",
                    created_at=datetime.now(UTC),
                )
            )
        s.commit()


def _stored(ctx) -> dict[int, UnitTag]:
    with ctx.session_factory() as s:
        return {t.unit_id: t for t in s.execute(select(UnitTag)).scalars()}


def _assert_tags_equal_unit_by_unit(ctx) -> int:
    """Every stored tag equals the verdict of its unit judged alone (no batch, no shared
    judging) and its digest is the engine's own digest of that verdict."""
    rules = load_rules(ctx)
    stored = _stored(ctx)
    with ctx.session_factory() as s:
        unit_ids = s.execute(select(Unit.id).order_by(Unit.id)).scalars().all()
        assert sorted(stored) == list(unit_ids)
        for uid in unit_ids:
            verdict = verdicts_for_units(s, rules, [uid])[uid]
            tag = stored[uid]
            got = {f: getattr(tag, f) for f in TAG_FIELDS}
            want = {f: getattr(verdict, f) for f in TAG_FIELDS}
            want["reasons"] = list(verdict.reasons)
            assert got == want, f"unit {uid}"
            assert tag.facts_hash == verdict.digest(), f"unit {uid}"
    return len(unit_ids)


@pytest.mark.parametrize("few_rows", [0, 1000], ids=["staged", "row-by-row"])
def test_set_based_tagging_writes_what_judging_each_unit_alone_gives(
    context, tmp_path, monkeypatch, few_rows
):
    # Changed tags go by the staging table or, a few at a time, row by row (PostgreSQL).
    monkeypatch.setattr(_TagWriter, "few_rows", few_rows)
    ctx, policies = _context(context, tmp_path, monkeypatch)
    _generated_store(ctx, 160, seed=5)
    # Small batches: many batches, shared verdicts across them.
    first = tag_pending(ctx, batch_size=37)
    assert first.batches > 3 and first.inserted == first.scanned
    n = _assert_tags_equal_unit_by_unit(ctx)
    assert first.scanned == n

    # A policy change rewrites tags (the staging UPDATE on PostgreSQL): still identical.
    _enable_tesmart_id(policies, everywhere=True)
    changed = retag_all(ctx, batch_size=37)
    assert changed.rewritten > 0 and changed.inserted == 0
    _assert_tags_equal_unit_by_unit(ctx)
    with ctx.session_factory() as s:
        versions = set(s.execute(select(UnitTag.policy_version)).scalars())
    assert versions == {"vip-2024", "tesmart-id-2025-11-01"}


def test_a_claimed_unit_stays_under_its_claims_version_on_tag_all(context, tmp_path, monkeypatch):
    ctx, policies = _context(context, tmp_path, monkeypatch)
    at = datetime(2025, 12, 1, 12, tzinfo=UTC)
    with ctx.session_factory() as s:
        Repository(s).upsert_orders(
            [order_record(i, store_key="shopify-eu", country="DE", purchased_at=at) for i in (1, 2)]
        )
        s.commit()
    assert tag_pending(ctx).inserted == 2
    with ctx.session_factory() as s:
        claimed, free = s.execute(select(Unit.id).order_by(Unit.id)).scalars().all()
        s.add(
            Claim(
                unit_id=claimed,
                kind="exchange",
                claimed_on=date(2026, 1, 5),
                policy_version="vip-2024",
                created_at=datetime.now(UTC),
            )
        )
        s.execute(update(Unit).where(Unit.id == claimed).values(needs_tag=True))
        s.commit()
    assert retag_all(ctx).errors == 0  # records the rules

    _enable_tesmart_id(policies)  # selects 2025-12-01 purchases in the EU stores
    for run in (lambda: retag_all(ctx), lambda: retag_all(ctx, full=True)):
        run()
        tags = _stored(ctx)
        assert tags[free].policy_version == "tesmart-id-2025-11-01"
        assert tags[claimed].policy_version == "vip-2024"
        assert tags[claimed].benefit_status == "exchange_used"
    # Left alone by later runs: the unit is not judged again on every run.
    assert retag_all(ctx).scanned == 0

    # A claim recorded under the newer version keeps it when that version is disabled.
    with ctx.session_factory() as s:
        s.execute(update(Claim).values(policy_version="tesmart-id-2025-11-01"))
        s.execute(update(Unit).where(Unit.id == claimed).values(needs_tag=True))
        s.commit()
    tag_pending(ctx)
    assert _stored(ctx)[claimed].policy_version == "tesmart-id-2025-11-01"
    _enable_tesmart_id(policies, enabled=False)
    retag_all(ctx)
    tags = _stored(ctx)
    assert tags[free].policy_version == "vip-2024"
    assert tags[claimed].policy_version == "tesmart-id-2025-11-01"


def test_a_claim_under_a_version_not_loaded_is_reported_and_the_unit_still_tagged(
    context, tmp_path, monkeypatch
):
    ctx, _ = _context(context, tmp_path, monkeypatch)
    with ctx.session_factory() as s:
        Repository(s).upsert_orders([order_record(i) for i in (1, 2)])
        s.flush()
        bad = s.execute(select(Unit.id).order_by(Unit.id)).scalars().first()
        s.add(
            Claim(
                unit_id=bad,
                kind="exchange",
                claimed_on=date(2025, 6, 1),
                policy_version="vip-1999",
                created_at=datetime.now(UTC),
            )
        )
        s.commit()
    result = tag_pending(ctx)
    assert (result.scanned, result.inserted, result.errors) == (2, 2, 1)
    with ctx.session_factory() as s:
        error = s.execute(select(ImportError_).where(ImportError_.source == "tagging")).scalar_one()
    assert error.record_id == f"unit:{bad}" and error.field == "claims.policy_version"
    assert "vip-1999" in error.message
    tag = _stored(ctx)[bad]
    assert tag.policy_version == "vip-2024" and tag.benefit_status == "exchange_used"
