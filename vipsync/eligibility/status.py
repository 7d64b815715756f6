"""Read-time statuses: whether a window is active, closing soon or expired depends on the
as-of date, so it is computed when read, never stored."""

from __future__ import annotations

from datetime import date
from typing import Any

from vipsync.eligibility.calendar import add_days

__all__ = ["CLOSING_SOON_DAYS", "unit_statuses", "window_status"]

CLOSING_SOON_DAYS = 30


def window_status(
    start: date | None, end: date | None, as_of: date, *, closing_soon_days: int = CLOSING_SOON_DAYS
) -> str | None:
    """``not_started``, ``active``, ``closing_soon`` (fewer than ``closing_soon_days`` days
    left), ``expired`` or None when the window does not apply. ``end`` None with a start
    means open-ended (never closing)."""
    if start is None:
        return None
    if as_of < start:
        return "not_started"
    if end is None:
        return "active"
    if as_of >= end:
        return "expired"
    if as_of >= add_days(end, -closing_soon_days):
        return "closing_soon"
    return "active"


def unit_statuses(
    tag: Any, as_of: date, *, closing_soon_days: int = CLOSING_SOON_DAYS
) -> dict[str, str | None]:
    """The four windows of a tag (any object with the tag's attributes) as of a date."""
    purchase = tag.purchase_date
    original_end = tag.original_warranty_end
    ext_end = tag.extended_warranty_end
    return {
        "original_warranty_status": window_status(
            purchase if original_end else None, original_end, as_of, closing_soon_days=closing_soon_days
        ),
        "registration_status": window_status(
            purchase if tag.registration_deadline else None,
            tag.registration_deadline,
            as_of,
            closing_soon_days=closing_soon_days,
        ),
        # The extended warranty takes over where the original one ends.
        "extended_warranty_status": window_status(
            original_end if ext_end else None, ext_end, as_of, closing_soon_days=closing_soon_days
        ),
        "trade_in_status": window_status(
            tag.trade_in_opens,
            getattr(tag, "trade_in_closes", None),
            as_of,
            closing_soon_days=closing_soon_days,
        ),
    }
