"""The `vipsync` commands of the Amazon part as processes, against the fake SP-API over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select

from vipsync.config.stores import load_stores
from vipsync.connectors.amazon.client import SpApiClient
from vipsync.connectors.amazon.sync import safe_until
from vipsync.devtools.amazon_data import generate_orders
from vipsync.devtools.fake_spapi import FakeSpApi, write_fake_stores
from vipsync.store.models import Order, Unit

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vipsync.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
    )


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        VIPSYNC_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        VIPSYNC_DATA_DIR=str(tmp_path / "data"),
        CI="true",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def _count(tmp_path: Path, model) -> int:
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(model)).scalar_one()
    engine.dispose()
    return n


def test_sync_amazon_backfills_by_report_then_syncs_incrementally(tmp_path):
    orders = generate_orders(180, markets=("DE", "UK"), seed=4, span_days=15)
    with FakeSpApi(orders=orders, rate_scale=400, report_polls_until_done=0) as fake:
        creds: dict[str, str] = {}
        key = write_fake_stores(tmp_path / "stores.toml", url=fake.url, markets=("DE", "UK"), environ=creds)
        env = _env(tmp_path, VIPSYNC_STORES_FILE=str(tmp_path / "stores.toml"), **creds)
        since = (datetime.now(UTC) - timedelta(days=20)).date().isoformat()
        first = _run(["sync", "amazon", "--store", key, "--backfill", "--since", since], env)
        assert first.returncode == 0, first.stderr
        assert "amazon backfill sync of amazon-test" in first.stdout
        assert "backfill by report" in first.stderr and "createReport" in first.stderr
        assert _count(tmp_path, Order) == 180
        assert _count(tmp_path, Unit) == sum(o.item_count for o in orders)

        second = _run(["sync", "amazon", "--store", key], env)
        assert second.returncode == 0, second.stderr
        assert "amazon incremental sync of amazon-test" in second.stdout
        assert "getOrderItems" in second.stderr  # the rate-limit estimate
        assert fake.total_violations == 0 and fake.rule_violations == []
        assert fake.calls["createReport"] == 1


def test_since_without_backfill_is_refused_plainly(tmp_path):
    env = _env(tmp_path)
    out = _run(["sync", "amazon", "--store", "amazon-eu", "--since", "2025-01-01"], env)
    assert out.returncode == 2 and "--since goes with --backfill" in out.stderr


def test_import_amazon_report_loads_the_bundled_sample_once(tmp_path):
    env = _env(tmp_path)
    sample = ROOT / "vipsync" / "samples" / "amazon_all_orders_sample_eu.tsv"
    first = _run(["import", "amazon-report", "--store", "amazon-eu", str(sample)], env)
    assert first.returncode == 0, first.stderr
    second = _run(["import", "amazon-report", "--store", "amazon-eu", str(sample)], env)
    assert second.returncode == 0, second.stderr
    assert _count(tmp_path, Order) == 9
    assert " 9 " in second.stdout.splitlines()[-2]  # read 9, unchanged 9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_standalone_fake_serves_tokens_and_orders():
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vipsync.devtools.fake_spapi",
            "--port",
            str(port),
            "--orders",
            "30",
            "--markets",
            "US",
            "--rate-scale",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        account = load_stores(ROOT / "vipsync" / "config" / "stores.toml").amazon("amazon-na")
        client = SpApiClient(
            account,
            refresh_token="r",
            lwa_app_id="a",
            lwa_client_secret="s",
            endpoint=f"http://127.0.0.1:{port}",
            http=httpx.Client(timeout=10),
        )
        now = client.clock.now()
        page = client.get_orders_page(
            marketplace_ids=["ATVPDKIKX0DER"],
            updated_after=now - timedelta(days=40),
            updated_before=safe_until(now),
        )
        assert len(page.orders) == 30 and page.orders[0]["MarketplaceId"] == "ATVPDKIKX0DER"
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_import_amazon_returns_keeps_refunds_and_replays_a_fixed_row(tmp_path):
    from vipsync.store.models import ImportError_, OrderFactRow

    env = _env(tmp_path)
    report = tmp_path / "returns.tsv"
    report.write_text(
        "Order ID\tReturn request date\tMerchant SKU\tReturn quantity\tRefunded Amount\tAmazon RMA ID\n"
        "303-1234567-1234567\t2026-01-05\tHKS0401A3U\t1\t189.99\tR1\n"
        "303-7654321-1234567\t2026-01-06\tHKS0401A3U\tone\t\tR2\n",
        encoding="utf-8",
    )
    done = _run(["import", "amazon-returns", str(report), "--store", "amazon-eu"], env)
    assert done.returncode == 0, done.stderr
    assert "1 record(s) rejected" in done.stderr
    assert _count(tmp_path, OrderFactRow) == 1 and _count(tmp_path, ImportError_) == 1
    again = _run(["import", "amazon-returns", str(report), "--store", "amazon-eu"], env)
    assert again.returncode == 0 and _count(tmp_path, OrderFactRow) == 1  # read twice, kept once
    listed = _run(["errors", "list", "--source", "amazon-returns", "--format", "json"], env)
    assert "return quantity" in listed.stdout and "303-7654321-1234567" in listed.stdout
    wrong = _run(["import", "amazon-returns", str(report), "--store", "shopify-us"], env)
    assert wrong.returncode == 2 and "needs a amazon store" in wrong.stderr
