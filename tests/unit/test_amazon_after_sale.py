"""Amazon after the sale, without I/O: replacement orders in both Orders API shapes, refund
events of the Finances API (model-shaped), the returns report, and POLICY.md's rules for
what refunds take, whichever order the facts arrive in."""

from __future__ import annotations

import copy
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vipsync.config.stores import load_stores
from vipsync.connectors.amazon.finances import map_refund_events, read_returns_report
from vipsync.connectors.amazon.mapping import map_order_v0, map_order_v2026, try_map_order_v0
from vipsync.connectors.records import OrderFact, Rejected
from vipsync.eligibility.refunds import FactRow, LineRow, RefundEvent, after_sale, amazon_refunded_quantity

ROOT = Path(__file__).resolve().parents[2]
AMAZON = ROOT / "tests" / "fixtures" / "amazon"
STORES = load_stores(ROOT / "vipsync" / "config" / "stores.toml")
NA = STORES.amazon("amazon-na")
EU = STORES.amazon("amazon-eu")
FE = STORES.amazon("amazon-fe")


def _load(name: str) -> dict:
    return json.loads((AMAZON / name).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- replacements
def test_v0_replacement_order_keeps_the_flag_and_the_replaced_order():
    order = _load("sandbox_getOrder_200.json")["payload"]
    items = _load("sandbox_getOrderItems_200.json")["payload"]["OrderItems"]
    assert map_order_v0(order, items, NA).is_replacement is False  # the example as it is
    replacement = dict(order, IsReplacementOrder=True, ReplacedOrderId="902-3159896-1390916")
    replacement["OrderTotal"] = dict(order["OrderTotal"], Amount="0.00")
    rec = map_order_v0(replacement, items, NA)
    assert (rec.is_replacement, rec.replaced_order_id, rec.ops_flags) == (True, "902-3159896-1390916", ())


def test_v0_replacement_with_a_total_or_without_its_original_is_flagged_for_ops():
    order = _load("sandbox_getOrder_200.json")["payload"]
    items = _load("sandbox_getOrderItems_200.json")["payload"]["OrderItems"]
    rec = map_order_v0(dict(order, IsReplacementOrder="true"), items, NA)
    assert rec.is_replacement and set(rec.ops_flags) == {"replacement_with_total", "replaced_order_unknown"}


def test_v0_replacement_flag_that_is_not_a_boolean_is_rejected_naming_the_field():
    order = _load("sandbox_getOrder_200.json")["payload"]
    items = _load("sandbox_getOrderItems_200.json")["payload"]["OrderItems"]
    rej = try_map_order_v0(dict(order, IsReplacementOrder="maybe"), items, NA)
    assert isinstance(rej, Rejected) and rej.field == "IsReplacementOrder"


def test_v2026_replacement_is_read_from_its_associated_orders():
    order = copy.deepcopy(_load("sandbox_v2026_searchOrders_200_a.json")["orders"][0])
    wide = replace(NA, marketplaces=(*NA.marketplaces, *EU.marketplaces, *FE.marketplaces))
    assert map_order_v2026(order, wide).is_replacement is False
    order["associatedOrders"] = [
        {"orderId": "123-4567890-1234566", "associationType": "REPLACEMENT_ORIGINAL_ID"}
    ]
    rec = map_order_v2026(order, wide)
    assert rec.is_replacement and rec.replaced_order_id == "123-4567890-1234566"
    order["associatedOrders"] = [
        {"orderId": "123-4567890-1234566", "associationType": "EXCHANGE_ORIGINAL_ID"}
    ]
    assert map_order_v2026(order, wide).is_replacement is False


# ----------------------------------------------------------------------------- refund events
def _event(
    order_id="303-1234567-1234567",
    qty=1,
    principal=-189.99,
    tax=-0.0,
    item="111",
    posted="2026-01-05T10:00:00Z",
):
    return {
        "AmazonOrderId": order_id,
        "SellerOrderId": order_id,
        "MarketplaceName": "Amazon.com",
        "PostedDate": posted,
        "ShipmentItemAdjustmentList": [
            {
                "SellerSKU": "HKS0401A3U",
                "OrderItemId": item,
                "OrderAdjustmentItemId": "adj" + item,
                "QuantityShipped": qty,
                "ItemChargeAdjustmentList": [
                    {
                        "ChargeType": "Principal",
                        "ChargeAmount": {"CurrencyCode": "USD", "CurrencyAmount": principal},
                    },
                    {"ChargeType": "Tax", "ChargeAmount": {"CurrencyCode": "USD", "CurrencyAmount": tax}},
                ],
            }
        ],
    }


def test_a_refund_event_becomes_one_fact_per_adjusted_item_with_positive_amounts():
    [fact] = map_refund_events([_event(qty=2, principal=-379.98, tax=-22.8)], NA)
    assert isinstance(fact, OrderFact)
    assert (fact.order_external_id, fact.kind, fact.line_key, fact.sku, fact.quantity) == (
        "303-1234567-1234567",
        "refund",
        "111",
        "HKS0401A3U",
        2,
    )
    assert (fact.principal, fact.amount, fact.currency) == (Decimal("379.98"), Decimal("402.78"), "USD")
    assert fact.posted_at == datetime(2026, 1, 5, 10, tzinfo=UTC)
    # The same event read again has the same key: stored once.
    [again] = map_refund_events([_event(qty=2, principal=-379.98, tax=-22.8)], NA)
    assert isinstance(again, OrderFact) and again.fact_key == fact.fact_key


_HOSTILE = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6) | st.floats(allow_nan=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(
        [
            "AmazonOrderId",
            "PostedDate",
            "ShipmentItemAdjustmentList",
            "QuantityShipped",
            "ItemChargeAdjustmentList",
        ]
    ),
    value=_HOSTILE,
)
def test_a_hostile_refund_event_is_rejected_alone_naming_its_field(field, value):
    bad = _event(order_id="303-0000000-0000001")
    target = (
        bad["ShipmentItemAdjustmentList"][0]
        if field in ("QuantityShipped", "ItemChargeAdjustmentList")
        else bad
    )
    target[field] = value
    out = map_refund_events([_event(), bad, _event(order_id="303-0000000-0000002")], NA)
    good = [f for f in out if isinstance(f, OrderFact)]
    assert {f.order_external_id for f in good} >= {"303-1234567-1234567", "303-0000000-0000002"}
    for item in out:
        if isinstance(item, Rejected):
            assert item.field is not None
            assert item.record_id in ("303-0000000-0000001", "refund event 0:1") or field == "AmazonOrderId"
            assert item.raw == {"refund_event": bad}


