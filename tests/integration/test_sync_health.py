"""Each store's sync health is written around every sync job, and its lag is measured from
the last successful sync, not from the last order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from vipsync.errors import TransientSourceError
from vipsync.store.models import StoreSyncHealth
from vipsync.workers.results import SyncResult
from vipsync.workers.sync_health import tracked


def _health(ctx) -> dict:
    with ctx.session_factory() as s:
        return dict(
            s.execute(text("SELECT * FROM ops_sync_health WHERE store = 'shopify-us'")).mappings().one()
        )


def test_a_sync_that_finds_nothing_still_resets_the_lag(context):
    old_cursor = (datetime.now(UTC) - timedelta(days=3)).isoformat()

    def quiet_sync(ctx, store_key, **_):
        return SyncResult(
            store_key=store_key, mode="incremental", read=0, cursor=old_cursor, rate_limit_wait_s=2.5
        )

    tracked(context, "shopify-us", quiet_sync)
    row = _health(context)
    assert row["syncs_ok"] == 1 and row["errors_since_success"] == 0 and row["last_cursor"] == old_cursor
    assert 0 <= row["lag_s"] < 60  # not three days: the shop simply had no new orders
    assert float(row["rate_limit_wait_s"]) == 2.5

    with context.session_factory() as s:
        s.execute(update(StoreSyncHealth).values(last_success_at=datetime.now(UTC) - timedelta(hours=1)))
        s.commit()
    assert 3500 <= _health(context)["lag_s"] <= 3700


def test_a_failed_sync_is_counted_and_keeps_the_last_success(context):
    def ok(ctx, store_key, **_):
        return SyncResult(store_key=store_key, mode="incremental", read=4)

    def broken(ctx, store_key, **_):
        raise TransientSourceError("shopify-us: HTTP 503 from the Admin API")

    tracked(context, "shopify-us", ok)
    first = _health(context)["last_success_at"]
    for _ in range(2):
        with pytest.raises(TransientSourceError):
            tracked(context, "shopify-us", broken)
    row = _health(context)
    assert row["errors_total"] == 2 and row["errors_since_success"] == 2 and row["syncs_ok"] == 1
    assert row["last_error"] == "TransientSourceError: shopify-us: HTTP 503 from the Admin API"
    assert row["last_success_at"] == first and row["orders_read"] == 4
    tracked(context, "shopify-us", ok)
    assert _health(context)["errors_since_success"] == 0
