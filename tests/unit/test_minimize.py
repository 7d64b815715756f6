"""The allowlist: official payloads lose every personal field and keep what mapping needs;
hostile payloads never smuggle a planted value through a key that is not allowed."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vipsync.config.stores import load_stores
from vipsync.connectors.minimize import ALLOWLISTS, EMAIL_DIGEST, EMAIL_KEY_ID, minimize, shape_of
from vipsync.connectors.shopify.mapping import map_rest_order
from vipsync.privacy import Digester, PiiKey

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DIGESTER = Digester(PiiKey(key_id="k1", secret=b"s" * 40))


def _shop():
    return load_stores(Path(__file__).resolve().parents[2] / "vipsync" / "config" / "stores.toml").of_kind(
        "shopify"
    )[0]


def _text(value) -> str:
    return json.dumps(value).lower()


def test_the_official_shopify_order_keeps_no_name_street_phone_email_or_ip():
    order = json.loads((FIXTURES / "shopify" / "order.json").read_text())["order"]
    raw = _text(order)
    for needle in (
        "bob",
        "norman",
        "chestnut street",
        "555-625-1199",
        "bob.norman@hostmail.com",
        "browser_ip",
    ):
        assert needle in raw  # the fixture carries them
    kept = minimize(order, digester=DIGESTER, source="shopify")
    text = _text(kept)
    for needle in (
        "bob",
        "norman",
        "chestnut",
        "555-625-1199",
        "hostmail",
        "browser_ip",
        "louisville",
        "kentucky",
        "45.41634",
    ):
        assert needle not in text, needle
    assert kept["shipping_address"] == {"country_code": "US", "zip": "40202"}
    assert kept[EMAIL_DIGEST] == DIGESTER.email("bob.norman@hostmail.com") and kept[EMAIL_KEY_ID] == "k1"


def test_a_minimized_order_maps_to_the_same_facts_and_minimizing_again_changes_nothing():
    order = json.loads((FIXTURES / "shopify" / "order.json").read_text())["order"]
    shop = _shop()
    full = map_rest_order(order, shop)
    kept = minimize(order, digester=DIGESTER, source="shopify")
    again = map_rest_order(kept, shop)
    for name in ("external_id", "name", "purchased_at", "updated_at", "lines", "total_amount", "currency"):
        assert getattr(again, name) == getattr(full, name), name
    assert (again.country, again.shipping_postal_code, again.discount_codes) == (
        full.country,
        full.shipping_postal_code,
        full.discount_codes,
    )
    # The kept digest stands in for the address: already keyed, with its key id.
    assert (again.email_hash, again.email_key_id) == (DIGESTER.email("bob.norman@hostmail.com"), "k1")
    assert minimize(kept, digester=DIGESTER, source="shopify") == kept


def test_amazon_v2026_keeps_postal_code_and_country_but_no_recipient_or_buyer():
    order = json.loads((FIXTURES / "amazon" / "sandbox_v2026_getOrder_200_a.json").read_text())["order"]
    kept = minimize({"format": "v2026", "order": order}, digester=None, source="amazon")
    text = _text(kept)
    for needle in ("maria", "rua das flores", "98765-4321", "vila madalena", "feliz natal", "buyer-email"):
        assert needle not in text, needle
    assert kept["order"]["recipient"] == {"deliveryAddress": {"postalCode": "01234-567", "countryCode": "BR"}}
    assert kept["order"]["orderItems"][0]["product"]["sellerSku"] == "ECHO-DOT-4-BR-PRETO"


def test_a_members_row_keeps_the_keyed_digest_never_the_address_or_its_plain_hash():
    import hashlib

    plain = hashlib.sha256(b"ann@example.com").hexdigest()
    kept = minimize(
        {"email_sha256": plain, "registered_at": "x", "name": "Ann Lee", "line": "line 2"},
        digester=DIGESTER,
        source="members",
    )
    assert kept == {
        "registered_at": "x",
        "line": "line 2",
        EMAIL_DIGEST: DIGESTER.email("ann@example.com"),
        EMAIL_KEY_ID: "k1",
    }


def test_the_source_decides_the_shape_and_an_unknown_one_keeps_ids_and_times_only():
    assert shape_of({"format": "v0"}, source="shopify") == "shopify_order"
    assert shape_of({"format": "v0"}, source="tagging") == "amazon"
    assert minimize({"unit_id": 7, "name": "Ann"}, digester=None, source="tagging") == {"unit_id": 7}


def test_without_a_key_the_address_is_dropped_and_text_is_never_kept():
    assert EMAIL_DIGEST not in minimize({"id": 1, "email": "a@b.c"}, digester=None, source="shopify")
    assert minimize("Ann Lee, 1 Main St", digester=DIGESTER, source="shopify") == {
        "dropped": "str of 18 characters, not kept"
    }


PLANTED = "zz-planted-personal-value"
_keys = st.sampled_from(
    [
        *sorted(ALLOWLISTS["shopify_order"] | ALLOWLISTS["amazon"]),
        *["first_name", "address1", "phone", "browser_ip", "note", "BuyerInfo", "buyer", "city", "Name"],
    ]
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.just(PLANTED),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.dictionaries(_keys, _json, max_size=6),
    source=st.sampled_from(["shopify", "amazon", "members", "x"]),
)
def test_a_planted_value_survives_only_under_an_allowed_key(payload, source):
    kept = minimize(payload, digester=DIGESTER, source=source)
    allowed = ALLOWLISTS[shape_of(payload, source=source)]

    def walk(value, key=None):
        if isinstance(value, dict):
            for k, v in value.items():
                assert k in allowed, k
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif value == PLANTED:
            assert key in allowed, key

    walk(kept)
    assert minimize(kept, digester=DIGESTER, source=source) == kept
