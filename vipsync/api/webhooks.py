"""``POST /webhooks/shopify``: receive a Shopify webhook, verify it, store it, answer.

1. The shop is found by ``X-Shopify-Shop-Domain`` among the official Shopify shops.
2. ``X-Shopify-Hmac-Sha256`` is checked against the raw body with the shop's app secret
   (constant-time compare); a missing or wrong signature gets 401.
3. The delivery is stored in ``webhook_deliveries`` (unique ``X-Shopify-Webhook-Id``),
   minimized by the allowlist of ``connectors/minimize.py`` (the e-mail as its keyed
   digest): a duplicate is answered 200 and not stored again.
4. The answer goes out at once; processing is handed off after the commit with
   ``ctx.dispatch("process_shopify_webhook", delivery_id=...)`` in the background.
"""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.minimize import minimize
from vipsync.errors import ConfigError
from vipsync.store.models import WebhookDelivery
from vipsync.store.repository import utcnow
from vipsync.workers.shopify_jobs import verify_delivery

__all__ = ["find_shop", "router"]

log = logging.getLogger(__name__)

router = APIRouter()


def find_shop(ctx, domain: str | None) -> ShopifyShop | None:
    """The configured shop whose ``shop_domain`` is ``domain``."""
    wanted = (domain or "").strip().lower()
    for store in ctx.stores.of_kind("shopify"):
        if store.shop_domain.lower() == wanted:
            return store
    return None


def _dispatch(ctx, delivery_id: int) -> None:
    try:
        ctx.dispatch("process_shopify_webhook", delivery_id=delivery_id)
    except Exception:  # the delivery stays pending; the next retry or the sync covers it
        log.exception("webhook processing failed", extra={"delivery_id": delivery_id})


@router.post("/webhooks/shopify")
async def shopify_webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
    ctx = request.app.state.ctx
    body = await request.body()
    shop = find_shop(ctx, request.headers.get("X-Shopify-Shop-Domain"))
    if shop is None:
        return JSONResponse({"error": "unknown shop"}, status_code=401)
    try:
        valid = verify_delivery(shop, body, request.headers.get("X-Shopify-Hmac-Sha256"))
    except ConfigError:
        log.error("webhook secret not configured", extra={"store": shop.key})
        return JSONResponse({"error": "webhook secret not configured"}, status_code=401)
    if not valid:
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    topic = (request.headers.get("X-Shopify-Topic") or "").strip().lower()
    webhook_id = (request.headers.get("X-Shopify-Webhook-Id") or "").strip()
    if not topic or not webhook_id:
        return JSONResponse(
            {"error": "X-Shopify-Topic and X-Shopify-Webhook-Id are required"}, status_code=400
        )
    try:
        payload = json.loads(body)
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    # The database write runs in the thread pool so a slow commit never stalls the event loop.
    delivery_id, duplicate = await run_in_threadpool(_store, ctx, shop.key, topic, webhook_id[:128], payload)
    # A duplicate is handed off again only if it never finished (a crash after storing).
    if delivery_id is not None:
        background.add_task(_dispatch, ctx, delivery_id)
    if duplicate:
        return JSONResponse({"status": "duplicate"}, status_code=200)
    return JSONResponse({"status": "accepted", "delivery_id": delivery_id}, status_code=200)


def _store(ctx, store_key: str, topic: str, webhook_id: str, payload) -> tuple[int | None, bool]:
    """Insert the delivery; (id, False) when new, (id of an unfinished one or None, True)
    when this webhook id was seen before."""
    with ctx.session_factory() as session:
        row = WebhookDelivery(
            webhook_id=webhook_id,
            store_key=store_key,
            topic=topic,
            payload=minimize(payload, digester=ctx.digester, topic=topic),
            status="pending",
            received_at=utcnow(),
        )
        session.add(row)
        try:
            session.commit()
            return row.id, False
        except IntegrityError:
            session.rollback()
    with ctx.session_factory() as session:
        existing = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.status).where(WebhookDelivery.webhook_id == webhook_id)
        ).first()
    if existing is not None and existing.status == "pending":
        return existing.id, True
    return None, True
