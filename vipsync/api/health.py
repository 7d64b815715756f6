"""``GET /healthz``: the process answers, the database and Redis are reachable.
``GET /metrics``: Prometheus metrics of the web process, with each store's sync health
read from the store at scrape time (so the lag is ``now - last successful sync`` whichever
process ran the sync, and keeps growing for a shop whose syncs stopped)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

__all__ = ["SyncHealthCollector", "router"]

router = APIRouter()


def _database(ctx) -> str:
    try:
        with ctx.session_factory() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # the answer says which part is down, never why in detail
        return f"error: {type(exc).__name__}"
    return "ok"


def _redis(ctx) -> str:
    import redis

    client = redis.Redis.from_url(ctx.settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"error: {type(exc).__name__}"
    finally:
        client.close()
    return "ok"


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """200 when the database and Redis answer; 503 naming the part that does not."""
    ctx = request.app.state.ctx
    database = await run_in_threadpool(_database, ctx)
    redis_state = await run_in_threadpool(_redis, ctx)
    ok = database == "ok" and redis_state == "ok"
    body = {"status": "ok" if ok else "error", "database": database, "redis": redis_state}
    return JSONResponse(body, status_code=200 if ok else 503)


class SyncHealthCollector:
    """Prometheus collector over ``ops_sync_health``, evaluated at each scrape."""

    NAMES = (
        "vipsync_sync_lag_seconds",
        "vipsync_last_sync_success_timestamp_seconds",
        "vipsync_sync_errors_since_success",
        "vipsync_sync_rate_limit_wait_seconds",
    )

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        lag = GaugeMetricFamily(
            self.NAMES[0], "Seconds since the store's last successful sync.", labels=["store"]
        )
        last = GaugeMetricFamily(
            self.NAMES[1], "When the store's last successful sync finished (Unix time).", labels=["store"]
        )
        errors = GaugeMetricFamily(self.NAMES[2], "Failed syncs since the last success.", labels=["store"])
        waited = GaugeMetricFamily(
            self.NAMES[3], "Seconds the store's syncs waited on rate limits, in total.", labels=["store"]
        )
        now = time.time()
        from sqlalchemy import select

        from vipsync.store.models import StoreSyncHealth as H

        with self.ctx.session_factory() as session:
            rows = session.execute(
                select(H.store_key, H.last_success_at, H.errors_since_success, H.rate_limit_wait_s)
            ).all()
        for store, success, errs, wait in rows:
            if success is not None:
                lag.add_metric([store], max(0.0, now - success.timestamp()))
                last.add_metric([store], success.timestamp())
            errors.add_metric([store], float(errs or 0))
            waited.add_metric([store], float(wait or 0))
        yield from (lag, last, errors, waited)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """This process's metrics and the stores' sync health, in the Prometheus text format."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    ctx = request.app.state.ctx

    def render() -> bytes:
        own = CollectorRegistry(auto_describe=False)
        own.register(SyncHealthCollector(ctx))
        # The jobs this process ran inline count in the default registry; the store's
        # figures replace its end-of-sync gauges of the same names.
        process = _without(REGISTRY, SyncHealthCollector.NAMES)
        return generate_latest(process) + generate_latest(own)

    body = await run_in_threadpool(render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _Filtered:
    def __init__(self, registry: Any, names: tuple[str, ...]) -> None:
        self.registry = registry
        self.names = set(names)

    def collect(self) -> Iterator[Any]:
        for family in self.registry.collect():
            if family.name not in self.names:
                yield family


def _without(registry: Any, names: tuple[str, ...]) -> Any:
    return _Filtered(registry, names)
