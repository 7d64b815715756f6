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
