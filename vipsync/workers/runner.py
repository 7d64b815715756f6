"""The embedded default: the same jobs, inline, in one process, without Redis.

``vipsync run`` syncs every store that has credentials or an ``endpoint``, then tags
pending units, once. ``vipsync run --loop`` keeps doing it on the schedule of
:mod:`vipsync.workers.schedule` (and the nightly tagging and reconciliation). One
store's failure is reported and the others go on.

A store syncs once at a time anywhere: when Redis is configured (``VIPSYNC_REDIS_URL``
set) and reachable, every inline sync (``vipsync run``, ``vipsync sync ...``, ``vipsync web --inline``)
takes the same store lock as the workers (:func:`store_lock`); a store a worker is syncing
is skipped (``vipsync run``) or refused (``vipsync sync``). Inline jobs of one process run
one at a time, so concurrent webhooks on ``vipsync web --inline`` never race each other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vipsync.errors import LockNotAcquired, VipsyncError
from vipsync.workers import metrics
from vipsync.workers.registry import run_job
from vipsync.workers.retry import classify, error_summary
from vipsync.workers.schedule import build_scheduler, plan_reconcile, plan_stale_webhooks, plan_sync
from vipsync.workers.specs import spec_for

__all__ = ["InlineDispatcher", "RunReport", "run_loop", "run_once", "run_plan", "store_lock"]

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What one pass did: a result or an error per store, and the tagging's outcome."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    tagged: Any = None
    tag_error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and self.tag_error is None


def _lock_client(settings: Any) -> Any:
    """A Redis client for the store locks, or None when Redis is not configured (the
    embedded default runs alone) or cannot be reached (then no worker can be syncing
    either: the workers need Redis to take a message; a warning says so)."""
    if "redis_url" not in settings.fields_set:
        return None
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        log.warning("Redis cannot be reached (VIPSYNC_REDIS_URL): syncing without the store lock")
        return None
    return client


@contextmanager
def store_lock(ctx: Any, job: str, kwargs: Mapping[str, Any]) -> Iterator[None]:
    """Hold the store lock the workers take for ``job`` (none for a job without one, or
    without Redis). LockNotAcquired when another process syncs that store."""
    from vipsync.workers.locks import StoreLock, lock_key

    spec = spec_for(job)
    client = _lock_client(ctx.settings) if spec.lock_on and kwargs.get(spec.lock_on) else None
    if client is None:
        yield
        return
    store = kwargs[spec.lock_on or ""]
    key = lock_key(ctx.settings.broker_namespace, f"{spec.queue}:{store}")
    lock = StoreLock(client, key, ttl_s=ctx.settings.lock_ttl_s)
    try:
        lock.acquire()
    except LockNotAcquired as exc:
        client.close()
        raise LockNotAcquired(
            f"store {store} is being synced elsewhere ({exc}); try again when it is done"
        ) from None
    try:
        yield
    finally:
        lock.release()
        client.close()


def _run_logged(ctx: Any, job: str, kwargs: dict[str, Any]) -> Any:
    try:
        with store_lock(ctx, job, kwargs):
            result = run_job(ctx, job, **kwargs)
    except LockNotAcquired:
        metrics.record_job(job, "skipped")
        raise
    except Exception as exc:
        metrics.record_job(job, "failed", error_kind=classify(exc))
        raise
    from vipsync.workers.results import SyncResult

    if isinstance(result, SyncResult):
        metrics.record_sync(result)
    metrics.record_job(job, "done")
    return result


class InlineDispatcher:
    """A :attr:`Context.dispatcher` for the embedded default: runs the job in this
    process, then its follow-ups (``tag_pending`` after a webhook), like the workers do."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._one_at_a_time = threading.Lock()

    def __call__(self, job: str, kwargs: dict[str, Any]) -> Any:
        # The web app calls this from its thread pool: jobs run one after another.
        with self._one_at_a_time:
            result = _run_logged(self.ctx, job, kwargs)
            for follow_up in spec_for(job).then:
                _run_logged(self.ctx, follow_up, {})
        return result


def run_plan(
    ctx: Any,
    plan: list[tuple[str, dict[str, Any]]],
    *,
    tag: bool = True,
    on_step: Callable[[str, str, Any], None] | None = None,
) -> RunReport:
    """Run the jobs of ``plan`` one after another, then ``tag_pending``."""
    started = time.monotonic()
    report = RunReport()
    for job, kwargs in plan:
        store = kwargs.get("store_key") or f"{job}:" + ",".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
        try:
            report.results[store] = _run_logged(ctx, job, kwargs)
            if on_step:
                on_step(store, "done", report.results[store])
        except LockNotAcquired as exc:  # a worker is syncing it: nothing to do here
            log.info("store busy; skipped", extra={"store": store})
            if on_step:
                on_step(store, "skipped", str(exc))
        except (VipsyncError, OSError) as exc:
            report.errors[store] = error_summary(exc)
            log.warning("store sync failed", extra={"store": store, "error": report.errors[store]})
            if on_step:
                on_step(store, "failed", report.errors[store])
    if tag:
        try:
            report.tagged = _run_logged(ctx, "tag_pending", {})
            if on_step:
                on_step("tag_pending", "done", report.tagged)
        except (VipsyncError, OSError) as exc:
            report.tag_error = error_summary(exc)
            if on_step:
                on_step("tag_pending", "failed", report.tag_error)
        try:  # trade-in codes on the orders that just arrived (a failure is retried next run)
            _run_logged(ctx, "apply_trade_in_codes", {})
        except (VipsyncError, OSError) as exc:
            log.warning("trade-in codes not applied", extra={"error": error_summary(exc)})
    report.seconds = time.monotonic() - started
    return report


def run_once(ctx: Any, *, on_step: Callable[[str, str, Any], None] | None = None) -> RunReport:
    """Sync every syncable store once, then tag."""
    return run_plan(ctx, plan_sync(ctx.stores), on_step=on_step)


def run_loop(
    ctx: Any,
    *,
    interval_s: int | None = None,
    on_step: Callable[[str, str, Any], None] | None = None,
    blocking: bool = True,
):
    """Run once now, then on the schedule, in this process (Ctrl-C stops it). Returns the
    scheduler (started; when ``blocking`` this returns only after it stops)."""
    run_once(ctx, on_step=on_step)

    def sync_tick(_slot: int) -> RunReport:
        stale = plan_stale_webhooks(ctx.session_factory, now=datetime.now(UTC))
        return run_plan(ctx, stale + plan_sync(ctx.stores), on_step=on_step)

    def nightly_tag(_slot: int) -> RunReport:
        return run_plan(ctx, [], on_step=on_step)

    def nightly_reconcile(_slot: int) -> RunReport:
        today = datetime.now(UTC).date()
        return run_plan(ctx, plan_reconcile(ctx.stores, today=today), on_step=on_step)

    scheduler = build_scheduler(
        interval_s=interval_s or ctx.settings.sync_interval_s,
        sync_tick=sync_tick,
        nightly_tag=nightly_tag,
        nightly_reconcile=nightly_reconcile,
        blocking=blocking,
    )
    scheduler.start()
    return scheduler
