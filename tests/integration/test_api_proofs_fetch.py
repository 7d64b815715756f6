"""On-demand fetch of an order a proof names but the store does not hold yet, against the
project's fake Shopify and fake SP-API; a store that is down gets "try again later"."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select

from tests.api_helpers import auth, client_for, make_context
from vipsync.config.stores import load_stores
from vipsync.devtools.amazon_data import generate_orders
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.devtools.fake_spapi import FakeSpApi, write_fake_stores
from vipsync.devtools.worker_procs import delete_namespace, new_namespace
from vipsync.eligibility.proof import normalize_postal_code
from vipsync.store.models import Order, ProofDecision

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextmanager
def _environment(db_url, tmp_path, monkeypatch, **overrides):
    r = redis.Redis.from_url(REDIS_URL)
    ns = new_namespace()
    settings = {"proof_min_delay_ms": 3000, "proof_fetch_timeout_ms": 3000, **overrides}
    ctx = make_context(db_url, tmp_path, ns, REDIS_URL, **settings)
    amazon_orders = generate_orders(3, markets=("DE",), seed=5, end=datetime.now(UTC) - timedelta(days=100))
    with FakeShopify(orders=0, seed=2) as shop, FakeSpApi(orders=amazon_orders, rate_scale=2000) as amazon:
        environ: dict[str, str] = {}
        stores = tmp_path / "stores.toml"
        write_fake_stores(stores, url=amazon.url, markets=("DE",), environ=environ)
        stores.write_text(stores.read_text() + "\n" + shop.stores_toml())
        for k, v in environ.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", shop.access_token)
        monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", shop.webhook_secret)
        ctx._stores = load_stores(stores)
        try:
            with client_for(ctx) as client:
                assert (
                    client.post(
                        "/v1/members",
                        json={"email": "m@example.com", "country": "DE"},
                        headers=auth("website"),
                    ).status_code
                    == 201
                )
                yield ctx, client, shop, amazon, amazon_orders
        finally:
            ctx.dispose()
            delete_namespace(r, ns)


@pytest.fixture
def env(db_url, tmp_path, monkeypatch):
    with _environment(db_url, tmp_path, monkeypatch) as found:
        yield found


def test_an_unknown_shopify_order_is_fetched_by_name_stored_and_verified(env):
    ctx, client, shop, _, _ = env
    shop.add_orders(3)
    order = shop.order(shop.order_ids[1])
    res = client.post(
        "/v1/proofs",
        json={"member_email": "m@example.com", "order_id": str(order.number), "postal_code": order.zip},
        headers=auth("website"),
    )
    assert res.status_code == 200, res.text
    assert res.json()["orders"][0]["status"] == "linked"
    with ctx.session_factory() as s:
        assert s.execute(select(func.count()).select_from(Order)).scalar_one() == 1


def test_an_unknown_amazon_order_is_fetched_with_get_order_and_verified(env):
    _, client, _, _, orders = env
    fake = orders[0]
    res = client.post(
        "/v1/proofs",
        json={
            "member_email": "m@example.com",
            "order_id": fake.order_id,
            "postal_code": normalize_postal_code(fake.postal_code),
        },
        headers=auth("website"),
    )
    assert res.status_code == 200, res.text
    units = res.json()["orders"][0]["units"]
    assert units and all(u["member"] is not None for u in units)


def test_a_store_that_is_down_gets_try_again_later_not_not_found(env):
    ctx, client, shop, _, _ = env
    shop.add_orders(1)
    shop.fail_next(5, status=503)
    started = datetime.now(UTC)
    res = client.post(
        "/v1/proofs",
        json={"member_email": "m@example.com", "order_id": "#1001", "postal_code": "12345"},
        headers=auth("website"),
    )
    assert res.status_code == 503 and "try again later" in res.json()["message"]
    assert int(res.headers["Retry-After"]) > 0
    assert (datetime.now(UTC) - started).total_seconds() >= ctx.settings.proof_min_delay_ms / 1000
    with ctx.session_factory() as s:
        assert s.execute(select(ProofDecision.outcome)).scalars().all() == ["try_later"]


def test_an_amazon_store_that_cannot_be_reached_gets_try_again_later(env):
    ctx, client, _, amazon, orders = env
    amazon.stop()  # the seller account's API refuses connections
    res = client.post(
        "/v1/proofs",
        json={
            "member_email": "m@example.com",
            "order_id": orders[0].order_id,
            "postal_code": normalize_postal_code(orders[0].postal_code),
        },
        headers=auth("website"),
    )
    assert res.status_code == 503, res.text
    assert res.json() == {"verified": False, "message": res.json()["message"]}
    assert "try again later" in res.json()["message"]
    with ctx.session_factory() as s:
        assert s.execute(select(func.count()).select_from(Order)).scalar_one() == 0
        assert s.execute(select(ProofDecision.outcome)).scalars().all() == ["try_later"]


def test_the_fetch_budget_is_shared_by_every_process(db_url, tmp_path, monkeypatch):
    """Two contexts stand for two uvicorn workers: the budget one spent is spent for the other."""
    with _environment(db_url, tmp_path, monkeypatch, proof_fetch_budget_per_min=1) as (ctx, client, *_):
        body = {"member_email": "m@example.com", "postal_code": "12345"}
        first = client.post("/v1/proofs", json={**body, "order_id": "#5001"}, headers=auth("website"))
        assert first.status_code == 404, first.text  # fetched: the shop has no such order
        other = make_context(
            db_url,
            tmp_path,
            ctx.settings.broker_namespace,
            REDIS_URL,
            proof_min_delay_ms=3000,
            proof_fetch_timeout_ms=3000,
            proof_fetch_budget_per_min=1,
        )
        other._stores = ctx.stores
        try:
            with client_for(other) as second_worker:
                res = second_worker.post(
                    "/v1/proofs", json={**body, "order_id": "#5002"}, headers=auth("website")
                )
        finally:
            other.dispose()
        assert res.status_code == 503 and "try again later" in res.json()["message"], res.text
