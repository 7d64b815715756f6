"""The schedule hands off again webhook deliveries whose message was lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vipsync.store.models import WebhookDelivery
from vipsync.workers.schedule import plan_stale_webhooks


def test_only_deliveries_pending_for_long_are_handed_off_again(session_factory):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    rows = [
        ("old-pending", "pending", now - timedelta(hours=1)),
        ("old-done", "done", now - timedelta(hours=1)),
        ("fresh-pending", "pending", now - timedelta(seconds=30)),
        ("old-rejected", "rejected", now - timedelta(days=2)),
        ("older-pending", "pending", now - timedelta(days=1)),
    ]
    with session_factory() as s:
        for webhook_id, status, received in rows:
            s.add(
                WebhookDelivery(
                    webhook_id=webhook_id,
                    store_key="shopify-us",
                    topic="orders/create",
                    payload={},
                    status=status,
                    received_at=received,
                )
            )
        s.commit()
        ids = {w.webhook_id: w.id for w in s.query(WebhookDelivery)}
    plan = plan_stale_webhooks(session_factory, now=now)
    assert plan == [
        ("process_shopify_webhook", {"delivery_id": ids["old-pending"]}),
        ("process_shopify_webhook", {"delivery_id": ids["older-pending"]}),
    ]
