"""The schedule's plans and ticks (pure: no scheduler thread, no Redis)."""

from __future__ import annotations

from datetime import date

from vipsync.config.stores import AmazonAccount, ShopifyShop
from vipsync.workers.schedule import plan_reconcile, plan_sync, run_tick, syncable, tick_slot


def _shop(key, *, endpoint=None, credentials=None):
    return ShopifyShop(
        key=key,
        shop_domain=f"{key}.myshopify.com",
        timezone="UTC",
        country="US",
        endpoint=endpoint,
        credentials=credentials or {},
    )


def test_only_stores_with_credentials_or_an_endpoint_are_synced(monkeypatch):
    monkeypatch.setenv("T_TOKEN_SET", "x")
    monkeypatch.delenv("T_TOKEN_UNSET", raising=False)
    stores = [
        _shop("with-endpoint", endpoint="http://127.0.0.1:9"),
        _shop("with-creds", credentials={"access_token": "T_TOKEN_SET"}),
        _shop("without-creds", credentials={"access_token": "T_TOKEN_UNSET"}),
        _shop("nothing"),
        AmazonAccount(
            key="amazon-x",
            region="NA",
            credentials={"refresh_token": "T_TOKEN_SET"},
            marketplaces=(
                {
                    "code": "US",
                    "id": "ATVPDKIKX0DER",
                    "sales_channel": "Amazon.com",
                    "timezone": "America/Los_Angeles",
                    "country": "US",
                },
            ),
        ),
    ]
    assert [s.key for s in stores if syncable(s)] == ["with-endpoint", "with-creds", "amazon-x"]
    assert plan_sync(stores) == [
        ("sync_shopify", {"store_key": "with-endpoint"}),
        ("sync_shopify", {"store_key": "with-creds"}),
        ("sync_amazon", {"store_key": "amazon-x"}),
    ]


def test_nightly_reconciliation_backfills_a_safe_window():
    plan = plan_reconcile([_shop("s", endpoint="http://x")], today=date(2026, 3, 31))
    assert plan == [("sync_shopify", {"store_key": "s", "backfill": True, "since": "2026-03-01"})]


def test_schedulers_firing_slightly_apart_agree_on_the_tick():
    assert tick_slot(3000.4, interval_s=300) == tick_slot(2999.7, interval_s=300) == 10
    assert tick_slot(3300.2, interval_s=300) == 11


def test_two_schedulers_dispatch_each_store_once_per_tick():
    claimed: set[str] = set()

    def claim(key: str) -> bool:
        if key in claimed:
            return False
        claimed.add(key)
        return True

    sent: list[tuple[str, dict]] = []
    plan = plan_sync([_shop("a", endpoint="http://x"), _shop("b", endpoint="http://x")])
    for slot in (10, 11):
        for _scheduler in range(2):
            run_tick("sync", plan, slot=slot, dispatch=lambda job, kw: sent.append((job, kw)), claim=claim)
    assert sorted((kw["store_key"]) for _, kw in sent) == ["a", "a", "b", "b"]


def test_a_failed_dispatch_does_not_stop_the_other_stores():
    sent = []

    def dispatch(job, kwargs):
        if kwargs["store_key"] == "a":
            raise ConnectionError("redis down")
        sent.append(kwargs["store_key"])

    done = run_tick(
        "sync", plan_sync([_shop("a", endpoint="x"), _shop("b", endpoint="x")]), slot=1, dispatch=dispatch
    )
    assert sent == ["b"] and [kw["store_key"] for _, kw in done] == ["b"]
