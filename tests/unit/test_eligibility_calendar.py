"""Calendar arithmetic (end-of-month clamping) and store-zone purchase dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from vipsync.config.stores import MARKETPLACES
from vipsync.eligibility.calendar import add_days, add_months, add_years, local_date, whole_months_between


@pytest.mark.parametrize(
    "start, years, expected",
    [
        (date(2024, 2, 29), 1, date(2025, 2, 28)),  # leap day to a common year
        (date(2024, 2, 29), 4, date(2028, 2, 29)),  # leap day to a leap year
        (date(2024, 2, 29), 3, date(2027, 2, 28)),
        (date(2023, 2, 28), 1, date(2024, 2, 28)),
        (date(2025, 12, 31), 1, date(2026, 12, 31)),
        (date(2025, 1, 1), 2, date(2027, 1, 1)),
    ],
)
def test_add_years_clamps_leap_days(start, years, expected):
    assert add_years(start, years) == expected


@pytest.mark.parametrize(
    "start, months, expected",
    [
        (date(2026, 10, 31), 4, date(2027, 2, 28)),  # POLICY.md's own example
        (date(2027, 10, 31), 4, date(2028, 2, 29)),  # into a leap February
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2025, 3, 31), 1, date(2025, 4, 30)),
        (date(2025, 8, 31), 4, date(2025, 12, 31)),
        (date(2025, 9, 30), 4, date(2026, 1, 30)),
        (date(2025, 11, 15), 4, date(2026, 3, 15)),  # across a year end
        (date(2025, 5, 31), -3, date(2025, 2, 28)),
    ],
)
def test_add_months_clamps_month_ends(start, months, expected):
    assert add_months(start, months) == expected


def test_add_days_is_plain_day_arithmetic():
    assert add_days(date(2024, 2, 28), 1) == date(2024, 2, 29)
    assert add_days(date(2025, 8, 3), 91) == date(2025, 11, 2)


@pytest.mark.parametrize(
    "start, end, months",
    [
        (date(2024, 1, 15), date(2024, 1, 15), 0),
        (date(2024, 1, 15), date(2024, 2, 14), 0),
        (date(2024, 1, 15), date(2024, 2, 15), 1),
        (date(2024, 1, 31), date(2024, 2, 28), 0),
        (date(2024, 1, 31), date(2024, 2, 29), 1),  # clamped month end completes the month
        (date(2022, 3, 1), date(2025, 2, 28), 35),
        (date(2022, 3, 1), date(2025, 3, 1), 36),
    ],
)
def test_whole_months_between_counts_complete_calendar_months(start, end, months):
    assert whole_months_between(start, end) == months


def test_whole_months_between_refuses_a_reversed_range():
    with pytest.raises(ValueError):
        whole_months_between(date(2025, 1, 2), date(2025, 1, 1))


# Purchases a few minutes either side of midnight in each store's zone (stores.toml and the
# built-in marketplaces): the calendar date is the store's, not UTC's.
@pytest.mark.parametrize(
    "zone, utc, expected",
    [
        ("America/Los_Angeles", datetime(2025, 3, 1, 7, 59, tzinfo=UTC), date(2025, 2, 28)),  # 23:59 PST
        ("America/Los_Angeles", datetime(2025, 3, 1, 8, 0, tzinfo=UTC), date(2025, 3, 1)),
        ("America/Los_Angeles", datetime(2025, 7, 1, 6, 59, tzinfo=UTC), date(2025, 6, 30)),  # PDT
        ("America/Los_Angeles", datetime(2025, 7, 1, 7, 0, tzinfo=UTC), date(2025, 7, 1)),
        ("Europe/Berlin", datetime(2024, 2, 28, 23, 30, tzinfo=UTC), date(2024, 2, 29)),  # leap day in Berlin
        ("Europe/Berlin", datetime(2024, 2, 29, 22, 59, tzinfo=UTC), date(2024, 2, 29)),
        ("Europe/Berlin", datetime(2024, 2, 29, 23, 0, tzinfo=UTC), date(2024, 3, 1)),
        ("Europe/Berlin", datetime(2025, 6, 30, 21, 59, tzinfo=UTC), date(2025, 6, 30)),  # CEST
        ("Europe/Berlin", datetime(2025, 6, 30, 22, 0, tzinfo=UTC), date(2025, 7, 1)),
        ("Asia/Tokyo", datetime(2025, 12, 31, 14, 59, tzinfo=UTC), date(2025, 12, 31)),
        ("Asia/Tokyo", datetime(2025, 12, 31, 15, 0, tzinfo=UTC), date(2026, 1, 1)),
        ("Europe/London", datetime(2025, 3, 30, 23, 30, tzinfo=UTC), date(2025, 3, 31)),  # BST
        ("America/Mexico_City", datetime(2025, 1, 1, 5, 59, tzinfo=UTC), date(2024, 12, 31)),
    ],
)
def test_purchase_date_is_the_calendar_date_in_the_store_zone(zone, utc, expected):
    assert local_date(utc, ZoneInfo(zone)) == expected


def test_every_marketplace_zone_gives_a_date():
    ts = datetime(2025, 1, 1, 0, 30, tzinfo=UTC)
    for code, mp in MARKETPLACES.items():
        day = local_date(ts, ZoneInfo(mp["timezone"]))
        assert day in (date(2024, 12, 31), date(2025, 1, 1)), code


def test_a_naive_timestamp_has_no_store_date():
    with pytest.raises(ValueError):
        local_date(datetime(2025, 1, 1, 12, 0), ZoneInfo("Europe/Berlin"))
