"""Read-time statuses (active, closing soon, expired) from stored windows and an as-of date."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

from vipsync.eligibility.status import unit_statuses, window_status

START, END = date(2025, 3, 10), date(2026, 3, 10)


@pytest.mark.parametrize(
    "as_of, status",
    [
        (date(2025, 3, 9), "not_started"),
        (date(2025, 3, 10), "active"),
        (date(2026, 2, 7), "active"),
        (date(2026, 2, 8), "closing_soon"),  # 30 days before the end
        (date(2026, 3, 9), "closing_soon"),  # the last covered day
        (date(2026, 3, 10), "expired"),  # the end is the first day no longer covered
    ],
)
def test_window_status_is_half_open(as_of, status):
    assert window_status(START, END, as_of) == status


def test_a_window_that_does_not_apply_has_no_status_and_an_open_one_never_closes():
    assert window_status(None, END, date(2025, 5, 5)) is None
    assert window_status(START, None, date(2099, 1, 1)) == "active"


def test_closing_soon_threshold_is_a_parameter():
    assert window_status(START, END, date(2026, 2, 1), closing_soon_days=60) == "closing_soon"


def test_unit_statuses_depend_on_the_as_of_date_only():
    tag = SimpleNamespace(
        purchase_date=START,
        original_warranty_end=END,
        registration_deadline=END,
        extended_warranty_end=date(2028, 3, 10),
        trade_in_opens=date(2025, 7, 10),
    )
    assert unit_statuses(tag, date(2025, 5, 1)) == {
        "original_warranty_status": "active",
        "registration_status": "active",
        "extended_warranty_status": "not_started",
        "trade_in_status": "not_started",
    }
    assert unit_statuses(tag, date(2026, 6, 1)) == {
        "original_warranty_status": "expired",
        "registration_status": "expired",
        "extended_warranty_status": "active",
        "trade_in_status": "active",
    }
    none = SimpleNamespace(
        purchase_date=START,
        original_warranty_end=None,
        registration_deadline=None,
        extended_warranty_end=None,
        trade_in_opens=None,
    )
    assert set(unit_statuses(none, date(2025, 5, 1)).values()) == {None}
