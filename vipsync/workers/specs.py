"""How each job runs outside its own code: its queue, the store lock it takes, and the
follow-up jobs started after it committed. Shared by the actors (enqueued follow-ups)
and the embedded runner (inline follow-ups). Pure data, no dramatiq."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HOUR_MS", "SPECS", "JobSpec", "spec_for"]

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class JobSpec:
    """How the workers run one job."""

    queue: str = "default"
    lock_on: str | None = None  # the kwarg naming the store whose lock the job takes
    skip_when_busy: Callable[[Mapping[str, Any]], bool] = field(default=lambda kwargs: False)
    then: tuple[str, ...] = ()  # follow-up jobs started after the job's commit
    coalesce: bool = False  # at most one message of this job waiting in the queue
    time_limit_ms: int = HOUR_MS


def _incremental(kwargs: Mapping[str, Any]) -> bool:
    return not kwargs.get("backfill") and not kwargs.get("since")


SPECS: dict[str, JobSpec] = {
    "sync_shopify": JobSpec(
        queue="sync",
        lock_on="store_key",
        skip_when_busy=_incremental,
        then=("tag_pending", "apply_trade_in_codes"),
        time_limit_ms=12 * HOUR_MS,
    ),
    "sync_amazon": JobSpec(
        queue="sync",
        lock_on="store_key",
        skip_when_busy=_incremental,
        then=("tag_pending",),
        time_limit_ms=12 * HOUR_MS,
    ),
    "process_shopify_webhook": JobSpec(
        then=("tag_pending", "apply_trade_in_codes"), time_limit_ms=5 * 60_000
    ),
    # Trade-in codes on the web-store orders that arrived: after every Shopify sync or webhook.
    "apply_trade_in_codes": JobSpec(coalesce=True, time_limit_ms=30 * 60_000),
    "tag_pending": JobSpec(coalesce=True),
    "retag_all": JobSpec(time_limit_ms=6 * HOUR_MS),
}


def spec_for(job: str) -> JobSpec:
    return SPECS.get(job) or JobSpec()
