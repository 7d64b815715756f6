"""The queries of the read API and the dashboard, all over the ``ops_*`` views
(vipsync/store/views.py): what the page shows is what the views say.

Filters are whitelisted columns compared with bound parameters; pages are keyset pages in
``unit_id`` order (``after`` = the last id of the previous page), so a deep page costs
what the first one does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from vipsync.store.views import VIEWS

__all__ = [
    "COUNT_DIMENSIONS",
    "UNIT_COLUMNS",
    "UNIT_FILTERS",
    "UnitFilter",
    "counts",
    "errors",
    "iter_units",
    "registration_deadlines",
    "sync_health",
    "unclassified",
    "unit_page",
    "windows_closing",
]

UNIT_COLUMNS: tuple[str, ...] = next(v.columns for v in VIEWS if v.name == "ops_units")
# Filters on equality (query parameter -> column of ops_units).
UNIT_FILTERS = (
    "store",
    "country",
    "category",
    "sku",
    "benefit_status",
    "policy_version",
    "original_warranty_status",
    "registration_status",
    "extended_warranty_status",
    "trade_in_status",
)
COUNT_DIMENSIONS = (
    "store",
    "country",
    "category",
    "eligible",
    "benefit_status",
    "policy_version",
    "original_warranty_status",
    "registration_status",
    "extended_warranty_status",
    "trade_in_status",
)


@dataclass(frozen=True)
class UnitFilter:
    """A filter of ``ops_units``: equality on :data:`UNIT_FILTERS`, ``eligible``, a
    purchase-date range."""

    equals: tuple[tuple[str, str], ...] = ()
    eligible: bool | None = None
    purchased_from: date | None = None
    purchased_to: date | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        parts: list[str] = []
        params: dict[str, Any] = {}
        for n, (column, value) in enumerate(self.equals):
            if column not in UNIT_FILTERS:
                raise ValueError(f"unknown filter {column!r}")
            parts.append(f"{column} = :f{n}")
            params[f"f{n}"] = value
        if self.eligible is not None:
            parts.append("eligible = :eligible")
            params["eligible"] = self.eligible
        if self.purchased_from is not None:
            parts.append("purchase_date >= :pfrom")
            params["pfrom"] = self.purchased_from
        if self.purchased_to is not None:
            parts.append("purchase_date <= :pto")
            params["pto"] = self.purchased_to
        return (" AND ".join(parts) or "1 = 1"), params


def _plain(value: Any) -> Any:
    """JSON-ready: dates ISO (SQLite hands them back as text already), decimals as floats."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


_BOOLEANS = frozenset({"eligible", "valid_purchase"})


def _row(mapping: Any) -> dict[str, Any]:
    out = {k: _plain(v) for k, v in mapping.items()}
    for k in _BOOLEANS & out.keys():  # SQLite views give 0/1
        if out[k] is not None:
            out[k] = bool(out[k])
    return out


def unit_page(session: Session, flt: UnitFilter, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """One page of ``ops_units`` in ``unit_id`` order, after ``after``."""
    where, params = flt.where()
    rows = session.execute(
        text(f"SELECT * FROM ops_units WHERE {where} AND unit_id > :after ORDER BY unit_id LIMIT :limit"),
        {**params, "after": after, "limit": limit},
    ).mappings()
    return [_row(r) for r in rows]


def iter_units(session: Session, flt: UnitFilter, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every matching unit, streamed page by page."""
    after = 0
    while True:
        page = unit_page(session, flt, after=after, limit=batch)
        if not page:
            return
        yield from page
        after = page[-1]["unit_id"]


def counts(session: Session, by: tuple[str, ...], flt: UnitFilter | None = None) -> list[dict[str, Any]]:
    """Units counted by the dimensions ``by`` (of :data:`COUNT_DIMENSIONS`), largest first."""
    if not by or any(d not in COUNT_DIMENSIONS for d in by):
        raise ValueError(f"by: one or more of {', '.join(COUNT_DIMENSIONS)}")
    dims = ", ".join(dict.fromkeys(by))
    where, params = (flt or UnitFilter()).where()
    rows = session.execute(
        text(
            f"SELECT {dims}, COUNT(*) AS units FROM ops_units WHERE {where} GROUP BY {dims} ORDER BY units DESC"
        ),
        params,
    ).mappings()
    return [_row(r) for r in rows]


def windows_closing(session: Session, *, within_days: int, limit: int = 100) -> dict[str, Any]:
    """Windows closing in the next ``within_days`` days: counts per window, the first rows."""
    params = {"n": within_days, "limit": limit}
    by_window = session.execute(
        text(
            "SELECT window_kind, COUNT(*) AS units FROM ops_windows_closing WHERE days_left <= :n "
            "GROUP BY window_kind ORDER BY window_kind"
        ),
        params,
    ).mappings()
    rows = session.execute(
        text(
            "SELECT * FROM ops_windows_closing WHERE days_left <= :n "
            "ORDER BY closes_on, unit_id, window_kind LIMIT :limit"
        ),
        params,
    ).mappings()
    return {
        "by_window": {r["window_kind"]: int(r["units"]) for r in by_window},
        "rows": [_row(r) for r in rows],
    }


def registration_deadlines(session: Session, *, within_days: int, limit: int = 100) -> dict[str, Any]:
    """Unregistered units whose deadline falls in the next ``within_days`` days."""
    params = {"n": within_days, "limit": limit}
    total = session.execute(
        text("SELECT COUNT(*) FROM ops_registration_deadlines WHERE days_left <= :n"), params
    ).scalar_one()
    rows = session.execute(
        text(
            "SELECT * FROM ops_registration_deadlines WHERE days_left <= :n "
            "ORDER BY registration_deadline, unit_id LIMIT :limit"
        ),
        params,
    ).mappings()
    return {"units": int(total), "rows": [_row(r) for r in rows]}


def sync_health(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(text("SELECT * FROM ops_sync_health ORDER BY store")).mappings()
    return [_row(r) for r in rows]


def unclassified(session: Session, *, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.execute(
        text("SELECT * FROM ops_unclassified ORDER BY orders DESC, sku, title LIMIT :limit"), {"limit": limit}
    ).mappings()
    return [_row(r) for r in rows]


def errors(session: Session, *, status: str | None = "open", limit: int = 100) -> list[dict[str, Any]]:
    where = "status IN (:s, 'failed')" if status else "1 = 1"
    rows = session.execute(
        text(f"SELECT * FROM ops_errors WHERE {where} ORDER BY created_at DESC, id DESC LIMIT :limit"),
        {"s": status, "limit": limit},
    ).mappings()
    return [_row(r) for r in rows]
