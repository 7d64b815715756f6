"""Each store's sync health in the store (``store_sync_health``), written around every
sync job wherever it runs (inline, the embedded runner, a worker): the last success, the
bookmark then, the errors since, the time waited on rate limits. The web process reads it
back for ``/metrics`` and the dashboard, so the sync lag is ``now - last success`` on
every process, and stays right for a shop that has no new orders."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from vipsync.store.decisions import record_sync_failure, record_sync_success

__all__ = ["SYNC_JOBS", "record_outcome", "tracked"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SYNC_JOBS = frozenset({"sync_shopify", "sync_amazon"})


def record_outcome(
    ctx: Any, store_key: str, *, result: Any = None, error: BaseException | None = None
) -> None:
    """Record a sync's end; never raises (health bookkeeping must not fail a sync)."""
    from vipsync.workers.retry import error_summary, retry_after_of

    now = datetime.now(UTC)
    try:
        with ctx.session_factory() as session:
            if error is None:
                record_sync_success(
                    session,
                    store_key,
                    cursor=getattr(result, "cursor", None),
                    orders_read=int(getattr(result, "read", 0) or 0),
                    rate_limit_wait_s=float(getattr(result, "rate_limit_wait_s", 0.0) or 0.0),
                    now=now,
                )
            else:
                record_sync_failure(
                    session,
                    store_key,
                    error=error_summary(error),
                    rate_limit_wait_s=float(retry_after_of(error) or 0.0),
                    now=now,
                )
            session.commit()
    except Exception as exc:  # the database may be what failed the sync
        log.warning("sync health not recorded", extra={"store": store_key, "error": type(exc).__name__})


def tracked(ctx: Any, store_key: str, sync: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``sync(ctx, *args, store_key=store_key, **kwargs)`` and record its outcome."""
    try:
        result = sync(ctx, *args, store_key=store_key, **kwargs)
    except Exception as exc:
        record_outcome(ctx, store_key, error=exc)
        raise
    record_outcome(ctx, store_key, result=result)
    return result
