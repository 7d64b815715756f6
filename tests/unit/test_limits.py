"""The mapper limits: each one rejects the record naming its field; nothing raises."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipsync.connectors.limits import Limits, check_order, json_clean, map_or_reject, scrub_nul
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


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from("a\x00\\u0{[é")),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet=st.sampled_from("k\x00\\u0"), max_size=3), children, max_size=4)
    ),
    max_leaves=30,
)


@given(_JSON, st.booleans())
def test_json_the_reader_calls_clean_needs_no_scrubbing(value, ascii_only):
    """The readers skip the walk of the raw payload when its JSON text says it is clean:
    that must never let a NUL character through."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    if json_clean(text):
        assert scrub_nul(value) is value
    if json_clean(text.encode("utf-8")):
        assert scrub_nul(value) is value


def test_nul_characters_and_deep_nesting_are_never_clean():
    assert not json_clean(json.dumps({"note": "a\x00b"}))
    assert not json_clean(json.dumps({"note": "a\x00b"}).encode("utf-16"))
    deep = "[" * 201 + "]" * 201
    assert not json_clean(deep)
    with pytest.raises(RecordError):
        scrub_nul(json.loads("[" * 202 + "]" * 202))
    assert json_clean(json.dumps({"id": 1, "note": "\\u0001", "items": [{}, []]}))


def test_a_clean_payload_is_kept_as_it_is_by_map_or_reject():
    rec = order_record(1)
    raw = {"note": "a\x00b"}
    mapped = map_or_reject(lambda _: dataclasses.replace(rec, raw=raw), None, clean=False)
    assert isinstance(mapped, OrderRecord) and mapped.raw == {"note": "a\ufffdb"}
    assert map_or_reject(lambda _: dataclasses.replace(rec, raw={"id": 1}), None, clean=True).raw == {"id": 1}
