"""JSON text on an import's hot path: orjson where it gives exactly what the standard
library gives, the standard library everywhere else.

Each order of an import is parsed once and serialized twice in canonical form (its raw
payload, then the body of its content digest); orjson does each several times faster. The
stored text and every digest must stay byte for byte what :mod:`json` writes, so orjson is
used only where it cannot differ, and the standard library decides every other case:

- :func:`canonical_json_finite` (the text of :func:`canonical_json` for a
  value with no NaN or infinity in it: a minimized payload, where :func:`minimize` made them
  null, or a digest's body of text and integers): orjson refuses (and the standard library
  then writes) non-str keys, integers beyond 64 bits, lone surrogates and every type that is
  not a JSON type (``default`` refuses them: dates, decimals, dataclasses, subclasses). It
  writes some floats differently (``1.5e-7`` against ``1.5e-07``), so a text with a float in
  it is written again by the standard library; it would write NaN and infinities as
  ``null``, which is why the value must have none. Enum members, which orjson writes by
  value, are given to it by no caller.
- :func:`loads`: orjson reads integers beyond 64 bits as floats, and nests deeper than the
  standard library's recursion limit allows, so a text with a run of 19 digits, or with
  more brackets than :data:`MAX_FAST_BRACKETS`, is read by the standard library; so is every
  text orjson refuses (NaN, infinities, lone surrogates, encodings other than UTF-8), and the
  standard library's error is the one raised.

``tests/unit/test_json_text.py`` compares both with the standard library over generated
values (non-ASCII and control characters, big integers, floats, nesting).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["MAX_FAST_BRACKETS", "canonical_json", "canonical_json_finite", "loads"]

_DUMP_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# Every digit as "0": a run of 19 zeros in the result is a run of 19 digits in the text.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19
MAX_FAST_BRACKETS = 500  # well under the standard library's recursion limit (1000)


def _refuse(value: Any) -> Any:
    raise TypeError


def _may_hold_float(text: bytes) -> bool:
    """True when ``text`` (orjson's compact output) may hold a float: orjson writes each one
    with a fraction or a signed exponent (``169.99``, ``1e+16``, ``1.5e-7``), right after
    ``:``, ``,``, ``[`` or a minus sign. The same characters inside a string (a price
    ``"169.99"`` is after a quote) make a false "yes" only now and then, which costs the
    slower path and nothing else."""
    for mark in (b".", b"e+", b"e-"):
        at = text.find(mark)
        while at > 0:
            i = at - 1
            while i > 0 and 48 <= text[i] <= 57:  # the digits before the mark
                i -= 1
            if i < at - 1 and text[i] in b":,[-":
                return True
            at = text.find(mark, at + 1)
    return False


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (the standard library's): keys sorted, no spaces,
    non-ASCII characters as they are, a value of no JSON type written as its ``str()``.
    Digests and stored payloads are made from it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def canonical_json_finite(value: Any) -> str:
    """``canonical_json(value)`` (keys sorted, no spaces, non-ASCII
    characters as they are, a value of no JSON type written as its ``str()``) for a value
    that holds no NaN or infinity."""
    try:
        text = orjson.dumps(value, default=_refuse, option=_DUMP_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError
        return canonical_json(value)
    if text[:1] not in (b"{", b"[") or _may_hold_float(text):
        return canonical_json(value)
    return text.decode("utf-8")


def loads(text: bytes) -> Any:
    """``json.loads(text)``: the same value, or the same error."""
    if (
        _LONG_RUN in text.translate(_DIGITS_AS_ZERO)
        or text.count(b"{") + text.count(b"[") > MAX_FAST_BRACKETS
    ):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
