"""``GET /healthz``: the process answers and the database is reachable."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    ctx = request.app.state.ctx
    try:
        with ctx.session_factory() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # the answer says which part is down, never why in detail
        return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
