"""``POST /webhooks/shopify``: receive a Shopify webhook, verify it, store it, answer.

1. The body is read up to ``VIPSYNC_WEBHOOK_MAX_BYTES`` (a larger ``Content-Length`` is
   refused at once, a chunked body as soon as it passes the limit): 413, nothing kept.
2. The shop is found by ``X-Shopify-Shop-Domain`` among the official Shopify shops.
3. ``X-Shopify-Hmac-Sha256`` is checked against the raw body with the shop's app secret
   (constant-time compare) before anything parses it; a missing or wrong signature gets 401.
4. The body is parsed strictly: a JSON object, finite numbers, at most
   :data:`MAX_DEPTH` levels deep. A signed body that is none of these is stored as a
   ``failed`` delivery with its error (answered 200, so Shopify does not resend it; ops see
   it in ``vipsync webhooks list``).
5. The delivery is stored in ``webhook_deliveries``, minimized by the allowlist of
   ``connectors/minimize.py`` (the e-mail as its keyed digest), unique by
   ``X-Shopify-Webhook-Id`` and by the SHA-256 of the body per shop and topic: a duplicate,
   or the same body under a new webhook id, is answered 200 and not stored again.
6. The answer goes out at once; processing is handed off after the commit with
   ``ctx.dispatch("process_shopify_webhook", delivery_id=...)`` in the background.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.minimize import minimize
from vipsync.errors import ConfigError
from vipsync.store.models import WebhookDelivery
from vipsync.store.repository import utcnow
from vipsync.workers.shopify_jobs import verify_delivery

__all__ = ["MAX_DEPTH", "BodyTooLarge", "find_shop", "parse_body", "read_body", "router"]

log = logging.getLogger(__name__)

router = APIRouter()

MAX_DEPTH = 64  # JSON nesting levels accepted; a Shopify order is about 6 deep


class BodyTooLarge(Exception):
    """The request body is over the webhook size limit."""


def find_shop(ctx, domain: str | None) -> ShopifyShop | None:
    """The configured shop whose ``shop_domain`` is ``domain``."""
    wanted = (domain or "").strip().lower()
    for store in ctx.stores.of_kind("shopify"):
        if store.shop_domain.lower() == wanted:
            return store
    return None


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The body, read chunk by chunk; BodyTooLarge as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of the finite range")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def parse_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; ValueError saying what is wrong with it otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("body is not UTF-8") from None
    # PostgreSQL cannot store a NUL character: an escaped one is kept as U+FFFD (a raw one
    # is invalid JSON anyway).
    text = text.replace("\\u0000", "\\ufffd")
    try:
        payload = json.loads(text, parse_float=_finite, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise ValueError(f"body is not JSON ({str(exc).split(':', 1)[0]})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"body is a JSON {type(payload).__name__}, not an object")
    if _depth(payload) > MAX_DEPTH:
        raise ValueError(f"body is nested more than {MAX_DEPTH} levels deep")
    return payload


def _dispatch(ctx, delivery_id: int) -> None:
    try:
        ctx.dispatch("process_shopify_webhook", delivery_id=delivery_id)
    except Exception:  # the delivery stays pending; the next retry or the sync covers it
        log.exception("webhook processing failed", extra={"delivery_id": delivery_id})


@router.post("/webhooks/shopify")
async def shopify_webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
    ctx = request.app.state.ctx
    try:
        body = await read_body(request, max_bytes=ctx.settings.webhook_max_bytes)
    except BodyTooLarge:
        return JSONResponse(
            {"error": f"body larger than {ctx.settings.webhook_max_bytes} bytes"},
            status_code=413,
            headers={"Connection": "close"},
        )
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
    topic = (request.headers.get("X-Shopify-Topic") or "").strip().lower()[:64]
    webhook_id = (request.headers.get("X-Shopify-Webhook-Id") or "").strip()[:128]
    if not topic or not webhook_id or "\x00" in topic + webhook_id:
        return JSONResponse(
            {"error": "X-Shopify-Topic and X-Shopify-Webhook-Id are required"}, status_code=400
        )
    # A keyed digest: the body carries the buyer's data, so no plain hash of it is kept.
    sha = ctx.digester.digest_bytes("webhook-body", body)
    try:
        payload: dict[str, Any] = parse_body(body)
        error = None
    except ValueError as exc:
        payload, error = {"unparsed_body_bytes": len(body)}, str(exc)
    # The database write runs in the thread pool so a slow commit never stalls the event loop.
    delivery_id, duplicate = await run_in_threadpool(
        _store, ctx, shop.key, topic, webhook_id, payload, sha, error
    )
    if error is not None and not duplicate:
        log.warning("webhook body refused", extra={"store": shop.key, "delivery_id": delivery_id})
        return JSONResponse({"status": "failed", "delivery_id": delivery_id, "error": error}, status_code=200)
    # A duplicate is handed off again only if it never finished (a crash after storing).
    if delivery_id is not None:
        background.add_task(_dispatch, ctx, delivery_id)
    if duplicate:
        return JSONResponse({"status": "duplicate"}, status_code=200)
    return JSONResponse({"status": "accepted", "delivery_id": delivery_id}, status_code=200)


def _store(
    ctx, store_key: str, topic: str, webhook_id: str, payload: Any, sha: str, error: str | None
) -> tuple[int | None, bool]:
    """Insert the delivery (``failed`` with ``error`` when its body was refused); (id, False)
    when new, (id of an unfinished one or None, True) when this webhook id or this body was
    seen before."""
    with ctx.session_factory() as session:
        row = WebhookDelivery(
            webhook_id=webhook_id,
            store_key=store_key,
            topic=topic,
            payload=minimize(payload, digester=ctx.digester, topic=topic) if error is None else payload,
            body_sha256=sha,
            status="pending" if error is None else "failed",
            error=error,
            received_at=utcnow(),
            processed_at=utcnow() if error is not None else None,
        )
        session.add(row)
        try:
            session.commit()
            return row.id, False
        except IntegrityError:
            session.rollback()
    with ctx.session_factory() as session:
        existing = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.status).where(
                or_(
                    WebhookDelivery.webhook_id == webhook_id,
                    (WebhookDelivery.store_key == store_key)
                    & (WebhookDelivery.topic == topic)
                    & (WebhookDelivery.body_sha256 == sha),
                )
            )
        ).first()
    if existing is not None and existing.status == "pending":
        return existing.id, True
    return None, True
