"""Proof-of-purchase matching rules (pure): an order identifier plus a second factor only
the buyer knows (the order's e-mail or its shipping postal code).

A wrong factor and an unknown order get the same answer, so the check cannot be used to
probe for orders. E-mails are compared as keyed digests (the caller digests the factor
with the one e-mail normalization, ``connectors.records.normalize_email``); comparisons
are constant-time.

Normalization (POLICY.md, Proof of purchase):
- Shopify order names: NFKC, without ``#``, spaces or case, without the shop's configured
  name prefix and suffix; what is left is the order number.
- Amazon order ids: NFKC, any dash character, no spaces; the dashes restored when missing.
- Postal codes: NFKC, without spaces, dashes or ``〒``, upper-cased; for US addresses the
  first five digits, zero-padded.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from vipsync.errors import EligibilityError

__all__ = [
    "REFUSED",
    "OrderReference",
    "ProofAnswer",
    "factor_matches",
    "normalize_postal_code",
    "parse_order_reference",
    "proof_answer",
    "shopify_names",
]

_AMAZON = re.compile(r"^\d{3}-\d{7}-\d{7}$")
_DIGITS = re.compile(r"^\d{1,20}$")
# Every Unicode dash (category Pd) plus the minus sign, read as "-".
_DASHES = re.compile(
    r"[\u2212\u002d\u058a\u05be\u1400\u1806\u2010-\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d]"
)
_SPACES = re.compile(r"\s+")
REFUSED = "no order matches this order number and this e-mail or postal code"
MAX_REFERENCE_CHARS = 64


@dataclass(frozen=True, slots=True)
class OrderReference:
    """A normalized order identifier. ``value`` is the Shopify order number (digits, no
    prefix) or the Amazon order id ``NNN-NNNNNNN-NNNNNNN``; it is also what rate limits count."""

    kind: Literal["shopify_name", "amazon_order_id"]
    value: str


def parse_order_reference(
    text: str, *, name_affixes: Iterable[tuple[str, str]] = (("#", ""),)
) -> OrderReference:
    """A Shopify order name (``#1001``, ``1001``, its full-width form, or with a shop's configured
    prefix and suffix) or an Amazon order id (dashes optional)."""
    raw = unicodedata.normalize("NFKC", text or "")
    if len(raw) > MAX_REFERENCE_CHARS:
        raise EligibilityError(f"order_id: at most {MAX_REFERENCE_CHARS} characters")
    compact = _SPACES.sub("", _DASHES.sub("-", raw))
    if _AMAZON.match(compact):
        return OrderReference("amazon_order_id", compact)
    if re.fullmatch(r"\d{17}", compact):
        return OrderReference("amazon_order_id", f"{compact[:3]}-{compact[3:10]}-{compact[10:]}")
    key = compact.replace("#", "").lower()
    candidates = [key]
    for prefix, suffix in name_affixes:
        p = _SPACES.sub("", unicodedata.normalize("NFKC", prefix)).replace("#", "").lower()
        s = _SPACES.sub("", unicodedata.normalize("NFKC", suffix)).replace("#", "").lower()
        if (p or s) and key.startswith(p) and key.endswith(s) and len(key) > len(p) + len(s):
            candidates.append(key[len(p) : len(key) - len(s)] if s else key[len(p) :])
    for core in candidates:
        if _DIGITS.match(core):
            return OrderReference("shopify_name", core.lstrip("0") or "0")
    raise EligibilityError(
        "order_id: not an order number: a Shopify order name such as #1001 or an Amazon order id NNN-NNNNNNN-NNNNNNN"
    )


def shopify_names(number: str, affixes: Sequence[tuple[str, str]]) -> list[str]:
    """The stored order names an order number can have in shops with these affixes."""
    return sorted({f"{prefix}{number}{suffix}" for prefix, suffix in affixes})


def normalize_postal_code(value: str | None, country: str | None = None) -> str:
    """NFKC, without spaces, dashes or ``〒``, upper case; US codes are their first five
    digits, zero-padded (``40202-1234`` = ``40202``, ``2134`` = ``02134``)."""
    text = unicodedata.normalize("NFKC", value or "")
    text = _SPACES.sub("", _DASHES.sub("", text)).replace("〒", "").upper()
    if country == "US":
        digits = "".join(c for c in text if c.isdigit())
        return digits[:5].zfill(5) if digits else ""
    return text


def _same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def factor_matches(
    *,
    order_email_hash: str | None,
    order_postal_code: str | None,
    order_country: str | None = None,
    factor_email_hash: str | None = None,
    factor_postal_code: str | None = None,
    factor_country: str | None = None,
) -> bool:
    """Does the buyer's second factor match the order? Exactly one factor is given. A
    postal code that names its country must name the order's."""
    if (factor_email_hash is None) == (factor_postal_code is None):
        raise EligibilityError("give one second factor: the order's e-mail or its shipping postal code")
    if factor_email_hash is not None:
        return _same(factor_email_hash, order_email_hash)
    if factor_country is not None and factor_country != order_country:
        return False
    return _same(
        normalize_postal_code(factor_postal_code, order_country),
        normalize_postal_code(order_postal_code, order_country),
    )


@dataclass(frozen=True, slots=True)
class ProofAnswer:
    verified: bool
    message: str


def proof_answer(*, order_found: bool, factor_ok: bool) -> ProofAnswer:
    """The one answer a caller sees: an unknown order and a wrong factor are the same."""
    if order_found and factor_ok:
        return ProofAnswer(True, "proof of purchase verified")
    return ProofAnswer(False, REFUSED)
