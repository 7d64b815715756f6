"""The web process runs at most ``VIPSYNC_API_THREADS`` blocking requests at once: its
lifespan sets anyio's thread limiter, which FastAPI's synchronous routes and
``run_in_threadpool`` share."""

from __future__ import annotations

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from tests.api_helpers import make_context
from vipsync.api.app import create_app


async def _limit() -> float:
    return anyio.to_thread.current_default_thread_limiter().total_tokens


@pytest.mark.parametrize("threads", [None, 2])
def test_the_thread_limit_is_the_setting(sqlite_url, tmp_path, threads):
    overrides = {} if threads is None else {"api_threads": threads}
    ctx = make_context(sqlite_url, tmp_path, "unused", "redis://127.0.0.1:6379/0", **overrides)
    try:
        with TestClient(create_app(ctx)) as client:  # runs the lifespan
            assert client.get("/healthz").status_code == 200
            assert client.portal.call(_limit) == ctx.settings.api_threads == (threads or 4)
    finally:
        ctx.dispose()
