"""The web application: ``create_app(ctx)`` builds the FastAPI app from a context.

Routes live in small modules, one per audience (``api/webhooks.py``: Shopify;
``api/members.py``, ``api/proofs.py``, ``api/claims.py``: the ``/v1`` customer API;
``api/read.py``: the read API; ``api/ops.py``: ops decisions; ``api/dashboard.py``: the ops
page; ``api/health.py``: health and metrics); each exposes a ``router`` that reads the
context from ``request.app.state.ctx``. OpenAPI at ``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vipsync.bootstrap import Context, get_context

__all__ = ["create_app"]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Routes that block (the synchronous ones, and ``run_in_threadpool``) share anyio's
    thread limiter, 40 threads by default: at most ``VIPSYNC_API_THREADS`` of them now.
    With 16 proofs in flight on 4 processes, 4 threads each served 430-525 proofs/s
    against 320-356 with 40 (bench/proofs_bench.py)."""
    import anyio.to_thread

    anyio.to_thread.current_default_thread_limiter().total_tokens = app.state.ctx.settings.api_threads
    yield


def create_app(ctx: Context | None = None) -> FastAPI:
    """The app, wired to ``ctx`` (default: the process-wide context)."""
    from vipsync.api import claims, dashboard, health, members, ops, proofs, read, webhooks
    from vipsync.api.errors import install_error_handlers
    from vipsync.api.limits import BodyLimit

    app = FastAPI(title="vipsync", version="0.1.0", docs_url="/docs", redoc_url=None, lifespan=_lifespan)
    app.state.ctx = ctx or get_context()
    # The key of the e-mail digests is read now: on PostgreSQL without VIPSYNC_PII_KEY the
    # web process refuses to start (ConfigError naming the variable), not at the first webhook.
    _ = app.state.ctx.digester
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(members.router)
    app.include_router(proofs.router)
    app.include_router(claims.router)
    app.include_router(read.router)
    app.include_router(ops.router)
    app.include_router(dashboard.router)
    app.mount("/dashboard/static", dashboard.static_files(), name="dashboard-static")
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=lambda: app.state.ctx.settings.api_max_body_bytes)
    return app