# ----------------------------------------------------------------------------- the rules
def test_the_largest_covering_quantity_counts_not_the_sum_of_events():
    price = Decimal("189.99")
    events = [RefundEvent(1, price), RefundEvent(2, price * 2), RefundEvent(1, price)]
    assert amazon_refunded_quantity(events, price) == 2


def test_an_event_refunding_less_than_the_price_is_money_alone():
    price = Decimal("189.99")
    assert amazon_refunded_quantity([RefundEvent(1, Decimal("50.00"))], price) == 0
    # within one minor unit per unit still covers the price
    assert amazon_refunded_quantity([RefundEvent(2, Decimal("379.96"))], price) == 2
    assert amazon_refunded_quantity([RefundEvent(2, Decimal("379.95"))], price) == 0


LINES = [
    LineRow("111", "HKS0401A3U", 2, Decimal("189.99")),
    LineRow("222", "CAB-HDMI-KVM-5FT", 1, Decimal("14.99")),
]


def test_money_refunds_that_reach_what_was_paid_take_every_unit():
    partial = [FactRow("refund", "222", "CAB-HDMI-KVM-5FT", 0, Decimal("0"), Decimal("14.99"))]
    assert after_sale(partial, LINES, Decimal("394.97")).whole_order is False
    full = [*partial, FactRow("refund", "111", "HKS0401A3U", 0, Decimal("0"), Decimal("379.98"))]
    assert after_sale(full, LINES, Decimal("394.97")).whole_order is True


def test_a_return_without_a_refund_takes_nothing_one_with_a_refund_takes_its_quantity():
    returned = [FactRow("return", None, "HKS0401A3U", 1, None, None)]
    assert after_sale(returned, LINES, Decimal("394.97")).refunded_by_sku is None
    refunded = [FactRow("return", None, "HKS0401A3U", 1, Decimal("189.99"), Decimal("189.99"))]
    assert after_sale(refunded, LINES, Decimal("394.97")).refunded_by_sku == {"HKS0401A3U": 1}


