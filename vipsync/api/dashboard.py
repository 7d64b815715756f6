"""``GET /dashboard``: the ops page. A static page and its assets, all served by this app
(Chart.js vendored under ``static/vendor/``, see VENDORED.md): no outside network. The
page asks for a bearer token and reads everything through the read API; its classify
action calls ``/v1/ops/catalog/classify`` (a ``support`` token)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC", "router", "static_files"]

STATIC = Path(__file__).resolve().parent / "static"

router = APIRouter()


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)
