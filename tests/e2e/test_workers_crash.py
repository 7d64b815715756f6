"""Real worker processes (``dramatiq`` subprocesses) on PostgreSQL and Redis, running the
real Shopify sync against the fake Admin API: a worker killed with SIGKILL in the middle
of a sync, and a Redis restart, lose nothing; the restarted worker's metrics are scraped
after the sync.

Redis keys live under a namespace of each test; the Redis that is restarted is a private
``redis-server`` on its own port.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.devtools.worker_procs import (
    RedisServer,
    delete_namespace,
    free_port,
    new_namespace,
    scrape_metrics,
    start_workers,
    wait_until,
    worker_env,
)
from vipsync.store.db import make_engine, make_session_factory
from vipsync.workers import dlq
from vipsync.workers.broker import QUEUES, build_broker
from vipsync.workers.drill import pending_units, send, snapshot

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STORES = {
    "shopify-us": ("tesmart-us.myshopify.com", "America/Los_Angeles", "US"),
    "shopify-eu": ("tesmart-eu.myshopify.com", "Europe/Berlin", "DE"),
}


@pytest.fixture
def pg(pg_url):
    engine = make_engine(pg_url)
    yield pg_url, make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def shared_broker():
    ns = new_namespace()
    broker = build_broker(Settings(redis_url=REDIS_URL, broker_namespace=ns))
    yield broker, ns
    broker.close()
    delete_namespace(broker.client, ns)


class PageGate:
    """The fake's page hook: serves each orders page after ``delay_s``; from the
    ``hold_at``-th page on, holds every page until :meth:`release`, so a test acts while
    its syncs are certainly in the middle."""

    def __init__(self, *, hold_at: int, delay_s: float = 0.05) -> None:
        self.hold_at = hold_at
        self.delay_s = delay_s
        self.pages = 0
        self._lock = threading.Lock()
        self.held = threading.Event()
        self._released = threading.Event()

    def __call__(self, _variables) -> None:
        with self._lock:
            self.pages += 1
            n = self.pages
        time.sleep(self.delay_s)
        if n >= self.hold_at and not self._released.is_set():
            self.held.set()
            self._released.wait(timeout=120)

    def release(self) -> None:
        self._released.set()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake Admin API serving 600 orders, and a stores file with two shops pointed at
    it; returns (fake, env for the processes)."""
    with FakeShopify(orders=600, seed=11, restore_rate=1e6, bucket_size=1e6) as server:
        stores_file = tmp_path / "stores.toml"
        stores_file.write_text(
            "\n".join(
                server.stores_toml(key=key, shop_domain=domain, timezone_name=tz, country=country)
                for key, (domain, tz, country) in STORES.items()
            )
        )
        env = {
            "VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN": server.access_token,
            "VIPSYNC_FAKE_SHOPIFY_API_SECRET": server.webhook_secret,
            "VIPSYNC_STORES_FILE": str(stores_file),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield server, env
        if isinstance(server.on_orders_page, PageGate):
            server.on_orders_page.release()


def _reference(fake_server, sqlite_url, stores):
    """The same syncs, uninterrupted and inline, then tagging: what the store must hold."""
    from vipsync.workers.shopify_jobs import sync_shop
    from vipsync.workers.tagging import tag_pending

    if isinstance(fake_server.on_orders_page, PageGate):
        fake_server.on_orders_page.release()
    fake_server.on_orders_page = None
    ctx = Context(settings=Settings(), database_url=sqlite_url)
    for store in stores:
        sync_shop(ctx, store)
    tag_pending(ctx)
    snaps = {store: snapshot(ctx.session_factory, store) for store in stores}
    ctx.dispose()
    return snaps


def _idle(client, ns) -> bool:
    """No message waiting, running or delayed on any queue."""
    return all(client.hlen(f"{ns}:{q}{suffix}.msgs") == 0 for q in QUEUES for suffix in ("", ".DQ"))


def _orders(factory, store_key) -> int:
    return len(snapshot(factory, store_key)["orders"])


def test_a_worker_killed_mid_sync_resumes_and_the_store_ends_identical(
    pg, shared_broker, fake, sqlite_url, tmp_path
):
    pg_url, factory = pg
    broker, ns = shared_broker
    server, secrets = fake
    env = worker_env(
        database_url=pg_url, redis_url=REDIS_URL, namespace=ns, metrics_dir=tmp_path / "prom", extra=secrets
    )
    gate = server.on_orders_page = PageGate(hold_at=10)
    send(broker, "sync_shopify", queue="sync", store_key="shopify-us")
    first = start_workers(env=env, log_path=tmp_path / "worker1.log")
    try:
        wait_until(
            lambda: gate.held.is_set() and _orders(factory, "shopify-us") >= 150,
            timeout_s=60,
            what="the sync to be held in the middle",
        )
    except TimeoutError:
        pytest.fail(first.log())
    first.kill9()
    gate.release()
    partial = _orders(factory, "shopify-us")
    assert 150 <= partial < 600, "the sync must have been cut in the middle"

    # The restarted worker serves its metrics; the resumed sync meets one rate limit.
    port = free_port()
    env = worker_env(
        database_url=pg_url,
        redis_url=REDIS_URL,
        namespace=ns,
        metrics_dir=tmp_path / "prom2",
        metrics_port=port,
        extra=secrets,
    )
    server.http429_next(1)
    second = start_workers(env=env, log_path=tmp_path / "worker2.log")
    try:
        wait_until(
            lambda: _idle(broker.client, ns) and pending_units(factory) == 0,
            timeout_s=90,
            what="the sync and its tagging to finish",
        )
        body = wait_until(lambda: scrape_metrics(port), timeout_s=10, what="the metrics")
    except TimeoutError:
        pytest.fail(second.log())
    finally:
        second.stop()
    # Scraped after a sync: what the resumed run inserted, its wait, its lag, the jobs.
    assert f'vipsync_orders_synced_total{{outcome="inserted",store="shopify-us"}} {600 - partial}.0' in body
    assert 'vipsync_jobs_total{job="sync_shopify",outcome="done"} 1.0' in body
    assert 'vipsync_jobs_total{job="tag_pending",outcome="done"} 1.0' in body
    assert 'vipsync_rate_limit_wait_seconds_total{store="shopify-us"}' in body
    assert 'vipsync_sync_lag_seconds{store="shopify-us"}' in body
    assert 'vipsync_last_sync_success_timestamp_seconds{store="shopify-us"}' in body
    assert 'dramatiq_messages_total{actor_name="sync_shopify",queue_name="sync"} 1.0' in body

    got = snapshot(factory, "shopify-us")
    assert len(got["orders"]) == 600 and len(got["tags"]) == len(got["units"]) > 600
    assert got == _reference(server, sqlite_url, ["shopify-us"])["shopify-us"]
    assert dlq.list_dead(broker.client, namespace=ns) == []


def test_a_redis_restart_mid_run_loses_nothing(pg, fake, sqlite_url, tmp_path):
    pg_url, factory = pg
    server, secrets = fake
    ns = new_namespace()
    with RedisServer(tmp_path / "redis") as redis_server:
        broker = build_broker(Settings(redis_url=redis_server.url, broker_namespace=ns))
        for store in STORES:
            send(broker, "sync_shopify", queue="sync", store_key=store)
        env = worker_env(
            database_url=pg_url,
            redis_url=redis_server.url,
            namespace=ns,
            metrics_dir=tmp_path / "prom",
            extra=secrets,
        )
        gate = server.on_orders_page = PageGate(hold_at=14)
        workers = start_workers(env=env, log_path=tmp_path / "workers.log", processes=2, threads=2)
        try:
            # From the 14th page on, every sync waits for its next page: Redis restarts
            # while the syncs are certainly in the middle.
            wait_until(lambda: gate.held.is_set(), timeout_s=60, what="the syncs to be under way")
            time.sleep(0.3)
            assert any(0 < _orders(factory, s) < 600 for s in STORES)
            redis_server.restart(down_s=2.0)
            gate.release()
            wait_until(
                lambda: _idle(broker.client, ns) and pending_units(factory) == 0,
                timeout_s=120,
                what="every sync and its tagging to finish",
            )
        except TimeoutError:
            pytest.fail(workers.log())
        finally:
            workers.stop()
        assert dlq.list_dead(broker.client, namespace=ns) == []
        broker.close()
    expected = _reference(server, sqlite_url, list(STORES))
    for store in STORES:
        assert snapshot(factory, store) == expected[store], store
