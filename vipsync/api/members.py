"""``/v1/members``: register, exit, look up and erase a member (scopes ``website`` and
``support``; look-up and erasure: ``support`` only).

E-mails travel in request bodies only (never in a URL, so never in an access log) and are
kept as keyed digests. A website registration takes the server's clock whatever date it
sends; support may give an earlier date with a reason.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from vipsync.api.auth import Caller, require_scope
from vipsync.workers.members import erase_member, exit_member, register_member, show_member

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["members"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=500)


class Registration(_Body):
    email: str = Field(
        min_length=3, max_length=320, description="The member's e-mail (kept as a keyed digest)."
    )
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2; decides who may join.")
    registered_on: date | datetime | None = Field(
        None,
        description="Support only: an earlier registration date (needs `reason`); websites get the server clock.",
    )
    reason: str | None = Field(None, max_length=500)


class Exit(_Body):
    email: str = Field(min_length=3, max_length=320)
    exited_on: date | datetime | None = None
    reason: str | None = Field(None, max_length=500)


class Lookup(_Body):
    email: str = Field(min_length=3, max_length=320)


@router.post("/members", summary="Register a member")
async def register(
    body: Registration, request: Request, caller: Caller = Depends(require_scope("website", "support"))
) -> JSONResponse:
    ctx = request.app.state.ctx
    on = body.registered_on if caller.scope == "support" else None
    result = await run_in_threadpool(
        register_member,
        ctx,
        email=body.email,
        country=body.country,
        on=on,
        reason=body.reason,
        source="website" if caller.scope == "website" else "support",
    )
    return JSONResponse(result.as_dict(), status_code=201 if result.outcome != "already_active" else 200)


@router.post("/members/exit", summary="Record a member's exit")
async def exit_(
    body: Exit, request: Request, caller: Caller = Depends(require_scope("website", "support"))
) -> dict[str, Any]:
    ctx = request.app.state.ctx
    on = body.exited_on if caller.scope == "support" else None
    result = await run_in_threadpool(exit_member, ctx, email=body.email, on=on, reason=body.reason)
    return result.as_dict()


@router.post("/members/lookup", summary="A member's membership and units (no personal data)")
async def lookup(
    body: Lookup, request: Request, caller: Caller = Depends(require_scope("support"))
) -> dict[str, Any]:
    return await run_in_threadpool(show_member, request.app.state.ctx, email=body.email)


@router.post("/members/erase", summary="Erase a person's personal data (warranty records stay)")
async def erase(
    body: Lookup, request: Request, caller: Caller = Depends(require_scope("support"))
) -> dict[str, Any]:
    return await run_in_threadpool(erase_member, request.app.state.ctx, email=body.email, origin="api")
