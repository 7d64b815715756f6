"""The jobs by name. Each job is a plain function ``job(ctx, **ids)`` that is idempotent
and takes ids, never objects, so it can run inline (the embedded default, the CLI) or
inside a dramatiq actor on any worker."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["JOBS", "TAG_JOBS", "resolve", "run_job"]

JOBS: dict[str, str] = {
    # store_key, backfill: bool = False, since: "YYYY-MM-DD" | None = None
    "sync_shopify": "vipsync.workers.shopify_jobs:sync_shop",
    # delivery_id: int
    "process_shopify_webhook": "vipsync.workers.shopify_jobs:process_webhook",
    # store_key, backfill: bool = False, since: "YYYY-MM-DD" | None = None
    "sync_amazon": "vipsync.workers.amazon_jobs:sync_account",
    # (no arguments) tag every unit that is new or changed since it was last tagged
    "tag_pending": "vipsync.workers.tagging:tag_pending",
    # (no arguments) re-tag after a policy or catalog change; rewrites only changed tags
    "retag_all": "vipsync.workers.tagging:retag_all",
    # (no arguments) record/release the trade-ins of orders that carry a quote's code
    "apply_trade_in_codes": "vipsync.workers.trade_ins:apply_trade_in_codes",
}


def resolve(name: str) -> Callable[..., Any]:
    try:
        spec = JOBS[name]
    except KeyError:
        raise KeyError(f"unknown job {name!r} (known: {', '.join(JOBS)})") from None
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def run_job(ctx, name: str, **kwargs: Any) -> Any:
    """Run a job inline in this process; a sync job's outcome goes to its store's health."""
    job = resolve(name)
    from vipsync.workers.sync_health import SYNC_JOBS, tracked

    if name in SYNC_JOBS and "store_key" in kwargs:
        rest = {k: v for k, v in kwargs.items() if k != "store_key"}
        return tracked(ctx, str(kwargs["store_key"]), job, **rest)
    result = job(ctx, **kwargs)
    if name in TAG_JOBS:
        _refresh_counts(ctx)
    return result


# After these, the dashboard's counts summary is rebuilt here rather than by a reader.
TAG_JOBS = frozenset({"tag_pending", "retag_all"})


def _refresh_counts(ctx) -> None:
    import logging

    from vipsync.store.ops_queries import refresh_counts

    try:
        with ctx.session_factory() as session:
            refresh_counts(session)
    except Exception as exc:  # a reader rebuilds it then; the tagging itself is done
        logging.getLogger(__name__).warning("unit counts not refreshed", extra={"error": type(exc).__name__})
