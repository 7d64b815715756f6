"""The schedule, with APScheduler (in process, cron-like triggers, already a dependency;
periodiq would add a package and a second worker-side scheduler for the same three jobs).

- every ``VIPSYNC_SYNC_INTERVAL_S`` (300 s): an incremental sync of every store that has
  credentials or an ``endpoint``; tagging follows each sync;
- nightly at 02:00 UTC: ``tag_pending`` (whatever a failed follow-up left behind);
- nightly at 03:00 UTC: a reconciliation, a backfill of the last
  :data:`RECONCILE_WINDOW_DAYS` days of every store (catches edits a bookmark missed).

Ticks are aligned on the wall clock (multiples of the interval since the epoch), so every
scheduler process fires the same tick at the same time; in queue mode each (tick, store)
is claimed in Redis with ``SET NX`` before it is enqueued, so two schedulers (a duplicated
deployment) enqueue each store's sync once per tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = [
    "NIGHTLY_RECONCILE_AT",
    "NIGHTLY_TAG_AT",
    "RECONCILE_WINDOW_DAYS",
    "build_scheduler",
    "plan_reconcile",
    "plan_stale_webhooks",
    "plan_sync",
    "redis_claimer",
    "run_tick",
    "sync_job_for",
    "syncable",
    "tick_slot",
]

log = logging.getLogger(__name__)

RECONCILE_WINDOW_DAYS = 30
NIGHTLY_TAG_AT = (2, 0)  # UTC hour, minute
NIGHTLY_RECONCILE_AT = (3, 0)

Plan = list[tuple[str, dict[str, Any]]]


def sync_job_for(store: Any) -> str:
    return {"shopify": "sync_shopify", "amazon": "sync_amazon"}[store.kind]


def syncable(store: Any) -> bool:
    """A store the schedule syncs: it has its credentials in the environment, or points
    at an ``endpoint`` (a sandbox or a local fake)."""
    return bool(store.endpoint) or (bool(store.credentials) and store.has_credentials())


def plan_sync(stores: Iterable[Any]) -> Plan:
    """The incremental syncs of one tick."""
    return [(sync_job_for(s), {"store_key": s.key}) for s in stores if syncable(s)]


def plan_reconcile(stores: Iterable[Any], *, today: date) -> Plan:
    """The nightly backfills from a safe window."""
    since = (today - timedelta(days=RECONCILE_WINDOW_DAYS)).isoformat()
    return [
        (sync_job_for(s), {"store_key": s.key, "backfill": True, "since": since})
        for s in stores
        if syncable(s)
    ]


STALE_WEBHOOK_S = 600


def plan_stale_webhooks(
    factory: Any, *, now: datetime, older_than_s: int = STALE_WEBHOOK_S, limit: int = 500
) -> Plan:
    """Webhook deliveries still pending long after they arrived (their message was lost:
    the web process died after the commit, or Redis lost its data): hand them off again.
    Processing a delivery is idempotent."""
    from sqlalchemy import select

    from vipsync.store.models import WebhookDelivery

    cutoff = now - timedelta(seconds=older_than_s)
    with factory() as session:
        ids = (
            session.execute(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.received_at < cutoff)
                .order_by(WebhookDelivery.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    return [("process_shopify_webhook", {"delivery_id": int(i)}) for i in ids]


def tick_slot(now_s: float, *, interval_s: float) -> int:
    """The number of the tick a firing at ``now_s`` belongs to (rounded: aligned ticks
    that fire a little late or early still agree)."""
    return round(now_s / interval_s)


def run_tick(
    name: str,
    plan: Plan,
    *,
    slot: int,
    dispatch: Callable[[str, dict[str, Any]], Any],
    claim: Callable[[str], bool] | None = None,
) -> Plan:
    """Dispatch the jobs of ``plan`` whose claim succeeds; returns what was dispatched.
    One job's failure to dispatch does not stop the others."""
    done: Plan = []
    for job, kwargs in plan:
        ident = kwargs.get("store_key") or kwargs.get("delivery_id") or "-"
        claim_key = f"{name}:{job}:{ident}:{slot}"
        try:
            if claim is not None and not claim(claim_key):
                log.info("tick already claimed", extra={"tick": claim_key})
                continue
            dispatch(job, dict(kwargs))
        except Exception:  # the next tick tries again
            log.exception("could not dispatch a scheduled job", extra={"tick": claim_key})
            continue
        done.append((job, kwargs))
    return done


