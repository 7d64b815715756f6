"""The webhook endpoint's limits over real HTTP (uvicorn): sizes, signatures before parsing,
hostile JSON, replays under new ids, concurrency on ``web --inline``."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import uvicorn
from sqlalchemy import func, select

from vipsync.api.app import create_app
from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.devtools.fake_shopify import FakeShopify, sign_webhook
from vipsync.store.models import ImportError_, Order, WebhookDelivery
from vipsync.workers.runner import InlineDispatcher
from vipsync.workers.schedule import plan_stale_webhooks

MAX_BYTES = 64_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake():
    with FakeShopify(orders=3, seed=3, restore_rate=5000) as server:
        yield server


@pytest.fixture
def web(fake, db_url, tmp_path, monkeypatch):
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml())
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    settings = Settings(stores_file=stores, data_dir=tmp_path / "data", webhook_max_bytes=MAX_BYTES)
    ctx = Context(settings=settings, database_url=db_url)
    ctx.dispatcher = InlineDispatcher(ctx)  # `vipsync web --inline`
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(250):
        if server.started:
            break
        time.sleep(0.02)
    yield ctx, port
    server.should_exit = True
    thread.join(timeout=5)
    ctx.dispose()


def _post(
    port: int, body, *, secret: str | None, webhook_id: str, topic: str = "orders/updated", chunked=False
):
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "tesmart-us.myshopify.com",
        "X-Shopify-Webhook-Id": webhook_id,
        "Content-Type": "application/json",
    }
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = sign_webhook(secret, body if isinstance(body, bytes) else b"")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:
            conn.request("POST", "/webhooks/shopify", body=body, headers=headers, encode_chunked=True)
        else:
            conn.request("POST", "/webhooks/shopify", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    except (BrokenPipeError, ConnectionResetError):
        return 413, {}  # the server answered and closed while the rest was still being sent
    finally:
        conn.close()


def _deliveries(ctx) -> list[WebhookDelivery]:
    with ctx.session_factory() as s:
        return list(s.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).scalars())


def test_a_body_over_the_limit_is_refused_with_413_before_the_signature_is_checked(fake, web):
    ctx, port = web
    big = b'{"id": 1, "pad": "' + b"x" * (MAX_BYTES + 10) + b'"}'
    assert _post(port, big, secret=None, webhook_id="big-1")[0] == 413  # unsigned
    assert _post(port, big, secret=fake.webhook_secret, webhook_id="big-2")[0] == 413  # signed

    def pieces():
        for _ in range(40):
            yield b"x" * 4096

    assert _post(port, pieces(), secret=None, webhook_id="big-3", chunked=True)[0] == 413
    assert _deliveries(ctx) == []


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[1, 2, 3]", "not an object"),
        (b'{"id": NaN}', "not JSON"),
        (b'{"id": 1e999}', "not JSON"),
        (b'{"a":' * 200 + b"1" + b"}" * 200, "nested"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"id": 1', "not JSON"),
    ],
    ids=["array", "nan", "infinite", "deep", "not-utf8", "truncated"],
)
def test_a_signed_body_that_is_not_a_json_object_is_a_failed_delivery_never_a_500(fake, web, body, why):
    ctx, port = web
    status, answer = _post(port, body, secret=fake.webhook_secret, webhook_id="bad-1")
    assert status == 200 and answer["status"] == "failed" and why in answer["error"]
    [row] = _deliveries(ctx)
    assert row.status == "failed" and why in (row.error or "")
    # Failed deliveries are not handed off again by the schedule.
    far = datetime(2100, 1, 1, tzinfo=UTC)
    assert plan_stale_webhooks(ctx.session_factory, now=far) == []


def test_an_escaped_nul_in_a_signed_order_is_kept_as_a_replacement_character(fake, web):
    ctx, port = web
    order = fake.rest_order(fake.order_ids[0])
    order["line_items"][0]["title"] = "gift\u0000wrap"
    body = json.dumps(order).encode()
    assert _post(port, body, secret=fake.webhook_secret, webhook_id="nul-1")[0] == 200
    for _ in range(250):
        rows = _deliveries(ctx)
        if rows and rows[0].status != "pending":
            break
        time.sleep(0.02)
    assert rows[0].status == "done"
    assert rows[0].payload["line_items"][0]["title"] == "gift\ufffdwrap"


def test_the_same_body_under_a_new_webhook_id_changes_nothing(fake, web):
    ctx, port = web
    body = json.dumps(fake.rest_order(fake.order_ids[0])).encode()
    assert _post(port, body, secret=fake.webhook_secret, webhook_id="r-1")[1]["status"] == "accepted"
    assert _post(port, body, secret=fake.webhook_secret, webhook_id="r-2")[1]["status"] == "duplicate"
    assert [d.webhook_id for d in _deliveries(ctx)] == ["r-1"]


def test_thirty_concurrent_webhooks_for_one_order_on_web_inline_all_apply_without_error(fake, web, caplog):
    ctx, port = web
    oid = fake.order_ids[0]
    bodies = []
    for i in range(30):  # thirty different versions of the same order (Shopify's retries differ too)
        order = fake.rest_order(oid)
        order["note_attributes"] = [{"name": "n", "value": str(i)}]
        bodies.append(json.dumps(order).encode())
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(
            pool.map(
                lambda i: _post(port, bodies[i], secret=fake.webhook_secret, webhook_id=f"c-{i}"), range(30)
            )
        )
    assert [status for status, _ in answers] == [200] * 30
    for _ in range(500):
        if all(d.status != "pending" for d in _deliveries(ctx)):
            break
        time.sleep(0.05)
    rows = _deliveries(ctx)
    assert len(rows) == 30 and {d.status for d in rows} == {"done"}
    with ctx.session_factory() as s:
        assert s.execute(select(func.count()).select_from(Order)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(ImportError_)).scalar_one() == 0
    assert "IntegrityError" not in caplog.text