_FACT = st.builds(
    FactRow,
    kind=st.sampled_from(["refund", "return", "deleted"]),
    line_key=st.sampled_from(["111", "222", None, "999"]),
    sku=st.sampled_from(["HKS0401A3U", "CAB-HDMI-KVM-5FT", None]),
    quantity=st.integers(0, 3),
    principal=st.one_of(st.none(), st.decimals(0, 500, places=2)),
    amount=st.one_of(st.none(), st.decimals(0, 500, places=2)),
)


@settings(max_examples=80, deadline=None)
@given(facts=st.lists(_FACT, max_size=8), data=st.data())
def test_the_order_facts_arrive_in_never_changes_the_result(facts, data):
    shuffled = data.draw(st.permutations(facts))
    first = after_sale(facts, LINES, Decimal("394.97"))
    assert after_sale(shuffled, LINES, Decimal("394.97")) == first
    for sku, qty in (first.refunded_by_sku or {}).items():
        assert 0 < qty <= sum(line.quantity for line in LINES if line.sku == sku)


def test_events_naming_an_unknown_item_with_different_skus_never_overwrite_each_other():
    cable = FactRow("refund", "999", "CAB-HDMI-KVM-5FT", 1, Decimal("14.98"), None)
    switch = FactRow("refund", "999", "HKS0401A3U", 0, None, None)
    first = after_sale([cable, switch], LINES, Decimal("394.97"))
    assert first == after_sale([switch, cable], LINES, Decimal("394.97"))
    assert first.refunded_by_sku == {"CAB-HDMI-KVM-5FT": 1}


# ----------------------------------------------------------------------------- returns report
def test_the_returns_report_is_read_by_column_name_and_bad_rows_are_rejected_alone():
    text = (
        b"Order ID\tReturn request date\tMerchant SKU\tReturn quantity\tRefunded Amount\tCurrency code\tAmazon RMA ID\n"
        b"303-1234567-1234567\t2026-01-05\tHKS0401A3U\t1\t189.99\tUSD\tR1\n"
        b"303-1234567-1234567\t01/06/2026\tHKS0401A3U\ttwo\t\tUSD\tR2\n"
        b"\n"
        b"303-7654321-1234567\t2026-01-07T10:00:00+00:00\tCAB\t1\t\tUSD\tR3\n"
    )
    out = list(read_returns_report(io.BytesIO(text), NA))
    facts = [f for f in out if isinstance(f, OrderFact)]
    rejects = [r for r in out if isinstance(r, Rejected)]
    assert [(f.order_external_id, f.quantity, f.principal) for f in facts] == [
        ("303-1234567-1234567", 1, Decimal("189.99")),
        ("303-7654321-1234567", 1, None),
    ]
    assert [(r.record_id, r.field) for r in rejects] == [("303-1234567-1234567", "return quantity")]


def test_a_file_that_is_not_a_returns_report_is_refused_plainly():
    with pytest.raises(ValueError, match="not a returns report"):
        list(read_returns_report(io.BytesIO(b"amazon-order-id\tpurchase-date\n1\t2\n"), NA))


def test_a_refund_event_the_store_cannot_hold_is_rejected_alone_never_truncated():
    long_id = "303-" + "9" * 70
    out = map_refund_events([_event(order_id=long_id), _event()], NA)
    rejected = [r for r in out if isinstance(r, Rejected)]
    assert [(r.field, r.record_id) for r in rejected] == [("order_external_id", long_id)]
    assert [f.order_external_id for f in out if isinstance(f, OrderFact)] == ["303-1234567-1234567"]
    huge = map_refund_events([_event(principal=-1e13)], NA)
    assert [(r.field) for r in huge if isinstance(r, Rejected)] == ["principal"]


def test_a_returns_row_with_an_overlong_sku_is_rejected_naming_it():
    text = (
        "Order ID\tReturn request date\tMerchant SKU\tReturn quantity\n"
        f"303-1234567-1234567\t2026-01-05\t{'S' * 256}\t1\n"
        "303-1234567-1234567\t2026-01-05\tHKS0401A3U\t1\n"
    ).encode()
    out = list(read_returns_report(io.BytesIO(text), NA))
    assert [type(i).__name__ for i in out] == ["Rejected", "OrderFact"]
    assert isinstance(out[0], Rejected) and out[0].field == "sku"
