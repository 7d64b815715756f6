"""Shopify after the sale through the real sync path: line discounts as the fake Shopify
allocated them, by the incremental query and by the bulk backfill alike."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.store.models import Order, OrderLineRow
from vipsync.workers.shopify_jobs import make_client, sync_shop

KEY = "shopify-us"


@pytest.fixture
def fake():
    with FakeShopify(orders=0, seed=5, bucket_size=1000, restore_rate=4000, bulk_delay_s=0.05) as server:
        yield server


@pytest.fixture
def ctx(fake, sqlite_url, tmp_path, monkeypatch):
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml(key=KEY))
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    settings = Settings(stores_file=stores, data_dir=tmp_path / "data", database_url=sqlite_url)
    context = Context(settings=settings, database_url=sqlite_url)
    yield context
    context.dispose()


def _sync(ctx, **kw):
    client = make_client(ctx.stores.shopify(KEY), backoff=lambda attempt: 0.02)
    return sync_shop(ctx, KEY, client=client, bulk_poll_s=0.05, **kw)


def _stored_discounts(ctx) -> dict[str, Decimal]:
    with ctx.session_factory() as s:
        rows = s.execute(select(OrderLineRow.line_key, OrderLineRow.discount).join(Order)).all()
    return {key: Decimal(str(discount or 0)) for key, discount in rows}


def _allocated(fake: FakeShopify) -> dict[str, Decimal]:
    return {str(line.id): Decimal(line.discount) for oid in fake.order_ids for line in fake.order(oid).lines}


@pytest.mark.parametrize("backfill", [False, True], ids=["incremental", "bulk"])
def test_synced_line_discounts_equal_the_allocations(fake, ctx, backfill):
    fake.add_orders(120)
    expected = _allocated(fake)
    assert sum(1 for v in expected.values() if v) >= 10  # the seed gives discounted lines
    result = _sync(ctx, backfill=backfill)
    assert result.rejected == 0
    assert _stored_discounts(ctx) == expected
    assert fake.counters["bulk_refused"] == 0


@pytest.mark.parametrize("backfill", [False, True], ids=["incremental", "bulk"])
def test_an_exchanged_unit_read_by_sync_takes_over_the_returned_units_claim(fake, ctx, backfill):
    from datetime import UTC, date, datetime, timedelta

    from vipsync.connectors.records import MemberRecord, email_digest
    from vipsync.store.models import Claim, OrderFactRow, Unit, UnitTag
    from vipsync.store.repository import Repository
    from vipsync.workers.tagging import tag_pending

    fake.add_orders(40)
    order = next(
        o
        for o in map(fake.order, fake.order_ids)
        if o.email and o.financial == "PAID" and not o.cancelled_at and not o.test
        and len(o.lines) == 1 and o.lines[0].sku.startswith("HKS") and o.lines[0].quantity == 1
    )  # fmt: skip
    returned = order.lines[0]
    with ctx.session_factory() as s:
        Repository(s).upsert_members(
            [MemberRecord(email_hash=email_digest(order.email), registered_at=date(2000, 1, 1))]
        )
        s.commit()
    _sync(ctx)
    tag_pending(ctx)
    with ctx.session_factory() as s:
        unit = s.execute(select(Unit).where(Unit.order_external_id == str(order.id))).scalar_one()
        s.add(Claim(unit_id=unit.id, kind="exchange", claimed_on=order.processed_at.date(), policy_version="v1",
                    created_at=datetime.now(UTC)))  # fmt: skip
        unit.needs_tag = True
        s.commit()
    new_sku = "HKS0401A3U" if returned.sku != "HKS0401A3U" else "HKS0802A1U"
    fake.update_order(order.id, exchange=(returned.id, new_sku), at=order.updated_at + timedelta(days=30))
    _sync(ctx, backfill=backfill)
    tag_pending(ctx)
    with ctx.session_factory() as s:
        facts = s.execute(
            select(OrderFactRow.kind, OrderFactRow.line_key, OrderFactRow.returned_line_key)
        ).all()
        tags = {
            u.sku: t
            for u, t in s.execute(
                select(Unit, UnitTag).join(UnitTag).where(Unit.order_external_id == str(order.id))
            )
        }
    added_line = order.lines[-1]
    assert [tuple(f) for f in facts] == [("exchange", str(added_line.id), str(returned.id))]
    assert tags[new_sku].benefit_status == "exchange_used"
    assert tags[new_sku].purchase_date == tags[returned.sku].purchase_date
    assert not tags[returned.sku].valid_purchase
