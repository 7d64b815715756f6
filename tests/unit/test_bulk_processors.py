"""The bulk path's value conversions give exactly what SQLAlchemy's bind processors give
(the stored bytes must not depend on the write path)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from vipsync.store.bulk import _apply, _processors, _utc_text
from vipsync.store.models import Order, OrderLineRow, table_of

DIALECT = sqlite.dialect()
_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_AWARE = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 12, 30), timezones=_OFFSETS)


@given(_AWARE)
def test_the_fast_timestamp_text_is_sqlalchemys(value):
    proc = table_of(Order).c.purchased_at.type._cached_bind_processor(DIALECT)
    assert _utc_text(value) == proc(value)


def test_a_naive_timestamp_is_refused():
    with pytest.raises(ValueError, match="naive"):
        _utc_text(datetime(2024, 1, 1))


@given(
    st.lists(
        st.tuples(
            _AWARE,
            st.sampled_from([date(2024, 1, 1), date(2024, 1, 2)]),
            st.sampled_from([True, False]),
            st.sampled_from([[], ["A"], None, [1], [True]]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_rows_convert_as_each_value_alone_would(rows):
    """Repeated values are converted once per call: the result is the processor's for each."""
    table = table_of(Order)
    columns = ("purchased_at", "purchase_date", "is_test", "discount_codes")
    procs = {c: table.c[c].type._cached_bind_processor(DIALECT) for c in columns}
    got = _apply(rows, _processors(table, columns, DIALECT))
    assert got == [tuple(procs[c](v) for c, v in zip(columns, row, strict=True)) for row in rows]


def test_equal_decimals_of_another_scale_store_the_same():
    columns = ("unit_price",)
    procs = _processors(table_of(OrderLineRow), columns, DIALECT)
    assert _apply([(Decimal("1.0"),), (Decimal("1.00"),), (None,)], procs) == [(1.0,), (1.0,), (None,)]


@given(_AWARE, st.integers(min_value=1, max_value=40), st.sampled_from([True, False]))
def test_a_column_of_one_value_converts_as_each_value_alone_would(when, n, flag):
    """A column holding one value (a batch's write time, its flags) is converted once; the
    same instant at another offset, or an equal value of another type, stays apart."""
    table = table_of(Order)
    columns = ("created_at", "is_test", "total_amount")
    procs = {c: table.c[c].type._cached_bind_processor(DIALECT) for c in columns}
    other = when.astimezone(timezone(timedelta(hours=3)))
    for rows in (
        [(when, flag, Decimal("169.99"))] * n,
        [(when, flag, Decimal("1"))] * n + [(other, int(flag), 1)],
    ):
        got = _apply(rows, _processors(table, columns, DIALECT))
        assert got == [tuple(procs[c](v) for c, v in zip(columns, row, strict=True)) for row in rows]
