"""Fire-drill jobs: deterministic stand-ins for the real syncs, for the crash, restart and
dead-letter drills (tests) and the workers benchmark.

- :func:`paged_sync` writes a store's generated orders page by page through
  :func:`vipsync.store.repository.write_orders`, moving a bookmark after each committed
  page, like a real sync: killed in the middle, it resumes from the bookmark, and a rerun
  from scratch changes nothing (idempotent upserts).
- :func:`poison` fails with a permanent error until a marker file exists (the "fix"),
  then writes one order.

``register()`` adds them to the job registry and the process's actors;
``dramatiq vipsync.workers.actors vipsync.workers.drill_actors`` serves them.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from vipsync.errors import PermanentSourceError
from vipsync.store.repository import Repository, write_orders
from vipsync.workers.results import SyncResult

__all__ = ["paged_sync", "poison", "expected_orders", "register", "send", "snapshot", "cursor_page", "pending_units", "STREAM"]

STREAM = "drill-orders"
_T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def _page(store_key: str, page: int, per_page: int):
    from vipsync.devtools.factories import order_record

    out = []
    for i in range(per_page):
        n = page * per_page + i + 1
        # A few multi-unit orders, so units and lines are exercised too.
        lines = (("HKS0401A3U", 1 + n % 3),) if n % 5 else (("HKS0401A3U", 1), ("PPH10", 2))
        out.append(order_record(n, store_key=store_key, lines=lines, updated_at=_T0 + timedelta(minutes=n)))
    return out


def expected_orders(*, pages: int, per_page: int) -> int:
    return pages * per_page


def paged_sync(
    ctx,
    store_key: str,
    pages: int = 20,
    per_page: int = 50,
    page_delay_ms: int = 100,
    backfill: bool = False,
    since: str | None = None,
) -> SyncResult:
    """Write ``pages`` pages of generated orders, resuming after the bookmarked page."""
    factory = ctx.session_factory
    result = SyncResult(store_key=store_key, mode="backfill" if backfill else "incremental")
    with factory() as session:
        cur = Repository(session).get_cursor(store_key, STREAM)
        done = -1 if (backfill or cur is None or cur.value is None) else int(cur.value)
    for page in range(done + 1, pages):
        records = _page(store_key, page, per_page)
        counts = write_orders(factory, records)
        with factory() as session:
            Repository(session).set_cursor(store_key, STREAM, str(page))
            session.commit()
        result.pages += 1
        result.read += len(records)
        result.inserted += counts.inserted
        result.updated += counts.updated
        result.unchanged += counts.unchanged + counts.stale
        result.cursor = (_T0 + timedelta(minutes=(page + 1) * per_page)).isoformat()
        if page_delay_ms:
            time.sleep(page_delay_ms / 1000)
    return result


def poison(ctx, marker: str, store_key: str = "drill") -> SyncResult:
    """Fails with a permanent error until the file ``marker`` exists."""
    if not Path(marker).exists():
        raise PermanentSourceError(f"store {store_key}: drill poison message (marker missing)")
    counts = write_orders(ctx.session_factory, _page(store_key, 0, 1))
    return SyncResult(store_key=store_key, mode="incremental", read=1, inserted=counts.inserted)


def register() -> None:
    """Add the drill jobs to the registry and the process's actors (idempotent)."""
    from vipsync.workers.actors import SPECS, JobSpec, register_job

    def incremental(kwargs) -> bool:
        return not kwargs.get("backfill")

    register_job(
        "drill_sync",
        "vipsync.workers.drill:paged_sync",
        JobSpec(queue="sync", lock_on="store_key", skip_when_busy=incremental, then=("tag_pending",)),
    )
    register_job("drill_poison", "vipsync.workers.drill:poison", JobSpec(then=("tag_pending",)))
    assert "drill_sync" in SPECS


def send(broker, job: str, *, queue: str, **kwargs) -> str:
    """Enqueue ``job`` by name without declaring its actor here (a producer process);
    returns the message id."""
    from dramatiq import Message

    message = Message(queue_name=queue, actor_name=job, args=(), kwargs=kwargs, options={})
    return broker.enqueue(message).message_id


def cursor_page(factory, store_key: str) -> int:
    """The last page :func:`paged_sync` committed for ``store_key`` (-1: none)."""
    with factory() as session:
        cur = Repository(session).get_cursor(store_key, STREAM)
        return -1 if cur is None or cur.value is None else int(cur.value)


def pending_units(factory) -> int:
    """Units waiting for their tag."""
    from sqlalchemy import func, select

    from vipsync.store.models import Unit

    with factory() as session:
        return session.execute(select(func.count()).select_from(Unit).where(Unit.needs_tag.is_(True))).scalar_one()


def snapshot(factory, store_key: str) -> dict[str, list[tuple]]:
    """What a store holds for ``store_key``, without ids and clocks: two runs that did the
    same work have equal snapshots."""
    from sqlalchemy import select

    from vipsync.store.models import Order, OrderLineRow, Unit, UnitTag

    with factory() as session:
        orders = session.execute(
            select(Order.external_id, Order.content_hash, Order.purchase_date, Order.total_amount)
            .where(Order.store_key == store_key).order_by(Order.external_id)
        ).all()
        lines = session.execute(
            select(Order.external_id, OrderLineRow.line_key, OrderLineRow.sku, OrderLineRow.quantity)
            .join(Order, Order.id == OrderLineRow.order_id)
            .where(Order.store_key == store_key).order_by(Order.external_id, OrderLineRow.line_key)
        ).all()
        units = session.execute(
            select(Unit.order_external_id, Unit.sku, Unit.ordinal, Unit.removed, Unit.needs_tag)
            .where(Unit.store_key == store_key).order_by(Unit.order_external_id, Unit.sku, Unit.ordinal)
        ).all()
        tags = session.execute(
            select(Unit.order_external_id, Unit.sku, Unit.ordinal, UnitTag.policy_version, UnitTag.eligible,
                   UnitTag.category, UnitTag.facts_hash)
            .join(UnitTag, UnitTag.unit_id == Unit.id)
            .where(Unit.store_key == store_key).order_by(Unit.order_external_id, Unit.sku, Unit.ordinal)
        ).all()
    return {
        "orders": [tuple(r) for r in orders],
        "lines": [tuple(r) for r in lines],
        "units": [tuple(r) for r in units],
        "tags": [tuple(r) for r in tags],
    }
