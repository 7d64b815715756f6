"""The `vipsync` command for Shopify, run as a process: file import and API sync."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, func, select

from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.store.models import ImportRun, Order

VIPSYNC = [sys.executable, "-m", "vipsync.cli.main"]


def _run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run(VIPSYNC + args, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def env(sqlite_url, tmp_path):
    e = dict(
        os.environ,
        VIPSYNC_DATABASE_URL=sqlite_url,
        VIPSYNC_DATA_DIR=str(tmp_path / "data"),
        CI="true",
        COLUMNS="200",
    )
    return e


def _orders(url) -> int:
    engine = create_engine(url)
    with engine.connect() as c:
        n = c.execute(select(func.count()).select_from(Order)).scalar_one()
    engine.dispose()
    return n


def test_import_of_the_official_fixtures_twice_changes_nothing_the_second_time(env, fixtures_dir, sqlite_url):
    for name in ("order.json", "orders.json"):
        first = _run(
            ["import", "shopify", "--store", "shopify-us", str(fixtures_dir / "shopify" / name)], env
        )
        assert first.returncode == 0, first.stderr
    again = _run(
        ["import", "shopify", "--store", "shopify-us", str(fixtures_dir / "shopify/orders.json")], env
    )
    assert again.returncode == 0
    engine = create_engine(sqlite_url)
    with engine.connect() as c:
        last = c.execute(select(ImportRun).order_by(ImportRun.id.desc()).limit(1)).one()
    engine.dispose()
    assert (last.read, last.inserted, last.updated, last.unchanged, last.rejected) == (1, 0, 0, 1, 0)
    assert _orders(sqlite_url) == 1


def test_import_of_a_bulk_result_file_downloaded_by_hand(env, tmp_path, sqlite_url):
    with FakeShopify(orders=30, seed=2, bulk_interleave=True) as fake:
        path, _count = fake._write_bulk_file({"id": "gid://shopify/BulkOperation/1", "search": ""})
        target = tmp_path / "bulk.jsonl"
        target.write_bytes(path.read_bytes())
    result = _run(["import", "shopify", "--store", "shopify-us", str(target)], env)
    assert result.returncode == 0, result.stderr
    assert _orders(sqlite_url) == 30


def test_import_of_an_unreadable_file_exits_non_zero(env, tmp_path):
    bad = tmp_path / "orders.csv"
    bad.write_text("id,sku\n1,HKS0401A3U\n")
    result = _run(["import", "shopify", "--store", "shopify-us", str(bad)], env)
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_sync_command_runs_incremental_then_backfill_against_the_fake(env, tmp_path, sqlite_url):
    with FakeShopify(orders=45, seed=4, restore_rate=5000, bulk_delay_s=0.0, scopes={"read_orders"}) as fake:
        stores = tmp_path / "stores.toml"
        stores.write_text(fake.stores_toml())
        env = dict(
            env,
            VIPSYNC_STORES_FILE=str(stores),
            VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN=fake.access_token,
            VIPSYNC_FAKE_SHOPIFY_API_SECRET=fake.webhook_secret,
        )
        sync = _run(["sync", "shopify", "--store", "shopify-us"], env)
        assert sync.returncode == 0, sync.stderr
        assert "45" in sync.stdout and _orders(sqlite_url) == 45
        backfill = _run(["sync", "shopify", "--backfill"], env)
        assert backfill.returncode == 0, backfill.stderr
        assert "60 days" in backfill.stderr
        bad = _run(["sync", "shopify", "--since", "2024-01-01"], env)
        assert bad.returncode == 2 and "--backfill" in bad.stderr
    # No personal data on the terminal.
    assert "@example.com" not in sync.stdout + sync.stderr + backfill.stdout + backfill.stderr


def test_demo_sync_needs_no_credentials_and_uses_its_own_store_key(env, sqlite_url):
    result = _run(["sync", "shopify", "--demo", "60"], env)
    assert result.returncode == 0, result.stderr
    engine = create_engine(sqlite_url)
    with engine.connect() as c:
        keys = c.execute(select(Order.store_key, func.count()).group_by(Order.store_key)).all()
    engine.dispose()
    assert [tuple(k) for k in keys] == [("shopify-demo", 60)]
