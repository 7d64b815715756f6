"""The read API (scope ``read``; ``support`` tokens may read too): unit queries with
filters and keyset pages, counts, a streamed CSV export, and the dashboard's panels. Every
answer comes from the ``ops_*`` views: no personal data, members by pseudonymous id."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from vipsync.api.auth import Caller, require_scope
from vipsync.store import ops_queries as q

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["read"])
Reader = Annotated[Caller, Depends(require_scope("read", "support"))]


def _filter(request: Request, eligible: bool | None, purchased_from: date | None, purchased_to: date | None):
    equals = []
    for name in q.UNIT_FILTERS:
        value = request.query_params.get(name)
        if value is not None and value != "":
            if len(value) > 255:
                raise HTTPException(422, detail=f"{name}: longer than 255 characters")
            if any(ord(c) < 32 for c in value):
                raise HTTPException(422, detail=f"{name}: control characters are not allowed")
            equals.append((name, value))
    return q.UnitFilter(
        equals=tuple(equals), eligible=eligible, purchased_from=purchased_from, purchased_to=purchased_to
    )


_FILTER_DOC = "Equality filters: " + ", ".join(q.UNIT_FILTERS) + " (query parameters)."


def _session(request: Request):
    return request.app.state.ctx.session_factory()


@router.get("/units", summary="Units, filtered, one keyset page at a time", description=_FILTER_DOC)
async def units(
    request: Request,
    _caller: Reader,
    eligible: bool | None = None,
    purchased_from: date | None = None,
    purchased_to: date | None = None,
    after: Annotated[int, Query(ge=0, description="The last unit_id of the previous page.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    flt = _filter(request, eligible, purchased_from, purchased_to)

    def run() -> list[dict[str, Any]]:
        with _session(request) as s:
            return q.unit_page(s, flt, after=after, limit=limit)

    rows = await run_in_threadpool(run)
    nxt = rows[-1]["unit_id"] if len(rows) == limit else None
    return {"units": rows, "next_after": nxt}


@router.get("/units/counts", summary="Units counted by status, store, country, ...", description=_FILTER_DOC)
async def unit_counts(
    request: Request,
    _caller: Reader,
    by: Annotated[
        list[str] | None, Query(description=f"One or more of: {', '.join(q.COUNT_DIMENSIONS)}")
    ] = None,
    eligible: bool | None = None,
    purchased_from: date | None = None,
    purchased_to: date | None = None,
) -> dict[str, Any]:
    dims = tuple(d for item in by or ["benefit_status"] for d in item.split(",") if d)
    bad = [d for d in dims if d not in q.COUNT_DIMENSIONS]
    if not dims or bad:
        raise HTTPException(
            422, detail=f"by: {', '.join(bad) or 'empty'} not one of {', '.join(q.COUNT_DIMENSIONS)}"
        )
    flt = _filter(request, eligible, purchased_from, purchased_to)

    def run() -> list[dict[str, Any]]:
        with _session(request) as s:
            return q.counts(s, dims, flt)

    rows = await run_in_threadpool(run)
    return {"by": list(dims), "counts": rows, "total": sum(r["units"] for r in rows)}


@router.get(
    "/units.csv",
    summary="Every matching unit as CSV, streamed",
    description=_FILTER_DOC,
    response_class=StreamingResponse,
)
def units_csv(
    request: Request,
    _caller: Reader,
    eligible: bool | None = None,
    purchased_from: date | None = None,
    purchased_to: date | None = None,
) -> StreamingResponse:
    flt = _filter(request, eligible, purchased_from, purchased_to)

    def body() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(q.UNIT_COLUMNS), lineterminator="\n")
        writer.writeheader()
        with _session(request) as s:
            for n, row in enumerate(q.iter_units(s, flt), start=1):
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
                if n % 1000 == 0:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(
        body(), media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="units.csv"'}
    )


@router.get("/windows/closing", summary="Windows closing in the next N days")
async def windows_closing(
    request: Request,
    _caller: Reader,
    days: Annotated[int, Query(ge=0, le=3650)] = 30,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with _session(request) as s:
            return q.windows_closing(s, within_days=days, limit=limit)

    return {"days": days, **(await run_in_threadpool(run))}


@router.get("/registrations/upcoming", summary="Registration deadlines in the next N days")
async def registrations(
    request: Request,
    _caller: Reader,
    days: Annotated[int, Query(ge=0, le=3650)] = 30,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with _session(request) as s:
            return q.registration_deadlines(s, within_days=days, limit=limit)

    return {"days": days, **(await run_in_threadpool(run))}


@router.get("/sync-health", summary="Sync health per store (lag = now - last success)")
async def sync_health(request: Request, _caller: Reader) -> dict[str, Any]:
    def run() -> list[dict[str, Any]]:
        with _session(request) as s:
            return q.sync_health(s)

    return {"stores": await run_in_threadpool(run)}


@router.get("/unclassified", summary="SKUs and SKU-less lines waiting for a classification")
async def unclassified(request: Request, _caller: Reader) -> dict[str, Any]:
    def run() -> list[dict[str, Any]]:
        with _session(request) as s:
            return q.unclassified(s)

    return {"items": await run_in_threadpool(run)}


@router.get("/errors", summary="Open import errors and failed webhook deliveries")
async def errors(
    request: Request, _caller: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    def run() -> list[dict[str, Any]]:
        with _session(request) as s:
            return q.errors(s, limit=limit)

    return {"errors": await run_in_threadpool(run)}
