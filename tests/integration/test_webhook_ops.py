"""Failed webhook deliveries: shown by `vipsync webhooks list`, replayed by `vipsync webhooks
replay` once the cause is fixed, never re-dispatched on their own."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from vipsync.bootstrap import Context, set_context
from vipsync.cli.main import app
from vipsync.config.settings import Settings
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.store.models import Order, WebhookDelivery
from vipsync.store.repository import utcnow
from vipsync.workers.schedule import plan_stale_webhooks
from vipsync.workers.shopify_jobs import process_webhook

KEY = "shopify-us"
runner = CliRunner()


@pytest.fixture
def fake():
    with FakeShopify(orders=2, seed=8, restore_rate=5000) as server:
        yield server


@pytest.fixture
def ctx(fake, db_url, tmp_path, monkeypatch):
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml(key=KEY))
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    context = Context(settings=Settings(stores_file=stores, data_dir=tmp_path / "data"), database_url=db_url)
    set_context(context)
    yield context
    set_context(None)


def _store(ctx, payload, webhook_id: str) -> int:
    with ctx.session_factory() as s:
        row = WebhookDelivery(
            webhook_id=webhook_id,
            store_key=KEY,
            topic="orders/updated",
            payload=payload,
            status="pending",
            received_at=utcnow(),
        )
        s.add(row)
        s.commit()
        return row.id


def _cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_a_failed_delivery_is_listed_kept_out_of_the_schedule_and_replays_after_the_fix(fake, ctx):
    oid = fake.order_ids[0]
    order = fake.rest_order(oid)
    broken = dict(order, line_items="not a list")
    delivery_id = _store(ctx, broken, "f-1")
    assert process_webhook(ctx, delivery_id)["status"] == "failed"
    assert process_webhook(ctx, delivery_id)["status"] == "failed"  # a second hand-off is a no-op
    assert plan_stale_webhooks(ctx.session_factory, now=datetime(2100, 1, 1, tzinfo=UTC)) == []

    listed = _cli("webhooks", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["id"], row["status"], row["topic"]) == (delivery_id, "failed", "orders/updated")
    assert "'line_items'" in row["error"]
    assert "buyer" not in listed.output  # no payload (e-mails) in the listing

    # Ops fix the stored payload (or the mapper), then replay.
    with ctx.session_factory() as s:
        s.get(WebhookDelivery, delivery_id).payload = order
        s.commit()
    replayed = _cli("webhooks", "replay", str(delivery_id))
    assert replayed.exit_code == 0, replayed.output
    assert f"delivery {delivery_id}: done" in replayed.output
    with ctx.session_factory() as s:
        assert s.execute(select(Order.external_id)).scalars().all() == [str(oid)]
    assert json.loads(_cli("webhooks", "list", "--format", "json").output) == []


def test_replaying_an_unknown_or_finished_delivery_is_refused_with_a_store_error(fake, ctx):
    from vipsync.errors import StoreError

    delivery_id = _store(ctx, fake.rest_order(fake.order_ids[1]), "f-2")
    assert process_webhook(ctx, delivery_id)["status"] == "done"
    for target, words in ((str(delivery_id), "is done"), ("999999", "no webhook delivery")):
        result = runner.invoke(app, ["webhooks", "replay", target])
        assert isinstance(result.exception, StoreError) and words in str(result.exception)
