"""Ops decisions kept in the store (catalog classifications, policy versions enabled or
disabled) and each store's sync health. Decisions are append-only: the latest decision
per SKU, title or policy version wins; the older ones stay as the history of who decided
what, when and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vipsync.store.models import CatalogDecision, PolicyDecision, StoreSyncHealth

__all__ = [
    "PolicyOverride",
    "catalog_history",
    "latest_catalog_decisions",
    "latest_policy_decisions",
    "policy_history",
    "record_catalog_decision",
    "record_policy_decision",
    "record_sync_failure",
    "record_sync_success",
]

NOTE_MAX = 2000


@dataclass(frozen=True)
class PolicyOverride:
    """The latest decision on one policy version."""

    version: str
    enabled: bool
    stores: tuple[str, ...] | None
    countries: tuple[str, ...] | None
    decided_by: str
    decided_at: datetime
    note: str


def record_catalog_decision(
    session: Session, *, sku: str, title_key: str, category: str, note: str, decided_by: str, now: datetime
) -> CatalogDecision:
    row = CatalogDecision(
        sku=sku,
        title_key=title_key,
        category=category,
        note=note[:NOTE_MAX],
        decided_by=decided_by[:64],
        decided_at=now,
    )
    session.add(row)
    session.flush()
    return row


def latest_catalog_decisions(session: Session) -> tuple[dict[str, str], dict[str, str]]:
    """(SKU -> category, SKU-less title key -> category), the latest decision of each key."""
    latest = (
        select(func.max(CatalogDecision.id))
        .group_by(CatalogDecision.sku, CatalogDecision.title_key)
        .scalar_subquery()
    )
    skus: dict[str, str] = {}
    titles: dict[str, str] = {}
    for sku, title, category in session.execute(
        select(CatalogDecision.sku, CatalogDecision.title_key, CatalogDecision.category).where(
            CatalogDecision.id.in_(latest)
        )
    ):
        if sku:
            skus[sku] = category
        else:
            titles[title] = category
    return skus, titles


def catalog_history(session: Session, *, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.execute(select(CatalogDecision).order_by(CatalogDecision.id.desc()).limit(limit)).scalars()
    return [
        {
            "id": r.id,
            "sku": r.sku,
            "title": r.title_key,
            "category": r.category,
            "note": r.note,
            "decided_by": r.decided_by,
            "decided_at": r.decided_at.isoformat(timespec="seconds"),
        }
        for r in rows
    ]


def record_policy_decision(
    session: Session,
    *,
    version: str,
    enabled: bool,
    stores: list[str] | None,
    countries: list[str] | None,
    note: str,
    decided_by: str,
    now: datetime,
) -> PolicyDecision:
    row = PolicyDecision(
        version=version,
        enabled=enabled,
        stores=stores,
        countries=countries,
        note=note[:NOTE_MAX],
        decided_by=decided_by[:64],
        decided_at=now,
    )
    session.add(row)
    session.flush()
    return row


def latest_policy_decisions(session: Session) -> dict[str, PolicyOverride]:
    latest = select(func.max(PolicyDecision.id)).group_by(PolicyDecision.version).scalar_subquery()
    out: dict[str, PolicyOverride] = {}
    for r in session.execute(select(PolicyDecision).where(PolicyDecision.id.in_(latest))).scalars():
        out[r.version] = PolicyOverride(
            version=r.version,
            enabled=bool(r.enabled),
            stores=tuple(r.stores) if r.stores is not None else None,
            countries=tuple(r.countries) if r.countries is not None else None,
            decided_by=r.decided_by,
            decided_at=r.decided_at,
            note=r.note,
        )
    return out


def policy_history(session: Session, *, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.execute(select(PolicyDecision).order_by(PolicyDecision.id.desc()).limit(limit)).scalars()
    return [
        {
            "id": r.id,
            "version": r.version,
            "enabled": bool(r.enabled),
            "stores": r.stores,
            "countries": r.countries,
            "note": r.note,
            "decided_by": r.decided_by,
            "decided_at": r.decided_at.isoformat(timespec="seconds"),
        }
        for r in rows
    ]


def _health(session: Session, store_key: str) -> StoreSyncHealth:
    row = session.get(StoreSyncHealth, store_key, with_for_update=True)
    if row is None:
        row = StoreSyncHealth(
            store_key=store_key,
            syncs_ok=0,
            errors_total=0,
            errors_since_success=0,
            rate_limit_wait_s=Decimal(0),
            orders_read=0,
        )
        session.add(row)
    return row


def record_sync_success(
    session: Session,
    store_key: str,
    *,
    cursor: str | None,
    orders_read: int,
    rate_limit_wait_s: float,
    now: datetime,
) -> None:
    """A sync of ``store_key`` finished: the lag is measured from ``now`` from here on,
    whether or not the sync found new orders."""
    row = _health(session, store_key)
    row.last_attempt_at = now
    row.last_success_at = now
    row.last_cursor = cursor
    row.syncs_ok = (row.syncs_ok or 0) + 1
    row.errors_since_success = 0
    row.orders_read = (row.orders_read or 0) + max(0, orders_read)
    row.rate_limit_wait_s = Decimal(row.rate_limit_wait_s or 0) + Decimal(str(round(rate_limit_wait_s, 1)))


def record_sync_failure(
    session: Session, store_key: str, *, error: str, rate_limit_wait_s: float, now: datetime
) -> None:
    """A sync of ``store_key`` failed (``error``: the error's kind and one line, no data)."""
    row = _health(session, store_key)
    row.last_attempt_at = now
    row.errors_total = (row.errors_total or 0) + 1
    row.errors_since_success = (row.errors_since_success or 0) + 1
    row.last_error = error[:500]
    row.last_error_at = now
    row.rate_limit_wait_s = Decimal(row.rate_limit_wait_s or 0) + Decimal(str(round(rate_limit_wait_s, 1)))
