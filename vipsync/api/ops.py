"""Ops decisions over HTTP (scope ``support``): the same operations as ``vipsync catalog
classify`` and ``vipsync policy list|enable|disable``, kept in the store with the token's
name as who decided; and the workers' dead letters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from vipsync.api.auth import Caller, require_scope
from vipsync.errors import VipsyncError

__all__ = ["router"]

router = APIRouter(prefix="/v1/ops", tags=["ops"])
Support = Annotated[Caller, Depends(require_scope("support"))]


class Classify(BaseModel):
    """Classify a SKU, or (``title``) the order lines without a SKU that carry this title."""

    sku: str | None = Field(None, max_length=255)
    title: str | None = Field(None, max_length=512)
    category: str = Field(max_length=32)
    note: str = Field("", max_length=2000)
    dry_run: bool = False


class PolicyChange(BaseModel):
    stores: list[str] | None = Field(None, max_length=50)
    countries: list[str] | None = Field(None, max_length=300)
    note: str = Field("", max_length=2000)
    dry_run: bool = False


def _who(caller: Caller) -> str:
    return f"api:{caller.token_name}"


async def _decide(fn, *args, **kwargs) -> dict[str, Any]:
    try:
        result = await run_in_threadpool(fn, *args, **kwargs)
    except VipsyncError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return result.as_dict()


@router.post("/catalog/classify", summary="Classify a SKU (or SKU-less lines by title); re-tag its units")
async def classify(body: Classify, request: Request, caller: Support) -> dict[str, Any]:
    from vipsync.workers.decisions import classify as classify_job

    if bool(body.sku) == bool(body.title):
        raise HTTPException(422, detail="give exactly one of sku or title")
    key = body.sku or body.title or ""
    return await _decide(
        classify_job,
        request.app.state.ctx,
        key,
        body.category,
        by_title=body.title is not None,
        note=body.note,
        decided_by=_who(caller),
        dry_run=body.dry_run,
    )


@router.get("/catalog/decisions", summary="Catalog decisions, newest first")
async def catalog_decisions(request: Request, _caller: Support) -> dict[str, Any]:
    from vipsync.store.decisions import catalog_history

    def run() -> list[dict[str, Any]]:
        with request.app.state.ctx.session_factory() as s:
            return catalog_history(s)

    return {"decisions": await run_in_threadpool(run)}


@router.get("/policies", summary="Policy versions as the processes apply them")
async def policies(request: Request, _caller: Support) -> dict[str, Any]:
    from vipsync.workers.decisions import policy_table

    try:
        rows = await run_in_threadpool(policy_table, request.app.state.ctx)
    except VipsyncError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return {"policies": rows}


@router.post("/policies/{version}/enable", summary="Enable a policy version (optionally limited)")
async def enable(version: str, body: PolicyChange, request: Request, caller: Support) -> dict[str, Any]:
    from vipsync.workers.decisions import set_policy

    return await _decide(
        set_policy,
        request.app.state.ctx,
        version,
        enabled=True,
        stores=body.stores,
        countries=body.countries,
        note=body.note,
        decided_by=_who(caller),
        dry_run=body.dry_run,
    )


@router.post("/policies/{version}/disable", summary="Disable a policy version")
async def disable(version: str, body: PolicyChange, request: Request, caller: Support) -> dict[str, Any]:
    from vipsync.workers.decisions import set_policy

    return await _decide(
        set_policy,
        request.app.state.ctx,
        version,
        enabled=False,
        note=body.note,
        decided_by=_who(caller),
        dry_run=body.dry_run,
    )


@router.get("/dead-letters", summary="The workers' dead letters (Redis): job, ids, error")
async def dead_letters(request: Request, _caller: Support) -> dict[str, Any]:
    import redis

    from vipsync.workers.broker import redis_client
    from vipsync.workers.dlq import list_dead

    settings = request.app.state.ctx.settings

    def run() -> list[dict[str, Any]]:
        client = redis_client(settings.redis_url, retry_for_s=2)
        try:
            return [d.as_dict() for d in list_dead(client, namespace=settings.broker_namespace)]
        finally:
            client.close()

    try:
        letters = await run_in_threadpool(run)
    except redis.RedisError:
        raise HTTPException(503, detail="Redis is not reachable (VIPSYNC_REDIS_URL)") from None
    return {"dead_letters": letters}
