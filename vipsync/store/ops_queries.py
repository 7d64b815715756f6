"""The queries of the read API and the dashboard, all over the ``ops_*`` views
(vipsync/store/views.py): what the page shows is what the views say.

Filters are whitelisted columns compared with bound parameters; pages are keyset pages in
``unit_id`` order (``after`` = the last id of the previous page), so a deep page costs
what the first one does.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from vipsync.store.models import UnitCountsState
from vipsync.store.views import VIEWS, WINDOW_COLUMNS

__all__ = [
    "COUNTS_MAX_AGE_S",
    "COUNT_DIMENSIONS",
    "SUMMARY_DIMENSIONS",
    "UNIT_COLUMNS",
    "UNIT_FILTERS",
    "UnitFilter",
    "counts",
    "errors",
    "iter_units",
    "refresh_counts",
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
    if session.get_bind().dialect.name == "postgresql":
        # Walk units in id order and look each one's tag up: a merge join would read the
        # tags from the first id however deep the page is.
        session.execute(text("SET LOCAL enable_mergejoin = off"))
        session.execute(text("SET LOCAL enable_hashjoin = off"))
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


# The dimensions the summary table keeps; a count by others (the read-time statuses) or
# with a date filter reads ops_units itself.
SUMMARY_DIMENSIONS = ("store", "country", "category", "eligible", "benefit_status", "policy_version")


def counts(session: Session, by: tuple[str, ...], flt: UnitFilter | None = None) -> list[dict[str, Any]]:
    """Units counted by the dimensions ``by`` (of :data:`COUNT_DIMENSIONS`), largest first.

    Counts by the summary's dimensions come from ``unit_counts``, rebuilt from ``ops_units``
    on the first read after the tagged data changed: exact, and a few milliseconds however
    many units there are. Others are counted over ``ops_units`` when asked."""
    if not by or any(d not in COUNT_DIMENSIONS for d in by):
        raise ValueError(f"by: one or more of {', '.join(COUNT_DIMENSIONS)}")
    flt = flt or UnitFilter()
    dims = ", ".join(dict.fromkeys(by))
    where, params = flt.where()
    summarized = (
        set(by) <= set(SUMMARY_DIMENSIONS)
        and {c for c, _ in flt.equals} <= set(SUMMARY_DIMENSIONS)
        and flt.purchased_from is None
        and flt.purchased_to is None
    )
    _short(session)
    if summarized:
        refresh_counts(session)
        _short(session)  # the refresh may have committed
        sql = f"SELECT {dims}, SUM(units) AS units FROM unit_counts WHERE {where} GROUP BY {dims} ORDER BY units DESC"
    else:
        sql = f"SELECT {dims}, COUNT(*) AS units FROM ops_units WHERE {where} GROUP BY {dims} ORDER BY units DESC"
    rows = session.execute(text(sql), params).mappings()
    return [{**_row(r), "units": int(r["units"])} for r in rows]


# A summary older than this is rebuilt even if its marker did not move: a tagging run
# stamps all its batches with its start time, so a rebuild in the middle of a run sees the
# marker it will end with.
COUNTS_MAX_AGE_S = 300


def _marker(session: Session) -> str:
    """What the tagged data is as of now: the newest tag time and the newest unit (both
    index lookups). A unit added, or a tagging run that wrote tags, moves it."""
    tagged = session.execute(text("SELECT MAX(tagged_at) FROM unit_tags")).scalar_one()
    unit = session.execute(text("SELECT MAX(id) FROM units")).scalar_one()
    return f"{tagged}|{unit}"


def _stale(state: Any, marker: str, now: datetime) -> bool:
    if state is None or state.marker != marker or state.refreshed_at is None:
        return True
    return (now - state.refreshed_at).total_seconds() > COUNTS_MAX_AGE_S


def refresh_counts(session: Session, *, force: bool = False) -> bool:
    """Rebuild ``unit_counts`` from ``ops_units`` when the tagged data moved since it was
    built, when it is older than :data:`COUNTS_MAX_AGE_S`, or ``force``; commits. Returns
    whether it rebuilt. The tag jobs call it after their run, so a read rarely has to."""
    now = datetime.now(UTC)
    marker = _marker(session)
    state_q = select(UnitCountsState).where(UnitCountsState.id == 1)
    state = session.execute(state_q).scalar_one_or_none()
    if not force and not _stale(state, marker, now):
        return False
    if state is None:
        session.add(UnitCountsState(id=1, marker=""))
        session.flush()
    # One rebuild at a time: the state row stays locked until the new counts are committed.
    state = session.execute(state_q.with_for_update()).scalar_one()
    marker = _marker(session)
    if not force and not _stale(state, marker, now):
        session.commit()
        return False
    cols = ", ".join(SUMMARY_DIMENSIONS)
    session.execute(text("DELETE FROM unit_counts"))
    session.execute(
        text(
            f"INSERT INTO unit_counts ({cols}, units) SELECT {cols}, COUNT(*) FROM ops_units GROUP BY {cols}"
        )
    )
    state.marker = marker
    state.refreshed_at = now
    session.commit()
    return True


def _until(session: Session, days: int) -> date:
    """The database's today plus ``days`` (the views' days_left count from its today)."""
    today = session.execute(text("SELECT CURRENT_DATE")).scalar_one()
    if isinstance(today, str):  # SQLite
        today = date.fromisoformat(today)
    return today + timedelta(days=days)


def _short(session: Session) -> None:
    """PostgreSQL: no JIT compilation for these short queries (compiling costs more than
    it saves, and much more on a busy machine)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def windows_closing(session: Session, *, within_days: int, limit: int = 100) -> dict[str, Any]:
    """Windows closing in the next ``within_days`` days: counts per window, the first rows."""
    _short(session)
    until = _until(session, within_days)
    by_window = session.execute(
        text(
            "SELECT window_kind, COUNT(*) AS units FROM ops_windows_closing WHERE closes_on <= :until "
            "GROUP BY window_kind ORDER BY window_kind"
        ),
        {"until": until},
    ).mappings()
    counts = {r["window_kind"]: int(r["units"]) for r in by_window}
    # The first units of each window, read in order from its (end, unit id) index (the
    # view's rows of the same set, which the planner would sort whole), merged here; then
    # their rows from the view.
    firsts = []
    for kind, column in WINDOW_COLUMNS:
        firsts.append(
            [
                (end, uid, kind)
                for uid, end in session.execute(
                    text(
                        f"SELECT unit_id, {column} FROM unit_tags "
                        f"WHERE {column} >= CURRENT_DATE AND {column} <= :until "
                        f"ORDER BY {column}, unit_id LIMIT :limit"
                    ),
                    {"until": until, "limit": limit},
                )
            ]
        )
    wanted = list(itertools.islice(heapq.merge(*firsts), limit))
    if not wanted:
        return {"by_window": counts, "rows": []}
    ids = sorted({uid for _, uid, _ in wanted})
    pairs = {(uid, kind) for _, uid, kind in wanted}
    found = {
        (r["unit_id"], r["window_kind"]): _row(r)
        for r in session.execute(
            text("SELECT * FROM ops_windows_closing WHERE unit_id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": ids},
        ).mappings()
        if (r["unit_id"], r["window_kind"]) in pairs
    }
    rows = [found[(uid, kind)] for _, uid, kind in wanted if (uid, kind) in found]
    return {"by_window": counts, "rows": rows}


def registration_deadlines(session: Session, *, within_days: int, limit: int = 100) -> dict[str, Any]:
    """Unregistered units whose deadline falls in the next ``within_days`` days."""
    _short(session)
    params = {"until": _until(session, within_days), "limit": limit}
    total = session.execute(
        text("SELECT COUNT(*) FROM ops_registration_deadlines WHERE registration_deadline <= :until"), params
    ).scalar_one()
    rows = session.execute(
        text(
            "SELECT * FROM ops_registration_deadlines WHERE registration_deadline <= :until "
            "ORDER BY registration_deadline, unit_id LIMIT :limit"
        ),
        params,
    ).mappings()
    return {"units": int(total), "rows": [_row(r) for r in rows]}


def sync_health(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(text("SELECT * FROM ops_sync_health ORDER BY store")).mappings()
    return [_row(r) for r in rows]


def unclassified(session: Session, *, limit: int = 200) -> list[dict[str, Any]]:
    _short(session)
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
