"""The jobs by name. Each job is a plain function ``job(ctx, **ids)`` that is idempotent
and takes ids, never objects, so it can run inline (the embedded default, the CLI) or
inside a dramatiq actor on any worker."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["JOBS", "resolve", "run_job"]

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
    """Run a job inline in this process."""
    return resolve(name)(ctx, **kwargs)
