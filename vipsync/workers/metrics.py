"""Prometheus metrics of the jobs: orders synced, jobs failed, rate-limit waits, sync lag.

``prometheus_client`` is imported on first use, not at import time: in a ``dramatiq``
worker process the Prometheus middleware turns on multi-process mode at boot, and that
only works if no metric was built before. The worker processes' metrics are served,
summed over processes, by dramatiq's exposition server (``dramatiq_prom_port``, 9191 by
default); ``vipsync run --loop --metrics-port N`` serves the embedded runner's.

Metrics (all labelled by store or job, never by anything personal):

- ``vipsync_orders_synced_total{store,outcome}`` (inserted, updated, unchanged, rejected)
- ``vipsync_jobs_total{job,outcome}`` (done, failed, retried, skipped)
- ``vipsync_jobs_failed_total{job,kind}`` (transient, permanent, unknown)
- ``vipsync_rate_limit_wait_seconds_total{store}``
- ``vipsync_sync_lag_seconds{store}``: at the end of a sync, how far behind now the
  store's bookmark is;
- ``vipsync_last_sync_success_timestamp_seconds{store}``: alert on ``time() - this``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Metrics",
    "get_metrics",
    "lag_seconds",
    "record_job",
    "record_rate_limit_wait",
    "record_sync",
    "serve_metrics",
]


@dataclass
class Metrics:
    orders_synced: Any
    jobs: Any
    jobs_failed: Any
    rate_limit_wait: Any
    sync_lag: Any
    last_success: Any


_lock = threading.Lock()
_metrics: Metrics | None = None


def get_metrics() -> Metrics:
    """The process's metrics, built on first use."""
    global _metrics
    with _lock:
        if _metrics is None:
            from prometheus_client import Counter, Gauge

            _metrics = Metrics(
                orders_synced=Counter(
                    "vipsync_orders_synced", "Orders read by syncs, by outcome.", ["store", "outcome"]
                ),
                jobs=Counter("vipsync_jobs", "Jobs run by the workers, by outcome.", ["job", "outcome"]),
                jobs_failed=Counter(
                    "vipsync_jobs_failed", "Job attempts that raised, by kind of error.", ["job", "kind"]
                ),
                rate_limit_wait=Counter(
                    "vipsync_rate_limit_wait_seconds",
                    "Seconds spent waiting for a source's rate limit.",
                    ["store"],
                ),
                sync_lag=Gauge(
                    "vipsync_sync_lag_seconds",
                    "At the end of the last sync, how far behind now the store's bookmark was.",
                    ["store"],
                    multiprocess_mode="mostrecent",
                ),
                last_success=Gauge(
                    "vipsync_last_sync_success_timestamp_seconds",
                    "When the store's last successful sync finished (Unix time).",
                    ["store"],
                    multiprocess_mode="max",
                ),
            )
        return _metrics


def lag_seconds(cursor: str | None, *, now: datetime) -> float | None:
    """How far ``cursor`` (an ISO timestamp bookmark) is behind ``now``; None if it is not one."""
    if not cursor:
        return None
    try:
        at = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (now - at).total_seconds())


def record_sync(result: Any, *, now: datetime | None = None) -> None:
    """Count a finished sync (a :class:`vipsync.workers.results.SyncResult`)."""
    m = get_metrics()
    store = result.store_key
    for outcome in ("inserted", "updated", "unchanged", "rejected"):
        value = getattr(result, outcome, 0) or 0
        if value:
            m.orders_synced.labels(store, outcome).inc(value)
    wait = getattr(result, "rate_limit_wait_s", 0.0) or 0.0
    if wait:
        m.rate_limit_wait.labels(store).inc(wait)
    now = now or datetime.now(UTC)
    lag = lag_seconds(getattr(result, "cursor", None), now=now)
    if lag is not None:
        m.sync_lag.labels(store).set(lag)
    m.last_success.labels(store).set(now.timestamp())


def record_job(job: str, outcome: str, *, error_kind: str | None = None) -> None:
    m = get_metrics()
    m.jobs.labels(job, outcome).inc()
    if error_kind:
        m.jobs_failed.labels(job, error_kind).inc()


def record_rate_limit_wait(store: str, seconds: float) -> None:
    if seconds > 0:
        get_metrics().rate_limit_wait.labels(store).inc(seconds)


def serve_metrics(*, port: int, host: str = "0.0.0.0") -> None:
    """Serve this process's metrics over HTTP (the embedded runner)."""
    from prometheus_client import start_http_server

    get_metrics()
    start_http_server(port, addr=host)
