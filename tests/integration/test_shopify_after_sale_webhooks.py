"""Shopify facts after the sale through the webhook path: a deletion is judged as a
cancellation and kept on record, whichever order the deliveries arrive in; Shopify's
official examples (discount allocations, a partially paid order) stored as they are."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.store.models import Order, OrderFactRow, OrderLineRow, Unit, UnitTag, WebhookDelivery
from vipsync.store.repository import utcnow
from vipsync.workers.shopify_jobs import process_webhook
from vipsync.workers.tagging import tag_pending

KEY = "shopify-us"


@pytest.fixture
def fake():
    with FakeShopify(orders=0, seed=5, restore_rate=5000) as server:
        yield server


@pytest.fixture
def ctx(fake, db_url, tmp_path, monkeypatch):
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml(key=KEY))
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path / "data"))
    context = Context(settings=Settings(stores_file=stores, data_dir=tmp_path / "data"), database_url=db_url)
    yield context
    context.dispose()


_ids = itertools.count(1)


def _deliver(ctx, topic: str, payload: dict) -> dict:
    with ctx.session_factory() as s:
        row = WebhookDelivery(
            webhook_id=f"w-{next(_ids)}",
            store_key=KEY,
            topic=topic,
            payload=payload,
            status="pending",
            received_at=utcnow(),
        )
        s.add(row)
        s.commit()
        delivery = row.id
    return process_webhook(ctx, delivery)


def _fixture(fixtures_dir, name: str) -> dict:
    return json.loads((fixtures_dir / "shopify" / name).read_text())


def _tags(ctx) -> list[UnitTag]:
    with ctx.session_factory() as s:
        return list(s.execute(select(UnitTag).join(Unit, Unit.id == UnitTag.unit_id)).scalars())


@pytest.mark.parametrize("deletion_first", [False, True], ids=["order-then-delete", "delete-then-order"])
def test_a_deleted_order_is_kept_and_judged_cancelled_whatever_the_arrival_order(
    fixtures_dir, ctx, deletion_first
):
    order = _fixture(fixtures_dir, "order_discount_allocations.json")["order"]
    order["processed_at"] = "2025-03-01T10:00:00-05:00"  # the example's 2008 precedes every policy version
    deletion = _fixture(fixtures_dir, "orders_delete_webhook.json")
    steps = [("orders/delete", deletion), ("orders/updated", order)]
    for topic, payload in steps if deletion_first else reversed(steps):
        assert _deliver(ctx, topic, payload)["status"] == "done"
        tag_pending(ctx)
    with ctx.session_factory() as s:
        assert s.execute(select(func.count()).select_from(Order)).scalar_one() == 1  # kept on record
        assert s.execute(select(OrderFactRow.kind)).scalars().all() == ["deleted"]
    tags = _tags(ctx)
    assert tags and all("order_cancelled" in t.reasons and t.original_warranty_end is None for t in tags)
    # The same deletion delivered again (a retry) changes nothing.
    assert _deliver(ctx, "orders/delete", deletion)["status"] == "done"
    with ctx.session_factory() as s:
        assert s.execute(select(func.count()).select_from(OrderFactRow)).scalar_one() == 1


def test_a_deletion_without_an_order_id_fails_alone(ctx):
    assert _deliver(ctx, "orders/delete", {"note": "no id"})["status"] == "failed"


def test_official_examples_store_shopifys_line_discounts_and_the_pending_payment(fixtures_dir, ctx):
    discounted = _fixture(fixtures_dir, "order_discount_allocations.json")["order"]
    partial = _fixture(fixtures_dir, "order_partially_paid.json")["order"]
    partial["processed_at"] = "2025-03-01T10:00:00-05:00"  # a date some policy version covers
    assert _deliver(ctx, "orders/updated", discounted)["status"] == "done"
    assert _deliver(ctx, "orders/create", partial)["status"] == "done"
    with ctx.session_factory() as s:
        lines = dict(s.execute(select(OrderLineRow.line_key, OrderLineRow.discount)).all())
        pending = dict(s.execute(select(Order.external_id, Order.payment_pending)).all())
    assert {k: Decimal(str(v)) for k, v in lines.items() if k in {"466157049", "518995019", "703073504"}} == {
        "466157049": Decimal("3.34"),
        "518995019": Decimal("3.33"),
        "703073504": Decimal("3.33"),
    }
    assert pending[str(partial["id"])] is True and pending[str(discounted["id"])] is False
    tag_pending(ctx)
    partial_tags = [t for t in _tags(ctx) if "payment_pending" in t.reasons]
    assert len(partial_tags) == sum(li["quantity"] for li in partial["line_items"])
