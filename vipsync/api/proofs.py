"""``POST /v1/proofs``: verify a proof of purchase (scopes ``website`` and ``support``).

Every refusal of an order and factor (unknown order, wrong factor, no postal code) gets
the same status (404) and body, no sooner than ``VIPSYNC_PROOF_MIN_DELAY_MS`` after the
request arrived; while a store's API is down, 503 "try again later" instead. Refused
attempts are counted per client token, per end-user address and per normalized order
identifier, as keyed digests in Redis; over a limit: 429 with ``Retry-After``. The end-user
address is the peer's, unless the caller's token is named in
``VIPSYNC_API_TRUSTED_PROXY_TOKENS`` (the website's backend forwarding its visitor's
address in ``X-End-User-Address``): no other caller can choose the key it is counted under.
A database that cannot be reached is 503 "try again later" too, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from typing import Any

import redis
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from vipsync.api.auth import Caller, require_scope
from vipsync.api.errors import DB_UNREACHABLE
from vipsync.api.limits import SlidingWindow
from vipsync.connectors.files.invoice import read_invoice
from vipsync.errors import RecordError
from vipsync.workers.proofs import TRY_LATER, ProofRequest, normalize_reference, verify_proof
from vipsync.workers.proofs_fetch import fetch_on_demand

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["proofs"])


class Proof(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_email: str = Field(min_length=3, max_length=320, description="The member to link the order to.")
    order_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="`#1001`, `1001` or an Amazon id; optional with an invoice.",
    )
    order_email: str | None = Field(None, max_length=320, description="Factor: the order's e-mail.")
    postal_code: str | None = Field(None, max_length=32, description="Factor: the shipping postal code.")
    country: str | None = Field(
        None, min_length=2, max_length=2, description="With a postal code: its country."
    )
    store: str | None = Field(None, max_length=64, description="Limit the search to one official store.")
    invoice_pdf: str | None = Field(None, description="Factor: the invoice PDF, base64.")


def _limiter(request: Request) -> SlidingWindow:
    state = request.app.state
    if getattr(state, "proof_limiter", None) is None:
        settings = state.ctx.settings
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        state.proof_limiter = SlidingWindow(
            client, namespace=f"{settings.broker_namespace}:proofs", window_s=settings.proof_rate_window_s
        )
    limiter: SlidingWindow = state.proof_limiter
    return limiter


def _request_of(ctx, body: Proof) -> ProofRequest:
    factors = [f for f in ("order_email", "postal_code", "invoice_pdf") if getattr(body, f) is not None]
    if len(factors) != 1:
        raise RecordError(
            "give exactly one second factor: order_email, postal_code or invoice_pdf", field="factor"
        )
    if body.invoice_pdf is None:
        if body.order_id is None:
            raise RecordError("an order number is required", field="order_id")
        method = "email" if body.order_email is not None else "postal_code"
        return ProofRequest(
            order_id=body.order_id,
            member_email=body.member_email,
            order_email=body.order_email,
            postal_code=body.postal_code,
            country=body.country,
            store=body.store,
            method=method,
        )
    settings = ctx.settings
    if len(body.invoice_pdf) > settings.invoice_max_bytes * 4 // 3 + 8:
        raise RecordError(
            f"the invoice is larger than {settings.invoice_max_bytes} bytes", field="invoice_pdf"
        )
    try:
        data = base64.b64decode(body.invoice_pdf, validate=True)
    except (binascii.Error, ValueError):
        raise RecordError("not base64", field="invoice_pdf") from None
    prefixes = tuple(s.order_name_prefix for s in ctx.stores if s.kind == "shopify")
    invoice = read_invoice(data, max_bytes=settings.invoice_max_bytes, shop_prefixes=prefixes)
    refs = {normalize_reference(ctx, i).value for i in invoice.identifiers}
    if body.order_id is not None:
        wanted = normalize_reference(ctx, body.order_id).value
        if wanted not in refs:
            raise RecordError("the invoice does not show this order number", field="invoice_pdf")
        refs = {wanted}
    if len(refs) != 1:
        raise RecordError("the invoice must show exactly one order number", field="invoice_pdf")
    return ProofRequest(
        order_id=refs.pop(),
        member_email=body.member_email,
        postal_code=invoice.compact,
        store=body.store,
        method="invoice",
        invoice_dates=invoice.dates,
    )


def _judge(
    ctx, limiter: SlidingWindow, body: Proof, caller: Caller, address: str
) -> tuple[int, dict[str, Any], int]:
    """(status, body, retry-after seconds) of one proof; runs in the thread pool."""
    req = _request_of(ctx, body)
    ref = normalize_reference(ctx, req.order_id)
    digester = ctx.digester
    s = ctx.settings
    keys = [
        ("token", digester.digest("ratelimit-token", caller.token_name), s.proof_rate_per_token),
        ("address", digester.digest("ratelimit-address", address), s.proof_rate_per_address),
        ("order", digester.digest("ratelimit-order", ref.value), s.proof_rate_per_order),
    ]
    try:
        wait = limiter.retry_after_many(keys)
    except redis.RedisError as exc:
        log.warning("rate limiter unavailable", extra={"error": type(exc).__name__})
        return 503, {"verified": False, "message": TRY_LATER}, 30
    if wait:
        return 429, {"detail": "too many refused attempts: try again later"}, wait
    try:
        result = verify_proof(ctx, req, client=caller.token_name, fetch=fetch_on_demand(ctx))
    except DB_UNREACHABLE as exc:
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return 503, {"verified": False, "message": TRY_LATER}, 30
    if result.outcome == "verified":
        return 200, result.as_dict(), 0
    if result.outcome == "register_first":
        return 403, result.as_dict(), 0
    if result.outcome == "try_later":
        return 503, result.as_dict(), 30
    try:
        limiter.hit_many(keys)
    except redis.RedisError as exc:
        log.warning("rate limiter unavailable", extra={"error": type(exc).__name__})
    return 404, result.as_dict(), 0


def end_user_address(request: Request, caller: Caller) -> str:
    """The address the per-address limit counts: ``X-End-User-Address`` from a trusted
    proxy token, else the peer's address."""
    settings = request.app.state.ctx.settings
    trusted = {n.strip() for n in settings.api_trusted_proxy_tokens.split(",") if n.strip()}
    forwarded = request.headers.get("x-end-user-address", "").strip()
    if forwarded and caller.token_name in trusted:
        return forwarded[:64]
    return (request.client.host if request.client else "")[:64]


@router.post("/proofs", summary="Verify a proof of purchase and link the order to a member")
async def post_proof(
    body: Proof, request: Request, caller: Caller = Depends(require_scope("website", "support"))
) -> JSONResponse:
    started = time.monotonic()
    ctx = request.app.state.ctx
    status, payload, retry_after = await run_in_threadpool(
        _judge, ctx, _limiter(request), body, caller, end_user_address(request, caller)
    )
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    if status in (404, 503):
        # Refusals answer no sooner than the minimum delay, whatever they cost.
        remaining = ctx.settings.proof_min_delay_ms / 1000 - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
    return JSONResponse(payload, status_code=status, headers=headers)
