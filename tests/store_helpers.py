"""Shared reads of the store's state that several tests check."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def planner_row_counts(session: Session, *tables: str) -> dict[str, float]:
    """PostgreSQL: the row count each table's statistics hold (``reltuples``: -1 when the
    table was never analyzed)."""
    return dict(
        session.execute(
            text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:tables)"),
            {"tables": list(tables)},
        ).all()
    )
