"""The webhook endpoint over real HTTP (uvicorn), fed by the fake's signed deliveries."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
import uvicorn
from sqlalchemy import select

from vipsync.api.app import create_app
from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.store.models import Order, WebhookDelivery


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake():
    with FakeShopify(orders=3, seed=3, restore_rate=5000) as server:
        yield server


@pytest.fixture
def web(fake, sqlite_url, tmp_path, monkeypatch):
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml())
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    ctx = Context(settings=Settings(stores_file=stores, data_dir=tmp_path / "data"), database_url=sqlite_url)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    yield ctx, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)
    ctx.dispose()


def _wait_done(ctx, webhook_id: str) -> WebhookDelivery:
    for _ in range(250):
        with ctx.session_factory() as s:
            row = s.execute(
                select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
            ).scalar_one_or_none()
            if row is not None and row.status != "pending":
                return row
        time.sleep(0.02)
    raise AssertionError(f"delivery {webhook_id} was not processed")


def test_signed_delivery_is_accepted_stored_and_applied(fake, web):
    ctx, url = web
    oid = fake.order_ids[0]
    status = fake.deliver_webhook(
        f"{url}/webhooks/shopify", "orders/create", fake.rest_order(oid), webhook_id="a1"
    )
    assert status == 200
    assert _wait_done(ctx, "a1").status == "done"
    with ctx.session_factory() as s:
        assert s.execute(select(Order.external_id)).scalars().all() == [str(oid)]


@pytest.mark.parametrize("secret", ["wrong-secret", ""])
def test_delivery_with_a_bad_signature_is_refused_with_401_and_not_stored(fake, web, secret):
    ctx, url = web
    payload = fake.rest_order(fake.order_ids[0])
    if secret:
        status = fake.deliver_webhook(
            f"{url}/webhooks/shopify", "orders/create", payload, secret=secret, webhook_id="b1"
        )
    else:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(
            f"{url}/webhooks/shopify",
            b"{}",
            {
                "X-Shopify-Topic": "orders/create",
                "X-Shopify-Shop-Domain": "tesmart-us.myshopify.com",
                "X-Shopify-Webhook-Id": "b1",
            },
        )
        try:
            status = urllib.request.urlopen(req).status
        except urllib.error.HTTPError as err:
            status = err.code
    assert status == 401
    with ctx.session_factory() as s:
        assert s.execute(select(WebhookDelivery)).first() is None


def test_unknown_shop_is_refused(fake, web):
    _ctx, url = web
    status = fake.deliver_webhook(
        f"{url}/webhooks/shopify", "orders/create", {"id": 1}, shop_domain="elsewhere.myshopify.com"
    )
    assert status == 401


def test_duplicated_and_out_of_order_deliveries_end_in_the_right_state(fake, web):
    ctx, url = web
    oid = fake.order_ids[1]
    older = fake.rest_order(oid)
    fake.update_order(oid, cancelled=True, at=fake.order(oid).updated_at + timedelta(hours=2))
    newer = fake.rest_order(oid)
    hook = f"{url}/webhooks/shopify"
    assert fake.deliver_webhook(hook, "orders/cancelled", newer, webhook_id="c2") == 200
    _wait_done(ctx, "c2")
    assert fake.deliver_webhook(hook, "orders/cancelled", newer, webhook_id="c2") == 200  # Shopify's retry
    assert fake.deliver_webhook(hook, "orders/create", older, webhook_id="c1") == 200  # late
    _wait_done(ctx, "c1")
    with ctx.session_factory() as s:
        assert len(s.execute(select(WebhookDelivery)).all()) == 2
        order = s.execute(select(Order)).scalar_one()
    assert order.is_cancelled


def test_health_check_answers(web):
    import json
    import urllib.request

    _, url = web
    with urllib.request.urlopen(f"{url}/healthz") as resp:
        assert json.load(resp) == {"status": "ok", "database": "ok", "redis": "ok"}
