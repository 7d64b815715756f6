"""Proof-of-purchase matching: order identifiers, second factors, one answer for misses."""

from __future__ import annotations

import pytest

from vipsync.connectors.records import email_digest
from vipsync.eligibility.proof import (
    factor_matches,
    normalize_postal_code,
    parse_order_reference,
    proof_answer,
)
from vipsync.errors import EligibilityError


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("#1001", "shopify_name", "1001"),
        (" 1001 ", "shopify_name", "1001"),
        ("\uff03\uff11\uff10\uff10\uff11", "shopify_name", "1001"),
        ("113-1234567-1234567", "amazon_order_id", "113-1234567-1234567"),
        ("113 1234567 1234567", "amazon_order_id", "113-1234567-1234567"),
        ("11312345671234567", "amazon_order_id", "113-1234567-1234567"),
        ("113\u20131234567\u20141234567", "amazon_order_id", "113-1234567-1234567"),
    ],
)
def test_order_identifiers(text, kind, value):
    ref = parse_order_reference(text)
    assert (ref.kind, ref.value) == (kind, value)


@pytest.mark.parametrize("text", ["", "#", "abc", "113-123456-1234567", "#10a1", "1001; drop"])
def test_anything_else_is_not_an_order_identifier(text):
    with pytest.raises(EligibilityError):
        parse_order_reference(text)


def test_the_email_factor_matches_by_digest_of_the_normalized_email():
    order = email_digest("Buyer@Example.com")
    assert factor_matches(
        order_email_hash=order, order_postal_code=None, factor_email_hash=email_digest(" buyer@example.COM ")
    )
    assert not factor_matches(
        order_email_hash=order, order_postal_code=None, factor_email_hash=email_digest("other@example.com")
    )
    assert not factor_matches(
        order_email_hash=None, order_postal_code="40202", factor_email_hash=email_digest("x@example.com")
    )


def test_the_postal_code_factor_ignores_case_spaces_and_dashes():
    assert normalize_postal_code(" sw1a 1aa ") == "SW1A1AA"
    assert normalize_postal_code("〒100-0001", "JP") == "1000001"
    assert normalize_postal_code("40202-1234", "US") == "40202"
    assert normalize_postal_code("2134", "US") == "02134"
    assert factor_matches(order_email_hash=None, order_postal_code="SW1A 1AA", factor_postal_code="sw1a1aa")
    assert not factor_matches(order_email_hash=None, order_postal_code="10115", factor_postal_code="10117")
    assert not factor_matches(order_email_hash=None, order_postal_code=None, factor_postal_code="")


def test_exactly_one_factor():
    with pytest.raises(EligibilityError):
        factor_matches(order_email_hash="a", order_postal_code="b")
    with pytest.raises(EligibilityError):
        factor_matches(
            order_email_hash="a", order_postal_code="b", factor_email_hash="a", factor_postal_code="b"
        )


def test_a_wrong_factor_and_an_unknown_order_get_the_same_answer():
    wrong = proof_answer(order_found=True, factor_ok=False)
    unknown = proof_answer(order_found=False, factor_ok=False)
    assert wrong == unknown and not wrong.verified
    assert proof_answer(order_found=True, factor_ok=True).verified


def test_a_shop_prefix_and_suffix_are_stripped_from_the_order_name():
    ref = parse_order_reference("TS-1001-eu", name_affixes=[("#", ""), ("TS-", "-EU")])
    assert (ref.kind, ref.value) == ("shopify_name", "1001")


def test_a_postal_code_naming_another_country_does_not_match():
    assert not factor_matches(
        order_email_hash=None,
        order_postal_code="10115",
        order_country="DE",
        factor_postal_code="10115",
        factor_country="FR",
    )
