"""The mapper limits: each one rejects the record naming its field; nothing raises."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from vipsync.connectors.limits import Limits, check_order, map_or_reject, scrub_nul
from vipsync.connectors.records import OrderRecord, Rejected
from vipsync.devtools.factories import order_record
from vipsync.errors import RecordError

LIMITS = Limits(max_line_quantity=100)


def _line(rec: OrderRecord, **changes) -> OrderRecord:
    return dataclasses.replace(rec, lines=(dataclasses.replace(rec.lines[0], **changes),))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: _line(r, sku="K" * 256), "lines[0].sku"),
        (lambda r: _line(r, sku="KVM\x00"), "lines[0].sku"),
        (lambda r: _line(r, line_key="L" * 300), "lines[0].line_key"),
        (lambda r: _line(r, quantity=101), "lines[0].quantity"),
        (lambda r: _line(r, refunded_quantity=5), "lines[0].refunded_quantity"),
        (lambda r: _line(r, unit_price=Decimal("1" * 40)), "lines[0].unit_price"),
        (lambda r: _line(r, unit_price=Decimal("sNaN")), "lines[0].unit_price"),
        (lambda r: dataclasses.replace(r, total_amount=Decimal("Infinity")), "total_amount"),
        (lambda r: dataclasses.replace(r, external_id="9" * 65), "external_id"),
        (lambda r: dataclasses.replace(r, shipping_postal_code="1\x000"), "shipping_postal_code"),
        (lambda r: dataclasses.replace(r, currency="EURO"), "currency"),
        (lambda r: dataclasses.replace(r, updated_at=datetime(2150, 1, 1, tzinfo=UTC)), "updated_at"),
        (lambda r: dataclasses.replace(r, discount_codes=("C" * 256,)), "discount_codes[0]"),
    ],
)
def test_a_field_out_of_limits_is_named(change, field):
    with pytest.raises(RecordError) as info:
        check_order(change(order_record(1)), LIMITS)
    assert info.value.field == field and info.value.record_id


def test_a_record_within_limits_passes_and_its_raw_payload_loses_nul_characters():
    rec = dataclasses.replace(order_record(1), raw={"note": "a\x00b", "items": [{"k\x00": 1}]})
    checked = check_order(rec, LIMITS)
    assert checked.raw == {"note": "a\ufffdb", "items": [{"k\ufffd": 1}]}
    plain = order_record(2)
    assert check_order(plain, LIMITS) is plain


def test_scrub_returns_the_same_object_when_there_is_nothing_to_replace():
    value = {"a": [1, "b", {"c": None}]}
    assert scrub_nul(value) is value


def test_any_failure_of_a_mapper_is_a_reject_naming_the_record():
    def crashes(payload):
        return payload["line_items"][0]["sku"].strip()  # a list where an object belongs

    item = map_or_reject(crashes, {"id": "123", "line_items": "oops"}, limits=LIMITS)
    assert isinstance(item, Rejected)
    assert (item.record_id, item.field) == ("123", None) and "TypeError" in item.message


def test_a_quantity_above_the_setting_is_rejected_through_map_or_reject():
    rec = _line(order_record(1), quantity=1_000_000)
    item = map_or_reject(lambda payload: payload, rec, limits=Limits())
    assert isinstance(item, Rejected) and item.field == "lines[0].quantity"
    assert "VIPSYNC_MAX_LINE_QUANTITY" in item.message
