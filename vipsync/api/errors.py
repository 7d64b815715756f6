"""How expected failures answer over HTTP: one shape for every field error (FastAPI's own
422 body: ``detail`` is a list of ``{loc, msg, type}``), 409 for a second benefit, 404 for
an unknown member or unit, 503 "try again later" while the database cannot be reached.
Never a traceback, never personal data (a field error names the field, never echoes its
value)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from vipsync.errors import BenefitAlreadyUsed, EligibilityError, MembershipRefused, RecordError, VipsyncError

__all__ = ["DB_UNREACHABLE", "field_error", "install_error_handlers"]

log = logging.getLogger(__name__)

# What SQLAlchemy raises when the database cannot be reached (refused, dropped, pool exhausted).
DB_UNREACHABLE = (OperationalError, InterfaceError, PoolTimeout)
DB_DOWN = "the service cannot reach its database right now: try again later"


def field_error(field: str | None, message: str, *, status: int = 422) -> JSONResponse:
    loc = ["body", field] if field else ["body"]
    return JSONResponse({"detail": [{"loc": loc, "msg": message, "type": "value_error"}]}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's shape without ``input``/``ctx``: the body never echoes what was sent
        # (an e-mail, a postal code), and a NaN sent in the JSON cannot break the answer.
        detail = [
            {
                "loc": list(err.get("loc", ())),
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    async def _db_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
        return JSONResponse({"detail": DB_DOWN}, status_code=503, headers={"Retry-After": "30"})

    for kind in DB_UNREACHABLE:
        app.add_exception_handler(kind, _db_down)

    @app.exception_handler(VipsyncError)
    async def _vipsync_error(request: Request, exc: VipsyncError) -> JSONResponse:
        from vipsync.workers.claims import UnitNotFound
        from vipsync.workers.members import MemberNotFound

        if isinstance(exc, UnitNotFound | MemberNotFound):
            return JSONResponse({"detail": exc.reason}, status_code=404)
        if isinstance(exc, RecordError):
            return field_error(exc.field, exc.reason)
        if isinstance(exc, MembershipRefused):
            return field_error("country", str(exc))
        if isinstance(exc, BenefitAlreadyUsed):
            return JSONResponse({"detail": str(exc)}, status_code=409)
        if isinstance(exc, EligibilityError):
            return JSONResponse({"detail": str(exc)}, status_code=422)
        return JSONResponse(
            {"detail": "the request could not be completed: " + type(exc).__name__}, status_code=503
        )
