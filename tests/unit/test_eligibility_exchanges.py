"""Which unit an exchange or edit added in place of which returned unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from vipsync.eligibility.exchanges import ExchangeRow, Takeover, UnitRow, line_units, takeovers
from vipsync.eligibility.refunds import LineRow

T0 = datetime(2025, 3, 1, 15, 0, tzinfo=UTC)
P = Decimal("199.99")
# Line A: 2 units of S (1 returned: taken), line B: 1 unit of T (an exchange), line C: 2 of S.
LINES = [LineRow("A", "S", 2, P), LineRow("B", "T", 1, P), LineRow("C", "S", 2, P)]
UNITS = [UnitRow(1, "S", 1), UnitRow(2, "S", 2), UnitRow(3, "T", 1), UnitRow(4, "S", 3), UnitRow(5, "S", 4)]


def test_units_are_numbered_per_sku_in_line_order():
    assert line_units(LINES) == {"A": ("S", [1, 2]), "B": ("T", [1]), "C": ("S", [3, 4])}


def test_the_added_unit_takes_the_place_of_the_highest_taken_unit_of_the_returned_sku():
    facts = [ExchangeRow("B", "A", 1, T0, "return:1:B:A")]
    assert takeovers(facts, LINES, UNITS, taken={2}) == {3: Takeover(2, True, T0)}


def test_an_addition_without_a_return_is_a_new_purchase_and_an_unknown_line_waits():
    facts = [ExchangeRow("C", None, 2, T0, "edit:9:C:-"), ExchangeRow("Z", "A", 1, T0, "edit:9:Z:A")]
    assert takeovers(facts, LINES, UNITS, taken=set()) == {
        5: Takeover(None, False, T0),
        4: Takeover(None, False, T0),
    }


def test_a_returned_line_whose_unit_is_still_counted_links_nothing():
    facts = [ExchangeRow("B", "A", 1, T0, "return:1:B:A")]
    assert takeovers(facts, LINES, UNITS, taken=set()) == {3: Takeover(None, True, T0)}


_FACTS = [
    ExchangeRow("B", "A", 1, T0, "return:1:B:A"),
    ExchangeRow("C", "A", 1, T0 + timedelta(days=1), "edit:2:C:A"),
    ExchangeRow("C", None, 1, T0 + timedelta(days=1), "edit:2:C:-"),
]


@given(st.permutations(_FACTS))
def test_the_result_never_depends_on_the_order_the_facts_arrived_in(facts):
    assert takeovers(facts, LINES, UNITS, taken={1, 2}) == takeovers(_FACTS, LINES, UNITS, taken={1, 2})
