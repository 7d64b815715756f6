"""Proof-of-purchase matching rules (pure): an order identifier plus a second factor only
the buyer knows (the order's e-mail or its shipping postal code).

A wrong factor and an unknown order get the same answer, so the check cannot be used to
probe for orders. E-mails are compared as digests (the caller digests the factor with the
same function that digested the order's e-mail); comparisons are constant-time.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Literal

from vipsync.errors import EligibilityError

__all__ = [
    "OrderReference",
    "ProofAnswer",
    "factor_matches",
    "normalize_postal_code",
    "parse_order_reference",
    "proof_answer",
]

_AMAZON = re.compile(r"^\d{3}-\d{7}-\d{7}$")
_SHOPIFY = re.compile(r"^#?(\d{1,12})$")
REFUSED = "no order matches this order number and this e-mail or postal code"


@dataclass(frozen=True, slots=True)
class OrderReference:
    kind: Literal["shopify_name", "amazon_order_id"]
    value: str  # "#1001" or "NNN-NNNNNNN-NNNNNNN"


def parse_order_reference(text: str) -> OrderReference:
    """A Shopify order name (``#1001``, the ``#`` optional) or an Amazon order id."""
    value = (text or "").strip()
    if _AMAZON.match(value):
        return OrderReference("amazon_order_id", value)
    m = _SHOPIFY.match(value)
    if m:
        return OrderReference("shopify_name", f"#{m.group(1)}")
    raise EligibilityError(
        "not an order number: a Shopify order name such as #1001 or an Amazon order id NNN-NNNNNNN-NNNNNNN"
    )


def normalize_postal_code(value: str | None) -> str:
    """Upper case without spaces or dashes (``sw1a 1aa`` = ``SW1A1AA``, ``40202-1234`` stays whole)."""
    return re.sub(r"[\s\-]", "", value or "").upper()


def _same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def factor_matches(
    *,
    order_email_hash: str | None,
    order_postal_code: str | None,
    factor_email_hash: str | None = None,
    factor_postal_code: str | None = None,
) -> bool:
    """Does the buyer's second factor match the order? Exactly one factor is given."""
    if (factor_email_hash is None) == (factor_postal_code is None):
        raise EligibilityError("give one second factor: the order's e-mail or its shipping postal code")
    if factor_email_hash is not None:
        return _same(factor_email_hash, order_email_hash)
    return _same(normalize_postal_code(factor_postal_code), normalize_postal_code(order_postal_code))


@dataclass(frozen=True, slots=True)
class ProofAnswer:
    verified: bool
    message: str


def proof_answer(*, order_found: bool, factor_ok: bool) -> ProofAnswer:
    """The one answer a caller sees: an unknown order and a wrong factor are the same."""
    if order_found and factor_ok:
        return ProofAnswer(True, "proof of purchase verified")
    return ProofAnswer(False, REFUSED)
