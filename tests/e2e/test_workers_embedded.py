"""The embedded default as a process: ``vipsync run`` (once, and ``--loop``) syncs every
store that has credentials or an endpoint against the fake Admin API, inline, without
Redis, then tags; its metrics can be scraped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.devtools.worker_procs import Proc, free_port, scrape_metrics, wait_until
from vipsync.store.db import make_engine, make_session_factory
from vipsync.workers.drill import pending_units, snapshot


@pytest.fixture
def setup(tmp_path, sqlite_url):
    with FakeShopify(orders=120, seed=5, restore_rate=1e6, bucket_size=1e6) as fake:
        stores_file = tmp_path / "stores.toml"
        stores_file.write_text(
            fake.stores_toml()
            + """
[stores.shopify-jp]
kind = "shopify"
shop_domain = "tesmart-jp.myshopify.com"
timezone = "Asia/Tokyo"
country = "JP"
credentials = { access_token = "VIPSYNC_TEST_NEVER_SET" }
"""
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN": fake.access_token,
            "VIPSYNC_FAKE_SHOPIFY_API_SECRET": fake.webhook_secret,
            "VIPSYNC_STORES_FILE": str(stores_file),
            "VIPSYNC_DATABASE_URL": sqlite_url,
            # No Redis at all: an unreachable broker would fail any attempt to use it.
            "VIPSYNC_REDIS_URL": "redis://127.0.0.1:1/0",
            "COLUMNS": "200",
        }
        engine = make_engine(sqlite_url)
        yield fake, env, make_session_factory(engine)
        engine.dispose()


def test_run_syncs_every_store_with_an_endpoint_then_tags_without_redis(setup):
    _fake, env, factory = setup
    out = subprocess.run(
        [sys.executable, "-m", "vipsync.cli.main", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "shopify-us: done" in out.stdout and "inserted 120" in out.stdout
    assert "shopify-jp" not in out.stdout, "a store without credentials or endpoint is not synced"
    assert "tag_pending: done" in out.stdout
    snap = snapshot(factory, "shopify-us")
    assert len(snap["orders"]) == 120 and len(snap["tags"]) == len(snap["units"]) > 0
    assert pending_units(factory) == 0


def test_run_loop_keeps_syncing_on_the_schedule_and_serves_metrics(setup, tmp_path):
    fake, env, factory = setup
    port = free_port()
    loop = Proc(
        [
            sys.executable,
            "-m",
            "vipsync.cli.main",
            "run",
            "--loop",
            "--interval-s",
            "2",
            "--metrics-port",
            str(port),
        ],
        env=env,
        log_path=tmp_path / "loop.log",
    )
    try:
        wait_until(
            lambda: len(snapshot(factory, "shopify-us")["orders"]) == 120, timeout_s=60, what="first pass"
        )
        for order_id in fake.add_orders(7):
            fake.update_order(order_id)  # placed now: updatedAt is now
        wait_until(
            lambda: len(snapshot(factory, "shopify-us")["orders"]) == 127 and pending_units(factory) == 0,
            timeout_s=60,
            what="the new orders, synced and tagged by a scheduled pass",
        )
        body = scrape_metrics(port, timeout_s=5)
    except TimeoutError:
        pytest.fail(loop.log())
    finally:
        loop.stop()
    assert body and 'vipsync_orders_synced_total{outcome="inserted",store="shopify-us"} 127.0' in body
    assert 'vipsync_jobs_total{job="sync_shopify",outcome="done"}' in body
