"""Dead letters on the real Redis: a poison message is kept with its error, replayed
after the fix, or dropped (keys under a namespace of this test only)."""

from __future__ import annotations

import os

import pytest
from dramatiq import Worker

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.devtools.worker_procs import delete_namespace, new_namespace, wait_until
from vipsync.errors import PermanentSourceError
from vipsync.workers import dlq, registry
from vipsync.workers.actors import declare_actors
from vipsync.workers.broker import build_broker
from vipsync.workers.schedule import plan_sync, redis_claimer, run_tick

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def rig(monkeypatch):
    ns = new_namespace()
    settings = Settings(redis_url=REDIS_URL, broker_namespace=ns, retry_min_backoff_ms=1, retry_max_retries=2)
    broker = build_broker(settings)
    fixed = {"ok": False}
    done: list[dict] = []

    def import_orders(ctx, store_key):
        if not fixed["ok"]:
            raise PermanentSourceError(f"store {store_key}: 403 scope missing")
        done.append({"store_key": store_key})

    monkeypatch.setattr(
        registry, "resolve", lambda name: {"sync_shopify": import_orders}.get(name, lambda ctx: None)
    )
    table = {}

    def context():
        ctx = Context(settings=settings)
        ctx.dispatcher = table["t"].dispatcher
        return ctx

    table["t"] = declare_actors(
        broker,
        settings,
        client=broker.client,
        context_factory=context,
        jobs=["sync_shopify", "tag_pending", "apply_trade_in_codes"],
    )
    worker = Worker(broker, worker_timeout=50)
    worker.start()
    yield {"broker": broker, "ns": ns, "actors": table["t"], "fixed": fixed, "done": done}
    worker.stop()
    broker.close()
    delete_namespace(broker.client, ns)


def _dead(rig):
    return dlq.list_dead(rig["broker"].client, namespace=rig["ns"])


def test_a_poison_message_lands_in_the_dead_letter_queue_with_its_error(rig):
    rig["actors"].dispatcher("sync_shopify", {"store_key": "shopify-us"})
    (letter,) = wait_until(lambda: _dead(rig), timeout_s=10, what="a dead letter")
    assert letter.job == "sync_shopify" and letter.kwargs == {"store_key": "shopify-us"}
    assert letter.error == "PermanentSourceError: store shopify-us: 403 scope missing"
    assert letter.attempts == 1  # permanent: not retried
    assert rig["broker"].client.exists(f"{rig['ns']}:sync.XQ")


def test_a_dead_letter_replays_after_the_fix(rig):
    rig["actors"].dispatcher("sync_shopify", {"store_key": "shopify-eu"})
    (letter,) = wait_until(lambda: _dead(rig), timeout_s=10, what="a dead letter")
    rig["fixed"]["ok"] = True
    replayed = dlq.replay(
        rig["broker"].client, rig["broker"], namespace=rig["ns"], ids=[letter.message_id[:8]]
    )
    assert [r.message_id for r in replayed] == [letter.message_id]
    wait_until(lambda: rig["done"], timeout_s=10, what="the replayed job")
    assert rig["done"] == [{"store_key": "shopify-eu"}]
    assert _dead(rig) == []


def test_a_dropped_dead_letter_is_gone(rig):
    for store in ("a", "b"):
        rig["actors"].dispatcher("sync_shopify", {"store_key": store})
    letters = wait_until(lambda: len(_dead(rig)) == 2 and _dead(rig), timeout_s=10, what="two dead letters")
    a = next(d for d in letters if d.kwargs["store_key"] == "a")
    assert [
        d.message_id for d in dlq.drop(rig["broker"].client, namespace=rig["ns"], ids=[a.message_id])
    ] == [a.message_id]
    assert [d.kwargs["store_key"] for d in _dead(rig)] == ["b"]
    assert len(dlq.drop(rig["broker"].client, namespace=rig["ns"], ids=None)) == 1
    assert _dead(rig) == []


def test_two_schedulers_claim_each_store_once_per_tick_in_redis(rig):
    from vipsync.config.stores import ShopifyShop

    stores = [
        ShopifyShop(
            key=k, shop_domain=f"{k}.myshopify.com", timezone="UTC", country="US", endpoint="http://x"
        )
        for k in ("s1", "s2")
    ]
    claim = redis_claimer(rig["broker"].client, namespace=rig["ns"], ttl_s=60)
    sent = []
    for slot in (100, 101):
        for _scheduler in range(2):
            run_tick(
                "sync",
                plan_sync(stores),
                slot=slot,
                dispatch=lambda job, kw: sent.append(kw["store_key"]),
                claim=claim,
            )
    assert sorted(sent) == ["s1", "s1", "s2", "s2"]