def redis_claimer(client: Any, *, namespace: str, ttl_s: int) -> Callable[[str], bool]:
    """Claims a tick in Redis: True for the first scheduler only."""

    def claim(tick: str) -> bool:
        return bool(client.set(f"{namespace}:tick:{tick}", "1", nx=True, ex=max(ttl_s, 1)))

    return claim


def build_scheduler(
    *,
    interval_s: int,
    sync_tick: Callable[[int], Any],
    nightly_tag: Callable[[int], Any],
    nightly_reconcile: Callable[[int], Any],
    blocking: bool = True,
    now: Callable[[], float] | None = None,
):
    """An APScheduler scheduler firing the three kinds of tick. Each callable receives
    the tick's slot number (see :func:`tick_slot`)."""
    import time

    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    clock = now or time.time
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    scheduler = (BlockingScheduler if blocking else BackgroundScheduler)(timezone=UTC)
    common = {"max_instances": 1, "coalesce": True}
    scheduler.add_job(
        lambda: sync_tick(tick_slot(clock(), interval_s=interval_s)),
        IntervalTrigger(seconds=interval_s, start_date=epoch, timezone=UTC),
        id="sync",
        misfire_grace_time=max(1, interval_s // 2),
        **common,
    )
    day = 86_400
    scheduler.add_job(
        lambda: nightly_tag(tick_slot(clock(), interval_s=day)),
        CronTrigger(hour=NIGHTLY_TAG_AT[0], minute=NIGHTLY_TAG_AT[1], timezone=UTC),
        id="nightly-tag",
        misfire_grace_time=3600,
        **common,
    )
    scheduler.add_job(
        lambda: nightly_reconcile(tick_slot(clock(), interval_s=day)),
        CronTrigger(hour=NIGHTLY_RECONCILE_AT[0], minute=NIGHTLY_RECONCILE_AT[1], timezone=UTC),
        id="nightly-reconcile",
        misfire_grace_time=3600,
        **common,
    )
    return scheduler


def queue_scheduler(ctx: Any, *, blocking: bool = True, interval_s: int | None = None):
    """The ``vipsync scheduler`` process: enqueues to the workers, claiming each tick."""
    from vipsync.workers.actors import ACTORS, broker

    settings = ctx.settings
    interval = interval_s or settings.sync_interval_s
    dispatch = ACTORS.dispatcher
    client = broker.client  # type: ignore[attr-defined]  # the Redis broker of workers/broker.py
    ns = settings.broker_namespace

    def sync_tick(slot: int) -> Plan:
        claim = redis_claimer(client, namespace=ns, ttl_s=max(interval * 2, 600))
        done = run_tick("sync", plan_sync(ctx.stores), slot=slot, dispatch=dispatch, claim=claim)
        try:
            stale = plan_stale_webhooks(ctx.session_factory, now=datetime.now(UTC))
        except Exception:  # the database is down: the next tick tries again
            log.warning("could not look for stale webhook deliveries", exc_info=True)
            stale = []
        return done + run_tick("webhooks", stale, slot=slot, dispatch=dispatch, claim=claim)

    def nightly_tag(slot: int) -> Plan:
        return run_tick(
            "tag",
            [("tag_pending", {})],
            slot=slot,
            dispatch=dispatch,
            claim=redis_claimer(client, namespace=ns, ttl_s=86_400 * 2),
        )

    def nightly_reconcile(slot: int) -> Plan:
        today = datetime.now(UTC).date()
        return run_tick(
            "reconcile",
            plan_reconcile(ctx.stores, today=today),
            slot=slot,
            dispatch=dispatch,
            claim=redis_claimer(client, namespace=ns, ttl_s=86_400 * 2),
        )

    return build_scheduler(
        interval_s=interval,
        sync_tick=sync_tick,
        nightly_tag=nightly_tag,
        nightly_reconcile=nightly_reconcile,
        blocking=blocking,
    )
