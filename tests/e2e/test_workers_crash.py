"""Real worker processes (``dramatiq`` subprocesses) on PostgreSQL and Redis: a worker
killed with SIGKILL in the middle of a sync, and a Redis restart, lose nothing.

The sync is the fire-drill job of :mod:`vipsync.workers.drill` (pages of generated orders
written through ``write_orders`` with a bookmark per page). Redis keys live under a
namespace of each test; the Redis that is restarted is a private ``redis-server``.
"""

from __future__ import annotations

import os
import urllib.request

import pytest

from vipsync.config.settings import Settings
from vipsync.devtools.worker_procs import (
    RedisServer,
    delete_namespace,
    new_namespace,
    start_workers,
    wait_until,
    worker_env,
)
from vipsync.store.db import make_engine, make_session_factory
from vipsync.workers import dlq
from vipsync.workers.broker import build_broker
from vipsync.workers.drill import cursor_page, paged_sync, pending_units, send, snapshot

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DRILL = ("vipsync.workers.drill_actors",)


def _reference(sqlite_url: str, store_key: str, **kwargs):
    """The same sync, uninterrupted and inline, then tagging: what the store must hold."""
    from vipsync.bootstrap import Context
    from vipsync.workers.tagging import tag_pending

    ctx = Context(settings=Settings(), database_url=sqlite_url)
    paged_sync(ctx, store_key, page_delay_ms=0, **kwargs)
    tag_pending(ctx)
    snap = snapshot(ctx.session_factory, store_key)
    ctx.dispose()
    return snap


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


def _done(factory, stores, last_page):
    return all(cursor_page(factory, s) == last_page for s in stores) and pending_units(factory) == 0


def test_a_worker_killed_mid_sync_resumes_and_the_store_ends_identical(pg, shared_broker, sqlite_url, tmp_path):
    pg_url, factory = pg
    broker, ns = shared_broker
    job = {"store_key": "drill-kill", "pages": 24, "per_page": 25}
    env = worker_env(database_url=pg_url, redis_url=REDIS_URL, namespace=ns, metrics_dir=tmp_path / "prom")
    send(broker, "drill_sync", queue="sync", page_delay_ms=150, **job)

    first = start_workers(env=env, log_path=tmp_path / "worker1.log", modules=DRILL)
    try:
        wait_until(lambda: cursor_page(factory, "drill-kill") >= 5, timeout_s=60, what="the sync to be under way")
    except TimeoutError:
        pytest.fail(first.log())
    first.kill9()
    partial = cursor_page(factory, "drill-kill")
    assert 5 <= partial < 23, "the sync must have been cut in the middle"

    second = start_workers(env=env, log_path=tmp_path / "worker2.log", modules=DRILL)
    try:
        wait_until(lambda: _done(factory, ["drill-kill"], 23), timeout_s=90, what="the sync to finish")
    except TimeoutError:
        pytest.fail(second.log())
    finally:
        second.stop()
    assert snapshot(factory, "drill-kill") == _reference(sqlite_url, **job)
    assert dlq.list_dead(broker.client, namespace=ns) == []


def test_a_redis_restart_mid_run_loses_nothing(pg, sqlite_url, tmp_path):
    pg_url, factory = pg
    ns = new_namespace()
    stores = ["drill-r1", "drill-r2", "drill-r3"]
    with RedisServer(tmp_path / "redis") as server:
        broker = build_broker(Settings(redis_url=server.url, broker_namespace=ns))
        for store in stores:
            send(broker, "drill_sync", queue="sync", store_key=store, pages=16, per_page=20, page_delay_ms=100)
        env = worker_env(database_url=pg_url, redis_url=server.url, namespace=ns, metrics_dir=tmp_path / "prom")
        workers = start_workers(env=env, log_path=tmp_path / "workers.log", processes=2, threads=2, modules=DRILL)
        try:
            wait_until(lambda: max(cursor_page(factory, s) for s in stores) >= 3, timeout_s=60,
                       what="the syncs to be under way")
            server.restart(down_s=2.0)
            wait_until(lambda: _done(factory, stores, 15), timeout_s=120, what="every sync to finish")
        except TimeoutError:
            pytest.fail(workers.log())
        finally:
            workers.stop()
        assert dlq.list_dead(broker.client, namespace=ns) == []
        broker.close()
    expected = _reference(sqlite_url, "drill-r1", pages=16, per_page=20)
    assert snapshot(factory, "drill-r1") == expected
    assert [len(snapshot(factory, s)["orders"]) for s in stores] == [320, 320, 320]


def test_workers_expose_metrics_after_a_sync(pg, shared_broker, tmp_path):
    pg_url, factory = pg
    broker, ns = shared_broker
    from vipsync.devtools.worker_procs import free_port

    port = free_port()
    env = worker_env(database_url=pg_url, redis_url=REDIS_URL, namespace=ns, metrics_dir=tmp_path / "prom",
                     metrics_port=port)
    send(broker, "drill_sync", queue="sync", store_key="drill-metrics", pages=3, per_page=10, page_delay_ms=0)
    workers = start_workers(env=env, log_path=tmp_path / "workers.log", processes=2, modules=DRILL)
    try:
        wait_until(lambda: _done(factory, ["drill-metrics"], 2), timeout_s=60, what="the sync")

        def scrape():
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                return None
            return body if 'vipsync_jobs_total{job="tag_pending",outcome="done"}' in body else None

        body = wait_until(scrape, timeout_s=30, what="the metrics")
    except TimeoutError:
        pytest.fail(workers.log())
    finally:
        workers.stop()
    assert 'vipsync_orders_synced_total{outcome="inserted",store="drill-metrics"} 30.0' in body
    assert 'vipsync_jobs_total{job="drill_sync",outcome="done"} 1.0' in body
    assert 'vipsync_sync_lag_seconds{store="drill-metrics"}' in body
    assert 'vipsync_last_sync_success_timestamp_seconds{store="drill-metrics"}' in body
    assert "dramatiq_messages_total" in body
