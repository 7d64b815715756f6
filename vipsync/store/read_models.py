"""Read models: units with their tag, order and member, as ops and the CLI see them.

Statuses that depend on the date asked for (active, closing soon, expired) are computed
on read from the stored windows and an as-of date, never stored: the caller passes the
rule (``vipsync.eligibility.status.unit_statuses``, wired by ``vipsync.workers.tagging.
unit_view``), since the store does not import the rules. No personal data leaves this
module: the member is its pseudonymous id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.orm import Session

from vipsync.store.models import Order, Unit, UnitTag

__all__ = ["STATUS_FIELDS", "UNIT_FIELDS", "iter_units", "unclassified_skus"]

# The documented fields of `vipsync units`, in output order (docs/eligibility.md).
UNIT_FIELDS = (
    "store",
    "order_id",
    "order_name",
    "sku",
    "ordinal",
    "category",
    "country",
    "purchase_date",
    "eligible",
    "reasons",
    "valid_purchase",
    "original_warranty_end",
    "registration_deadline",
    "member",
    "extended_warranty_end",
    "trade_in_opens",
    "benefit_status",
    "policy_version",
    "removed",
    "tagged",
)
STATUS_FIELDS = (
    "original_warranty_status",
    "registration_status",
    "extended_warranty_status",
    "trade_in_status",
)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def iter_units(
    session: Session,
    *,
    as_of: date,
    store_key: str | None = None,
    order: str | None = None,
    include_removed: bool = False,
    statuses: Callable[[Any, date], dict[str, str | None]] | None = None,
    batch_size: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Every unit (streamed in id order) as a dict of :data:`UNIT_FIELDS` plus the
    read-time :data:`STATUS_FIELDS` as of ``as_of``. ``order`` matches the order's id or
    its name (``#1001``, or the Amazon order id). Untagged units have null tag fields and
    ``tagged`` false. Units an order edit took away are left out unless asked for."""
    base = (
        select(
            Unit.id,
            Unit.store_key,
            Unit.order_external_id,
            Unit.sku,
            Unit.ordinal,
            Unit.removed,
            Order.name,
            Order.purchase_date.label("order_purchase_date"),
            Order.country.label("order_country"),
            UnitTag,
        )
        .join(Order, Order.id == Unit.order_id)
        .outerjoin(UnitTag, UnitTag.unit_id == Unit.id)
    )
    if store_key:
        base = base.where(Unit.store_key == store_key)
    if order:
        base = base.where(or_(Order.external_id == order, Order.name == order))
    if not include_removed:
        base = base.where(Unit.removed.is_(False))
    last = 0
    while True:
        rows = session.execute(base.where(Unit.id > last).order_by(Unit.id).limit(batch_size)).all()
        if not rows:
            return
        last = rows[-1].id
        for r in rows:
            yield _unit_dict(r, as_of, statuses)
        session.expunge_all()


def _unit_dict(r: Any, as_of: date, statuses) -> dict[str, Any]:
    tag: UnitTag | None = r.UnitTag
    out: dict[str, Any] = {
        "store": r.store_key,
        "order_id": r.order_external_id,
        "order_name": r.name,
        "sku": r.sku,
        "ordinal": r.ordinal,
        "removed": bool(r.removed),
        "tagged": tag is not None,
    }
    if tag is None:
        out.update(
            category=None,
            country=r.order_country,
            purchase_date=_iso(r.order_purchase_date),
            eligible=None,
            reasons=None,
            valid_purchase=None,
            original_warranty_end=None,
            registration_deadline=None,
            member=None,
            extended_warranty_end=None,
            trade_in_opens=None,
            benefit_status=None,
            policy_version=None,
        )
        out.update(dict.fromkeys(STATUS_FIELDS))
    else:
        out.update(
            category=tag.category,
            country=tag.country,
            purchase_date=_iso(tag.purchase_date),
            eligible=bool(tag.eligible),
            reasons=list(tag.reasons or []),
            valid_purchase=bool(tag.valid_purchase),
            original_warranty_end=_iso(tag.original_warranty_end),
            registration_deadline=_iso(tag.registration_deadline),
            member=tag.member_id,
            extended_warranty_end=_iso(tag.extended_warranty_end),
            trade_in_opens=_iso(tag.trade_in_opens),
            benefit_status=tag.benefit_status,
            policy_version=tag.policy_version,
        )
        out.update(statuses(tag, as_of) if statuses else dict.fromkeys(STATUS_FIELDS))
    return {k: out[k] for k in UNIT_FIELDS + STATUS_FIELDS}


def unclassified_skus(session: Session) -> list[dict[str, Any]]:
    """Products the catalog cannot place (category ``unknown`` or not classified yet), and
    order lines without a SKU (``sku`` empty, by title) no decision placed, with how many
    orders and units carry them, most ordered first (the ``ops_unclassified`` view)."""
    rows = session.execute(
        text(
            "SELECT sku, title, category, orders, units FROM ops_unclassified ORDER BY orders DESC, sku, title"
        )
    ).all()
    return [
        {
            "sku": r.sku,
            "title": r.title or "",
            "category": r.category,
            "orders": int(r.orders),
            "units": int(r.units),
        }
        for r in rows
    ]
