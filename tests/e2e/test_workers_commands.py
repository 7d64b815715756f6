"""The workers' commands as processes: two ``vipsync scheduler`` at once, and a poison
message through ``vipsync dlq list|replay`` with a real worker process."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis

from vipsync.config.settings import Settings
from vipsync.devtools.worker_procs import (
    Proc,
    delete_namespace,
    new_namespace,
    start_workers,
    wait_until,
    worker_env,
)
from vipsync.store.db import make_engine, make_session_factory
from vipsync.store.repository import Repository
from vipsync.workers import dlq
from vipsync.workers.broker import build_broker
from vipsync.workers.drill import send

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

STORES = """
[stores.shop-a]
kind = "shopify"
shop_domain = "shop-a.myshopify.com"
timezone = "UTC"
country = "US"
endpoint = "http://127.0.0.1:9"

[stores.shop-b]
kind = "shopify"
shop_domain = "shop-b.myshopify.com"
timezone = "UTC"
country = "DE"
endpoint = "http://127.0.0.1:9"

[stores.shop-off]
kind = "shopify"
shop_domain = "shop-off.myshopify.com"
timezone = "UTC"
country = "US"
credentials = { access_token = "VIPSYNC_TEST_UNSET_TOKEN" }
"""


@pytest.fixture
def ns():
    name = new_namespace()
    yield name
    delete_namespace(redis.Redis.from_url(REDIS_URL), name)


def _vipsync(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vipsync.cli.main", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_two_schedulers_at_once_enqueue_each_store_once_per_tick(ns, pg_url, tmp_path):
    stores_file = tmp_path / "stores.toml"
    stores_file.write_text(STORES)
    env = worker_env(
        database_url=pg_url,
        redis_url=REDIS_URL,
        namespace=ns,
        metrics_dir=tmp_path / "prom",
        extra={"VIPSYNC_STORES_FILE": str(stores_file)},
    )
    env.pop("VIPSYNC_TEST_UNSET_TOKEN", None)
    argv = [sys.executable, "-m", "vipsync.cli.main", "scheduler", "--interval-s", "2"]
    schedulers = [Proc(argv, env=env, log_path=tmp_path / f"scheduler{i}.log") for i in range(2)]
    client = redis.Redis.from_url(REDIS_URL)
    try:
        wait_until(
            lambda: len(list(client.scan_iter(match=f"{ns}:tick:sync:*"))) >= 6,
            timeout_s=30,
            what="three ticks",
        )
        time.sleep(0.5)
    finally:
        for s in schedulers:
            s.stop()
    assert all(s.popen.returncode is not None for s in schedulers)
    ticks = Counter(k.decode().split(":")[-2] for k in client.scan_iter(match=f"{ns}:tick:sync:*"))
    messages = [json.loads(m) for m in client.hvals(f"{ns}:sync.msgs")]
    enqueued = Counter(m["kwargs"]["store_key"] for m in messages)
    assert set(enqueued) == {"shop-a", "shop-b"}, "only stores with credentials or an endpoint"
    assert enqueued == ticks, f"one sync per store per tick: {enqueued} vs {ticks}"
    assert {m["actor_name"] for m in messages} == {"sync_shopify"}
    for store in ("shop-a", "shop-b"):
        stamps = sorted(m["message_timestamp"] for m in messages if m["kwargs"]["store_key"] == store)
        assert all(b - a >= 1000 for a, b in itertools.pairwise(stamps)), "two messages in one tick"


def test_a_poison_message_lands_in_the_dlq_and_replays_after_the_fix(ns, pg_url, tmp_path):
    marker = tmp_path / "fixed"
    env = worker_env(
        database_url=pg_url,
        redis_url=REDIS_URL,
        namespace=ns,
        metrics_dir=tmp_path / "prom",
        extra={"COLUMNS": "200"},
    )
    broker = build_broker(Settings(redis_url=REDIS_URL, broker_namespace=ns))
    send(broker, "drill_poison", queue="default", marker=str(marker), store_key="drill-poison")
    workers = start_workers(
        env=env, log_path=tmp_path / "workers.log", modules=("vipsync.workers.drill_actors",)
    )
    factory = make_session_factory(make_engine(pg_url))

    def dead():
        out = _vipsync("dlq", "list", "--json", env=env)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    try:
        wait_until(
            lambda: dlq.list_dead(broker.client, namespace=ns),
            timeout_s=30,
            what="the poison message in the dead-letter queue",
        )
        (letter,) = dead()
        assert letter["job"] == "drill_poison" and letter["attempts"] == 1
        assert letter["error"].startswith("PermanentSourceError: store drill-poison")
        table = _vipsync("dlq", "list", env=env)
        assert letter["id"][:8] in table.stdout and "drill_poison" in table.stdout

        marker.touch()  # the fix
        replay = _vipsync("dlq", "replay", letter["id"][:8], env=env)
        assert replay.returncode == 0 and "replayed 1 message" in replay.stdout

        def stored():
            with factory() as session:
                return Repository(session).counts()["orders"] == 1

        wait_until(stored, timeout_s=30, what="the replayed job's order")
        assert dlq.list_dead(broker.client, namespace=ns) == []
        assert "empty" in _vipsync("dlq", "list", env=env).stdout
        refused = _vipsync("dlq", "drop", env=env)
        assert refused.returncode == 2 and "--all" in refused.stderr
    except TimeoutError:
        pytest.fail(workers.log())
    finally:
        workers.stop()
        broker.close()


def test_a_webhook_received_by_the_web_app_is_processed_by_a_worker_and_its_units_tagged(
    ns, pg_url, tmp_path
):
    import socket

    from sqlalchemy import func, select

    from vipsync.devtools.fake_shopify import FakeShopify
    from vipsync.devtools.worker_procs import free_port
    from vipsync.store.models import Unit, UnitTag, WebhookDelivery

    factory = make_session_factory(make_engine(pg_url))
    with FakeShopify(orders=3, seed=2) as fake:
        stores_file = tmp_path / "stores.toml"
        stores_file.write_text(fake.stores_toml())
        env = worker_env(
            database_url=pg_url,
            redis_url=REDIS_URL,
            namespace=ns,
            metrics_dir=tmp_path / "prom",
            extra={
                "VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN": fake.access_token,
                "VIPSYNC_FAKE_SHOPIFY_API_SECRET": fake.webhook_secret,
                "VIPSYNC_STORES_FILE": str(stores_file),
            },
        )
        port = free_port()
        web = Proc(
            [sys.executable, "-m", "vipsync.cli.main", "web", "--enqueue", "--port", str(port)],
            env=env,
            log_path=tmp_path / "web.log",
        )
        workers = start_workers(env=env, log_path=tmp_path / "workers.log")

        def tagged(order_id: int) -> bool:
            with factory() as s:
                units = s.execute(
                    select(func.count()).select_from(Unit).where(Unit.order_external_id == str(order_id))
                ).scalar_one()
                tags = s.execute(
                    select(func.count())
                    .select_from(UnitTag)
                    .join(Unit, Unit.id == UnitTag.unit_id)
                    .where(Unit.order_external_id == str(order_id))
                ).scalar_one()
            return units > 0 and tags == units

        try:
            wait_until(
                lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, timeout_s=30, what="the web app"
            )
            order_id = fake.order_ids[0]
            url = f"http://127.0.0.1:{port}/webhooks/shopify"
            assert fake.deliver_webhook(url, "orders/create", fake.rest_order(order_id)) == 200
            wait_until(
                lambda: tagged(order_id), timeout_s=30, what="the order's units, tagged by the workers"
            )
        except TimeoutError:
            pytest.fail(web.log() + workers.log())
        finally:
            workers.stop()
            web.stop()
        with factory() as s:
            assert s.execute(select(WebhookDelivery.status)).scalars().all() == ["done"]
