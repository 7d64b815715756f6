"""orjson on the import's hot path gives exactly what the standard library gives: the same
canonical text (so the same stored payloads and digests) and the same parsed values."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vipsync.connectors.json_text import MAX_FAST_BRACKETS, canonical_json, canonical_json_finite, loads


def _reference(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


# Text with what JSON escapes (controls, quote, backslash), what it does not (DEL, U+2028),
# non-ASCII of every width, and lone surrogates (which only the standard library writes).
_chars = st.one_of(
    st.characters(),
    st.sampled_from(["\x00", "\x01", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", '"', "\\", "/"]),
    st.sampled_from(["\x7f", "\u2028", "\u2029", "é", "€", "\ufeff", "\uffff", "😀", "\U0010ffff"]),
    st.sampled_from(["\ud800", "\udfff"]),
)
_text = st.text(_chars, max_size=12) | st.sampled_from(["2024-01-01T00:07:00.5+00:00", "a:1.5,", "[2e5]"])
_ints = st.integers() | st.sampled_from(
    [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**19, -(10**19), 10**30]
)
_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 1e16, 1e15, 1.5e-7, 1e-5, 0.0001, 5e-324, 1.7976931348623157e308, 123.0, 169.99]
)
_scalars = st.none() | st.booleans() | _ints | _floats | _text
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=6),
    max_leaves=40,
)


def _same(a, b) -> bool:
    """Equal values of the same types, floats to the bit (-0.0), keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@settings(max_examples=1500, deadline=None)
@given(_json_values)
def test_canonical_text_is_the_standard_librarys(value):
    assert canonical_json_finite(value) == _reference(value)
    assert canonical_json(value) == _reference(value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _json_values, min_size=1, max_size=4), st.sampled_from([Decimal("1.50"), 7]))
def test_values_of_no_json_type_are_written_as_their_text_as_before(value, extra):
    for odd in (
        Decimal("169.99"),
        datetime(2024, 1, 1, tzinfo=UTC),
        date(2024, 2, 29),
        (1, "two", extra),
        {1: "int key"},
    ):
        mixed = dict(value, odd=odd)
        assert canonical_json_finite(mixed) == _reference(mixed)
        assert canonical_json_finite([odd, value]) == _reference([odd, value])


@settings(max_examples=1500, deadline=None)
@given(_json_values, st.sampled_from([(",", ":"), (", ", ": ")]), st.booleans())
def test_parsed_values_are_the_standard_librarys(value, separators, ascii_only):
    try:
        text = json.dumps(value, separators=separators, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate written as is: not UTF-8
        text = json.dumps(value, separators=separators, ensure_ascii=True).encode("utf-8")
    assert _same(loads(text), json.loads(text))


def _outcome(fn, text: bytes):
    try:
        value = fn(text)
    except (ValueError, RecursionError) as exc:
        return ("raised", type(exc), str(exc))
    return ("value", value)


@pytest.mark.parametrize(
    "text",
    [
        b"NaN",
        b"[Infinity, -Infinity]",
        b"1e400",
        b"-9223372036854775809",
        b"18446744073709551616",
        b'{"id": 123456789012345678901234567890}',
        b'"\\ud800"',
        b'{"a": 1, "a": 2}',
        b"\xef\xbb\xbf{}",
        '{"é": 1}'.encode("utf-16"),
        b'{"a": "\xff"}',
        b"[1,",
        b"",
        b"[" * (MAX_FAST_BRACKETS + 1) + b"]" * (MAX_FAST_BRACKETS + 1),
        b"[" * 1100 + b"]" * 1100,
        b'{"a": [1, 2.5, -0.0, 1E5, 0.1e-310]}',
    ],
)
def test_edge_texts_give_the_standard_librarys_value_or_error(text):
    mine, reference = _outcome(loads, text), _outcome(json.loads, text)
    # repr tells apart 1 and 1.0, -0.0 and 0.0, and writes NaN alike (NaN != NaN).
    assert (mine[0], repr(mine[1:])) == (reference[0], repr(reference[1:]))
