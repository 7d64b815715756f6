"""A bad order in a store's sync is rejected alone: the rest is stored, the bookmark moves."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.store.models import ImportError_, Order, RawPayload
from vipsync.store.repository import Repository
from vipsync.workers.shopify_jobs import make_client, sync_shop

KEY = "shopify-us"


@pytest.fixture
def fake():
    with FakeShopify(orders=0, seed=5, bucket_size=1000, restore_rate=4000, bulk_delay_s=0.05) as server:
        yield server


@pytest.fixture
def ctx(fake, db_url, tmp_path, monkeypatch):
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml(key=KEY))
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    context = Context(
        settings=Settings(stores_file=stores, data_dir=tmp_path / "data", database_url=db_url),
        database_url=db_url,
    )
    yield context
    context.dispose()


def _sync(ctx, **kw):
    client = make_client(ctx.stores.shopify(KEY), backoff=lambda attempt: 0.02)
    return sync_shop(ctx, KEY, client=client, bulk_poll_s=0.05, **kw)


@pytest.mark.parametrize("backfill", [False, True], ids=["incremental", "bulk"])
def test_one_bad_order_is_rejected_alone_and_the_bookmark_moves_past_it(fake, ctx, backfill):
    ids = fake.add_orders(60)
    too_long, nul_email = ids[10], ids[20]
    fake.order(too_long).lines[0].sku = "K" * 300  # Shopify allows 255
    fake.order(nul_email).email = "buyer\x00@example.com"
    result = _sync(ctx, backfill=backfill)
    assert (result.read, result.inserted, result.rejected) == (60, 59, 1)
    with ctx.session_factory() as s:
        stored = set(s.execute(select(Order.external_id)).scalars())
        errors = list(s.execute(select(ImportError_)).scalars())
        payloads = [p for (p,) in s.execute(select(RawPayload.payload))]
        cursor = Repository(s).get_cursor(KEY, "orders")
    assert stored == {str(i) for i in ids} - {str(too_long)}
    assert [(e.record_id, e.field) for e in errors] == [(str(too_long), "lines[0].sku")]
    assert "255" in errors[0].message
    assert all("\x00" not in str(p) for p in payloads)
    assert cursor is not None and cursor.value is not None
    if not backfill:
        newest = max(fake.order(i).updated_at for i in ids)
        assert datetime.fromisoformat(cursor.value) == newest
    # The next run reads nothing new and stores nothing twice.
    again = _sync(ctx)
    assert again.inserted == 0
