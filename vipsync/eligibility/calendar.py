"""Calendar arithmetic with end-of-month clamping, and store-zone dates.

2024-02-29 + 1 year = 2025-02-28; 2026-10-31 + 4 months = 2027-02-28.
"""

from __future__ import annotations

import calendar as _cal
from datetime import date, datetime, timedelta, tzinfo

__all__ = ["add_days", "add_months", "add_years", "local_date", "whole_months_between"]


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months; a day the target month lacks becomes its last day."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    if day.day <= 28:
        return date(year, month, day.day)
    last = 29 if month == 2 and _cal.isleap(year) else _MONTH_DAYS[month0]
    return date(year, month, min(day.day, last))


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def add_years(day: date, years: int) -> date:
    """``day`` plus ``years`` calendar years (29 February becomes 28 February)."""
    return add_months(day, 12 * years)


def add_days(day: date, days: int) -> date:
    return day + timedelta(days=days)


def whole_months_between(start: date, end: date) -> int:
    """Whole calendar months from ``start`` to ``end`` (0 when ``end`` is before
    ``start + 1 month``). A month is complete on the clamped same day: 2024-01-31 to
    2024-02-29 is one month."""
    if end < start:
        raise ValueError("end is before start")
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if months > 0 and add_months(start, months) > end:
        months -= 1
    return months


def local_date(timestamp: datetime, zone: tzinfo) -> date:
    """The calendar date of an aware ``timestamp`` in ``zone`` (a store's IANA zone)."""
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        raise ValueError("a naive timestamp has no calendar date in a store's zone")
    return timestamp.astimezone(zone).date()
