"""``/v1/claims`` and trade-in quotes (scope ``support``; quotes also ``website``).

A second benefit on a unit is refused with 409; any other rule that refuses a claim or a
quote answers 422 with the reason. A quote's list price is read from the shop where the
new order is placed; a caller may give one only with scope ``support`` and a reason.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from vipsync.api.auth import Caller, require_scope
from vipsync.workers.claims import quote_trade_in, record_claim
from vipsync.workers.prices import shop_list_price

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["claims"])


class ClaimBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_id: int = Field(ge=1, le=2**62)
    kind: Literal["exchange", "trade_in", "warranty_exchange"]
    on: date = Field(description="The day the customer's request was opened.")
    ship_date: date | None = Field(None, description="An exchange: the day the replacement ships.")
    reason: str | None = Field(None, max_length=500, description="Needed for a request opened long ago.")


class QuoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_email: str = Field(min_length=3, max_length=320)
    store: str = Field(min_length=1, max_length=64, description="The web store of the new order.")
    sku: str = Field(min_length=1, max_length=255, description="The new product's SKU.")
    list_price: Decimal | None = Field(None, gt=0, max_digits=14, decimal_places=2)
    currency: str | None = Field(None, min_length=3, max_length=3)
    reason: str | None = Field(None, max_length=500)


@router.post("/claims", summary="Record an exchange, a trade-in or an ordinary warranty exchange")
async def post_claim(
    body: ClaimBody, request: Request, caller: Caller = Depends(require_scope("support"))
) -> JSONResponse:
    result = await run_in_threadpool(
        record_claim,
        request.app.state.ctx,
        unit_id=body.unit_id,
        kind=body.kind,
        on=body.on,
        ship_date=body.ship_date,
        reason=body.reason,
        recorded_by=caller.token_name,
    )
    return JSONResponse(result, status_code=201)


@router.post("/units/{unit_id}/trade-in-quotes", summary="Quote a trade-in with a single-use code")
async def post_quote(
    body: QuoteBody,
    request: Request,
    unit_id: int = Path(ge=1, le=2**62),
    caller: Caller = Depends(require_scope("website", "support")),
) -> JSONResponse:
    ctx = request.app.state.ctx
    result: dict[str, Any] = await run_in_threadpool(
        quote_trade_in,
        ctx,
        unit_id=unit_id,
        member_email=body.member_email,
        store=body.store,
        sku=body.sku,
        list_price=body.list_price,
        currency=body.currency,
        reason=body.reason,
        caller_scope=caller.scope,
        recorded_by=caller.token_name,
        price_lookup=lambda store, sku: shop_list_price(ctx, store, sku),
    )
    return JSONResponse(result, status_code=201)
