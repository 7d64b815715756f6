"""Fire-drill helpers for the workers' tests and benchmark.

- :func:`poison`: a job that fails with a permanent error until a marker file exists (the
  "fix"), then writes one order: the dead-letter drill;
- :func:`send`: enqueue a job by name from a process that only produces;
- :func:`snapshot`, :func:`pending_units`: what a store holds, without ids and clocks, so
  a crashed-and-resumed run can be compared with an uninterrupted one.

``register()`` adds the drill jobs to the registry and the process's actors;
``dramatiq vipsync.workers.actors vipsync.workers.drill_actors`` serves them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vipsync.errors import PermanentSourceError
from vipsync.store.writer import write_batch
from vipsync.workers.results import SyncResult

__all__ = ["pending_units", "poison", "register", "send", "snapshot"]

_T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _page(store_key: str, page: int, per_page: int):
    from vipsync.devtools.factories import order_record

    out = []
    for i in range(per_page):
        n = page * per_page + i + 1
        # A few multi-unit orders, so units and lines are exercised too.
        lines = (("HKS0401A3U", 1 + n % 3),) if n % 5 else (("HKS0401A3U", 1), ("PPH10", 2))
        out.append(order_record(n, store_key=store_key, lines=lines, updated_at=_T0 + timedelta(minutes=n)))
    return out


def poison(ctx, marker: str, store_key: str = "drill") -> SyncResult:
    """Fails with a permanent error until the file ``marker`` exists."""
    if not Path(marker).exists():
        raise PermanentSourceError(f"store {store_key}: drill poison message (marker missing)")
    counts = write_batch(ctx.session_factory, _page(store_key, 0, 1))
    return SyncResult(store_key=store_key, mode="incremental", read=1, inserted=counts.inserted)


def register() -> None:
    """Add the drill jobs to the registry and the process's actors (idempotent)."""
    from vipsync.workers.actors import JobSpec, register_job

    register_job("drill_poison", "vipsync.workers.drill:poison", JobSpec(then=("tag_pending",)))


def send(broker, job: str, *, queue: str, **kwargs) -> str:
    """Enqueue ``job`` by name without declaring its actor here (a producer process);
    returns the message id."""
    from dramatiq import Message

    message: Message[Any] = Message(queue_name=queue, actor_name=job, args=(), kwargs=kwargs, options={})
    return broker.enqueue(message).message_id


def pending_units(factory) -> int:
    """Units waiting for their tag."""
    from sqlalchemy import func, select

    from vipsync.store.models import Unit

    with factory() as session:
        return session.execute(
            select(func.count()).select_from(Unit).where(Unit.needs_tag.is_(True))
        ).scalar_one()


def snapshot(factory, store_key: str) -> dict[str, list[tuple]]:
    """What a store holds for ``store_key``, without ids and clocks: two runs that did the
    same work have equal snapshots."""
    from sqlalchemy import select

    from vipsync.store.models import Order, OrderLineRow, Unit, UnitTag

    with factory() as session:
        orders = session.execute(
            select(Order.external_id, Order.content_hash, Order.purchase_date, Order.total_amount)
            .where(Order.store_key == store_key)
            .order_by(Order.external_id)
        ).all()
        lines = session.execute(
            select(Order.external_id, OrderLineRow.line_key, OrderLineRow.sku, OrderLineRow.quantity)
            .join(Order, Order.id == OrderLineRow.order_id)
            .where(Order.store_key == store_key)
            .order_by(Order.external_id, OrderLineRow.line_key)
        ).all()
        units = session.execute(
            select(Unit.order_external_id, Unit.sku, Unit.ordinal, Unit.removed, Unit.needs_tag)
            .where(Unit.store_key == store_key)
            .order_by(Unit.order_external_id, Unit.sku, Unit.ordinal)
        ).all()
        tags = session.execute(
            select(
                Unit.order_external_id,
                Unit.sku,
                Unit.ordinal,
                UnitTag.policy_version,
                UnitTag.eligible,
                UnitTag.category,
                UnitTag.facts_hash,
            )
            .join(UnitTag, UnitTag.unit_id == Unit.id)
            .where(Unit.store_key == store_key)
            .order_by(Unit.order_external_id, Unit.sku, Unit.ordinal)
        ).all()
    return {
        "orders": [tuple(r) for r in orders],
        "lines": [tuple(r) for r in lines],
        "units": [tuple(r) for r in units],
        "tags": [tuple(r) for r in tags],
    }
