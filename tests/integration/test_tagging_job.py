"""The tagging jobs on SQLite and PostgreSQL: facts resolved from the store, tags written,
re-tagging rewrites only what changed."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from vipsync.connectors.records import MemberRecord, email_digest
from vipsync.devtools.factories import order_record
from vipsync.eligibility.claims import check_claim
from vipsync.eligibility.loader import load_policies
from vipsync.errors import BenefitAlreadyUsed
from vipsync.store.models import Claim, ImportError_, Member, Order, OrderMemberLink, Product, Unit, UnitTag
from vipsync.store.repository import Repository
from vipsync.workers.tagging import load_rules, retag_all, tag_pending, verdicts_for_units

CONFIG = Path(__file__).resolve().parents[2] / "vipsync" / "config"


def _at(day: str, hour: int = 12) -> datetime:
    y, m, d = map(int, day.split("-"))
    return datetime(y, m, d, hour, tzinfo=UTC)


def _load(ctx, orders=(), members=()):
    with ctx.session_factory() as s:
        repo = Repository(s)
        if orders:
            repo.upsert_orders(orders)
        if members:
            repo.upsert_members(members)
        s.commit()


def _tags(ctx) -> dict[tuple[str, str, int], UnitTag]:
    with ctx.session_factory() as s:
        rows = s.execute(select(Unit, UnitTag).join(UnitTag, UnitTag.unit_id == Unit.id)).all()
        return {(u.order_external_id, u.sku, u.ordinal): t for u, t in rows}


def _policies_copy(tmp_path: Path, monkeypatch) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(CONFIG / "policies", target)
    monkeypatch.setenv("VIPSYNC_POLICIES_DIR", str(target))
    return target


def test_tag_pending_tags_new_units_with_windows_and_clears_the_flag(context):
    buyer = "Member@Example.com "
    _load(
        context,
        orders=[
            order_record(
                1, purchased_at=_at("2024-02-29"), email=buyer.strip().lower(), lines=(("HKS0401A3U", 1),)
            ),
            order_record(2, purchased_at=_at("2024-03-01"), country="DE", lines=(("HKS0802A1U", 1),)),
            order_record(3, purchased_at=_at("2024-03-01"), country="GB", lines=(("HKS0802A1U", 1),)),
        ],
        members=[MemberRecord(email_hash=email_digest(buyer), registered_at=date(2024, 6, 1), country="US")],
    )
    result = tag_pending(context)
    assert (result.scanned, result.inserted, result.rewritten) == (3, 3, 0)
    tags = _tags(context)
    us = tags[("1000001", "HKS0401A3U", 1)]
    assert us.eligible and us.reasons == []
    assert us.original_warranty_end == date(2025, 2, 28)
    assert us.registration_deadline == date(2025, 2, 28)
    assert us.extended_warranty_end == date(2027, 2, 28)
    assert us.trade_in_opens == date(2024, 6, 29)
    assert us.benefit_status == "available" and us.member_id is not None
    assert us.policy_version == "vip-2024" and us.category == "kvm_switch"
    de = tags[("1000002", "HKS0802A1U", 1)]
    assert de.original_warranty_end == date(2026, 3, 1) and de.benefit_status == "not_member"
    assert de.extended_warranty_end is None and de.member_id is None
    gb = tags[("1000003", "HKS0802A1U", 1)]
    assert not gb.eligible and gb.reasons == ["region_not_eligible"] and gb.registration_deadline is None
    assert gb.original_warranty_end == date(2025, 3, 1)
    with context.session_factory() as s:
        assert (
            s.execute(select(func.count()).select_from(Unit).where(Unit.needs_tag.is_(True))).scalar_one()
            == 0
        )
        cats = {r[0]: r[1] for r in s.execute(select(Product.sku, Product.category))}
    assert cats == {"HKS0401A3U": "kvm_switch", "HKS0802A1U": "kvm_switch"}
    again = tag_pending(context)
    assert again.scanned == 0 and again.inserted == 0


def test_quantity_three_with_one_refunded_takes_the_highest_unit(context):
    _load(context, orders=[order_record(1, lines=(("HKS0401A3U", 3),), refunded={"HKS0401A3U": 1})])
    tag_pending(context)
    tags = _tags(context)
    assert [tags[("1000001", "HKS0401A3U", i)].eligible for i in (1, 2, 3)] == [True, True, False]
    assert tags[("1000001", "HKS0401A3U", 3)].reasons == ["refunded"]
    assert tags[("1000001", "HKS0401A3U", 3)].original_warranty_end is None


def test_refund_takes_unclaimed_units_first_and_a_claimed_one_only_when_none_is_left(context):
    _load(context, orders=[order_record(1, lines=(("HKS0401A3U", 3),))])
    tag_pending(context)
    with context.session_factory() as s:
        top = s.execute(select(Unit.id).where(Unit.ordinal == 3)).scalar_one()
        s.add(
            Claim(
                unit_id=top,
                kind="exchange",
                claimed_on=date(2026, 4, 1),
                policy_version="vip-2024",
                created_at=_at("2026-04-01"),
            )
        )
        s.execute(update(Unit).where(Unit.id == top).values(needs_tag=True))
        s.commit()
    _load(
        context,
        orders=[
            order_record(
                1, lines=(("HKS0401A3U", 3),), refunded={"HKS0401A3U": 1}, updated_at=_at("2026-05-01")
            )
        ],
    )
    tag_pending(context)
    tags = _tags(context)
    assert [tags[("1000001", "HKS0401A3U", i)].reasons for i in (1, 2, 3)] == [[], ["refunded"], []]
    assert tags[("1000001", "HKS0401A3U", 3)].benefit_status == "exchange_used"
    # Refunding every unit takes the claimed one too; its claim stays on record.
    _load(
        context,
        orders=[
            order_record(
                1, lines=(("HKS0401A3U", 3),), refunded={"HKS0401A3U": 3}, updated_at=_at("2026-06-01")
            )
        ],
    )
    tag_pending(context)
    tags = _tags(context)
    assert all(tags[("1000001", "HKS0401A3U", i)].reasons == ["refunded"] for i in (1, 2, 3))
    with context.session_factory() as s:
        assert s.execute(select(func.count()).select_from(Claim)).scalar_one() == 1


def test_cancelled_test_and_pending_orders_are_not_valid_purchases(context):
    _load(context, orders=[order_record(1, cancelled=True)])
    with context.session_factory() as s:
        s.execute(update(Order).values(is_test=True, payment_pending=True))
        s.commit()
    tag_pending(context)
    tag = _tags(context)[("1000001", "HKS0401A3U", 1)]
    assert tag.reasons == ["order_cancelled", "test_order", "payment_pending"]
    assert not tag.valid_purchase and tag.original_warranty_end is None and tag.benefit_status is None


def test_order_edit_that_removes_a_unit_tags_it_as_refunded(context):
    _load(context, orders=[order_record(1, lines=(("HKS0401A3U", 2),))])
    tag_pending(context)
    _load(context, orders=[order_record(1, lines=(("HKS0401A3U", 1),), updated_at=_at("2025-04-01"))])
    result = tag_pending(context)
    assert result.scanned == 2  # the order changed: both units are flagged again
    tags = _tags(context)
    assert tags[("1000001", "HKS0401A3U", 1)].eligible
    removed = tags[("1000001", "HKS0401A3U", 2)]
    assert (
        removed.reasons == ["refunded"]
        and not removed.valid_purchase
        and removed.original_warranty_end is None
    )


def test_unofficial_store_and_unknown_sku(context):
    _load(
        context,
        orders=[
            order_record(1, store_key="distributor-x", lines=(("HKS0401A3U", 1),)),
            order_record(2, lines=(("IPOD2008GREEN", 1),)),
        ],
    )
    tag_pending(context)
    tags = _tags(context)
    assert tags[("1000001", "HKS0401A3U", 1)].reasons == ["not_official_channel"]
    assert tags[("1000002", "IPOD2008GREEN", 1)].reasons == ["unclassified_sku"]
    assert tags[("1000002", "IPOD2008GREEN", 1)].category == "unknown"


def test_amazon_order_belongs_to_the_member_with_a_verified_proof(context):
    # Even an e-mail digest on an Amazon order (Amazon hides the buyer's e-mail) never matches a member.
    amazon = order_record(
        1, store_key="amazon-na", source="amazon", purchased_at=_at("2024-06-01"), email="m@example.com"
    )
    member = MemberRecord(
        email_hash=email_digest("m@example.com"), registered_at=date(2024, 7, 1), country="US"
    )
    _load(context, orders=[amazon], members=[member])
    tag_pending(context)
    assert _tags(context)[(amazon.external_id, "HKS0401A3U", 1)].benefit_status == "not_member"
    with context.session_factory() as s:
        mid = s.execute(select(Member.id)).scalar_one()
        oid = s.execute(select(Order.id)).scalar_one()
        # Verified in 2025: what counts is the registration date, not the proof's.
        s.add(OrderMemberLink(order_id=oid, member_id=mid, method="email", verified_at=_at("2025-03-01")))
        s.execute(update(Unit).values(needs_tag=True))
        s.commit()
    tag_pending(context)
    tag = _tags(context)[(amazon.external_id, "HKS0401A3U", 1)]
    assert tag.benefit_status == "available" and tag.member_id == mid
    assert tag.extended_warranty_end == date(2027, 6, 1)


def test_membership_change_retags_the_members_units(context):
    email = "m@example.com"
    _load(context, orders=[order_record(1, purchased_at=_at("2024-01-10"), email=email)])
    _load(context, members=[MemberRecord(email_hash=email_digest(email), registered_at=date(2024, 2, 1))])
    tag_pending(context)
    assert _tags(context)[("1000001", "HKS0401A3U", 1)].benefit_status == "available"
    _load(
        context,
        members=[
            MemberRecord(
                email_hash=email_digest(email), registered_at=date(2024, 2, 1), exited_at=date(2024, 9, 1)
            )
        ],
    )
    result = tag_pending(context)
    assert result.scanned == 1 and result.rewritten == 1
    tag = _tags(context)[("1000001", "HKS0401A3U", 1)]
    assert (
        tag.benefit_status == "member_exited"
        and tag.extended_warranty_end is None
        and tag.trade_in_opens is None
    )


def test_policy_change_retags_only_the_rows_it_changes(context, tmp_path, monkeypatch):
    policies = _policies_copy(tmp_path, monkeypatch)
    from vipsync.bootstrap import Context, set_context
    from vipsync.config.settings import Settings

    ctx = Context(settings=Settings(), database_url=context.database_url)
    set_context(ctx)
    email = "m@example.com"
    orders = [
        order_record(i, purchased_at=_at("2025-06-01" if i <= 6 else "2025-12-01"), email=email)
        for i in range(1, 11)
    ]
    _load(
        ctx,
        orders=orders,
        members=[MemberRecord(email_hash=email_digest(email), registered_at=date(2025, 1, 1))],
    )
    first = tag_pending(ctx)
    assert first.inserted == 10
    unchanged = retag_all(ctx)
    assert (unchanged.scanned, unchanged.rewritten, unchanged.unchanged) == (10, 0, 10)
    before = _tags(ctx)
    path = policies / "tesmart-id-2025-11-01.toml"
    # Enabled for every store (the shipped file limits it to the EU stores; these are US orders).
    edited = path.read_text().replace("enabled = false", "enabled = true")
    path.write_text(edited.replace('stores = ["shopify-eu", "amazon-eu"]\n', ""))
    what_if = retag_all(ctx, dry_run=True)
    assert what_if.rewritten == 4  # counted, nothing written:
    assert {k: (t.policy_version, t.facts_hash) for k, t in _tags(ctx).items()} == {
        k: (t.policy_version, t.facts_hash) for k, t in before.items()
    }
    changed = retag_all(ctx)
    # Only the units whose version the change moves are judged again.
    assert (changed.scanned, changed.rewritten, changed.unchanged, changed.inserted) == (4, 4, 0, 0)
    after = _tags(ctx)
    for key, tag in after.items():
        if key[0] in {o.external_id for o in orders[6:]}:
            assert tag.policy_version == "tesmart-id-2025-11-01"
            assert tag.registration_deadline is None
            assert tag.trade_in_opens == date(2026, 3, 1)  # 90 days after 2025-12-01
            assert tag.tagged_at > before[key].tagged_at
        else:
            assert tag.policy_version == "vip-2024" and tag.tagged_at == before[key].tagged_at
    ctx.dispose()


def test_catalog_change_flags_and_retags_the_products_units(context, tmp_path, monkeypatch):
    catalog = tmp_path / "catalog.toml"
    text = (CONFIG / "catalog.toml").read_text()
    catalog.write_text(text)
    monkeypatch.setenv("VIPSYNC_CATALOG_FILE", str(catalog))
    from vipsync.bootstrap import Context, set_context
    from vipsync.config.settings import Settings

    ctx = Context(settings=Settings(), database_url=context.database_url)
    set_context(ctx)
    _load(ctx, orders=[order_record(1, lines=(("NEW-KVM-1", 1), ("HKS0401A3U", 1)))])
    tag_pending(ctx)
    assert _tags(ctx)[("1000001", "NEW-KVM-1", 1)].reasons == ["unclassified_sku"]
    catalog.write_text(text.replace("[skus]\n", '[skus]\nNEW-KVM-1 = "kvm_switch"\n'))
    result = tag_pending(ctx)
    assert result.products_reclassified == 1 and result.scanned == 1 and result.rewritten == 1
    assert _tags(ctx)[("1000001", "NEW-KVM-1", 1)].eligible
    ctx.dispose()


def test_unit_verdict_for_claims_refuses_a_second_benefit(context):
    email = "m@example.com"
    _load(
        context,
        orders=[order_record(1, purchased_at=_at("2024-01-10"), email=email)],
        members=[MemberRecord(email_hash=email_digest(email), registered_at=date(2024, 2, 1))],
    )
    tag_pending(context)
    rules = load_rules(context)
    policies = load_policies(context.settings.policies_dir)
    with context.session_factory() as s:
        uid = s.execute(select(Unit.id)).scalar_one()
        verdict = verdicts_for_units(s, rules, [uid])[uid]
        decision = check_claim(verdict, "trade_in", date(2024, 6, 1), policies.get(verdict.policy_version))
        assert decision.uses_benefit
        s.add(
            Claim(
                unit_id=uid,
                kind="trade_in",
                claimed_on=date(2024, 6, 1),
                policy_version=verdict.policy_version,
                created_at=_at("2024-06-01"),
            )
        )
        s.commit()
        verdict = verdicts_for_units(s, rules, [uid])[uid]
    with pytest.raises(BenefitAlreadyUsed):
        check_claim(verdict, "exchange", date(2025, 3, 1), policies.get(verdict.policy_version))


def test_purchase_before_every_policy_is_recorded_as_an_error_once(context):
    _load(context, orders=[order_record(1, purchased_at=_at("2010-05-01"))])
    first = tag_pending(context)
    second = tag_pending(context)
    assert first.errors == 1 and second.errors == 1 and first.inserted == 0
    with context.session_factory() as s:
        errs = s.execute(select(ImportError_).where(ImportError_.source == "tagging")).scalars().all()
    assert len(errs) == 1 and errs[0].field == "purchase_date" and "2010-05-01" in errs[0].message


def test_a_product_classified_after_its_units_were_tagged_flags_them_again(context):
    _load(context, orders=[order_record(1)])
    tag_pending(context)
    with context.session_factory() as s:
        # As if the product row arrived while a run was tagging its unit: judged "unknown",
        # product not classified yet.
        s.execute(update(Product).values(category=None))
        s.execute(
            update(UnitTag).values(
                category="unknown", eligible=False, reasons=["unclassified_sku"], facts_hash="x"
            )
        )
        s.commit()
    result = tag_pending(context)
    assert result.products_reclassified == 1 and result.rewritten == 1
    assert _tags(context)[("1000001", "HKS0401A3U", 1)].eligible


def test_registration_timestamp_is_dated_in_the_zone_of_each_units_store(context):
    """2024-12-31 23:30 UTC is still 2024-12-31 for the US web store (Los Angeles) but
    already 2025-01-01 for the JP web store (Tokyo): against a deadline of 2025-01-01 the
    same registration is in time for one unit and too late for the other."""
    email = "zones@example.com"
    registered = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
    _load(
        context,
        orders=[
            order_record(
                1, store_key="shopify-us", purchased_at=_at("2024-01-01"), email=email, country="US"
            ),
            order_record(
                2, store_key="shopify-jp", purchased_at=_at("2024-01-01"), email=email, country="JP"
            ),
        ],
        members=[
            MemberRecord(
                email_hash=email_digest(email), registered_at=registered.date(), registered_ts=registered
            )
        ],
    )
    tag_pending(context)
    tags = {key[0]: t for key, t in _tags(context).items()}
    us, jp = tags[order_record(1).external_id], tags[order_record(2).external_id]
    assert us.registration_deadline == jp.registration_deadline == date(2025, 1, 1)
    assert (us.benefit_status, us.extended_warranty_end) == ("available", date(2027, 1, 1))
    assert (jp.benefit_status, jp.extended_warranty_end) == ("registered_too_late", None)


def test_retag_all_judges_only_what_a_rules_change_can_affect(context, tmp_path, monkeypatch):
    policies = _policies_copy(tmp_path, monkeypatch)
    from vipsync.bootstrap import Context, set_context
    from vipsync.config.settings import Settings

    ctx = Context(settings=Settings(), database_url=context.database_url)
    set_context(ctx)
    email = "m@example.com"
    _load(
        ctx,
        orders=[order_record(i, purchased_at=_at("2025-06-01"), email=email) for i in range(1, 6)],
        members=[MemberRecord(email_hash=email_digest(email), registered_at=date(2025, 1, 1))],
    )
    assert tag_pending(ctx).inserted == 5
    first = retag_all(ctx)  # no rules recorded yet: every unit
    assert (first.scanned, first.rewritten) == (5, 0)
    assert retag_all(ctx).scanned == 0  # nothing changed since
    assert retag_all(ctx, full=True).scanned == 5

    # The terms of the version judging every unit change in place: all its units again.
    vip = policies / "vip-2024.toml"
    vip.write_text(vip.read_text().replace("extended_years = 3", "extended_years = 4"))
    changed = retag_all(ctx)
    assert (changed.scanned, changed.rewritten) == (5, 5)
    assert {t.extended_warranty_end for t in _tags(ctx).values()} == {date(2029, 6, 1)}
    assert retag_all(ctx).scanned == 0

    # A product the catalog now places elsewhere: only its units.
    with ctx.session_factory() as s:
        s.execute(update(Product).values(category="accessory"))
        s.commit()
    assert retag_all(ctx).scanned == 5
    assert retag_all(ctx).scanned == 0


def test_unit_fact_rows_carry_the_documented_columns_in_order(context):
    from vipsync.store.read_models import UNIT_FACT_COLUMNS, UnitSelection, unit_fact_rows

    email = "m@example.com"
    _load(
        context,
        orders=[order_record(1, purchased_at=_at("2025-06-01"), email=email, lines=(("HKS0401A3U", 2),))],
        members=[MemberRecord(email_hash=email_digest(email), registered_at=date(2025, 1, 1))],
    )
    with context.session_factory() as s:
        rows = unit_fact_rows(s, selection=UnitSelection(), limit=10)
        assert len(rows) == 2 and tuple(rows[0]._fields) == UNIT_FACT_COLUMNS
        assert rows[0].member_registered_at == date(2025, 1, 1) and rows[0].facts_hash is None
        assert unit_fact_rows(s, selection=UnitSelection(), after_id=rows[0].id, limit=10) == rows[1:]
        assert unit_fact_rows(s, selection=UnitSelection(pending=False)) == []


def test_enabling_a_version_limited_to_some_stores_retags_only_their_units(context, tmp_path, monkeypatch):
    policies = _policies_copy(tmp_path, monkeypatch)
    from vipsync.bootstrap import Context, set_context
    from vipsync.config.settings import Settings

    ctx = Context(settings=Settings(), database_url=context.database_url)
    set_context(ctx)
    _load(
        ctx,
        orders=[
            order_record(i, store_key="shopify-eu" if i % 2 else "shopify-us", purchased_at=_at("2025-12-01"))
            for i in range(1, 9)
        ],
    )
    assert tag_pending(ctx).inserted == 8
    assert retag_all(ctx).scanned == 8  # the first run records the rules
    path = policies / "tesmart-id-2025-11-01.toml"
    path.write_text(path.read_text().replace("enabled = false", "enabled = true"))
    changed = retag_all(ctx)
    assert (changed.scanned, changed.rewritten) == (4, 4)
    with ctx.session_factory() as s:
        versions = dict(s.execute(select(Unit.store_key, UnitTag.policy_version).join(UnitTag)).all())
    assert versions == {"shopify-eu": "tesmart-id-2025-11-01", "shopify-us": "vip-2024"}
    assert retag_all(ctx).scanned == 0
