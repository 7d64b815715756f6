"""Shopify order files: every accepted shape, rejects that name record and field, replay."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.records import OrderRecord, Rejected
from vipsync.connectors.shopify.bulk_jsonl import assemble_bulk_orders
from vipsync.connectors.shopify.files import read_orders_file, replay_record

US = ShopifyShop(
    key="shopify-us", shop_domain="tesmart-us.myshopify.com", timezone="America/Los_Angeles", country="US"
)


def _read(data: bytes) -> list:
    return list(read_orders_file(io.BytesIO(data), US))


def _order(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "shopify/order.json").read_text())["order"]


def test_official_fixture_files_import_as_they_are(fixtures_dir):
    for name in ("order.json", "orders.json"):
        items = _read((fixtures_dir / "shopify" / name).read_bytes())
        assert [type(i) for i in items] == [OrderRecord], name
        assert items[0].external_id == "450789469"


@pytest.mark.parametrize(
    "shape", ["bare", "wrapped", "list_doc", "bare_list", "jsonl", "jsonl_wrapped", "one_line_doc"]
)
def test_every_documented_file_shape_yields_the_same_orders(fixtures_dir, shape):
    base = _order(fixtures_dir)
    orders = [dict(base, id=100 + i, name=f"#{100 + i}") for i in range(3)]
    data = {
        "bare": json.dumps(orders[0], indent=2),
        "wrapped": json.dumps({"order": orders[0]}, indent=2),
        "list_doc": json.dumps({"orders": orders}, indent=2),
        "bare_list": json.dumps(orders, indent=2),
        "jsonl": "\n".join(json.dumps(o) for o in orders) + "\n",
        "jsonl_wrapped": "\n".join(json.dumps({"order": o}) for o in orders),
        "one_line_doc": json.dumps({"orders": orders}),
    }[shape].encode()
    ids = [i.external_id for i in _read(data)]
    expected = ["100"] if shape in ("bare", "wrapped") else ["100", "101", "102"]
    assert ids == expected


def test_one_malformed_order_among_many_is_rejected_with_its_id_and_field(fixtures_dir):
    base = _order(fixtures_dir)
    lines = [json.dumps(dict(base, id=i)) for i in range(1, 200)]
    bad = dict(base, id=77)
    bad["line_items"] = [dict(base["line_items"][0], quantity=-2)]
    lines[76] = json.dumps(bad)
    lines.insert(10, "{not json")
    items = _read(("\n".join(lines)).encode())
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert len([i for i in items if isinstance(i, OrderRecord)]) == 198
    assert [(r.record_id, r.field) for r in rejected] == [("line 11", None), ("77", "line_items[0].quantity")]


def test_a_streamed_document_rejects_a_bad_order_and_keeps_the_rest(fixtures_dir):
    base = _order(fixtures_dir)
    orders = [dict(base, id=i) for i in range(1, 6)]
    orders[2] = dict(base, id=3, processed_at="yesterday")
    items = _read(json.dumps({"orders": orders}, indent=1).encode())
    assert [getattr(i, "external_id", None) or i.record_id for i in items] == ["1", "2", "3", "4", "5"]
    assert isinstance(items[2], Rejected) and items[2].field == "processed_at"


def test_unreadable_file_raises_value_error():
    with pytest.raises(ValueError):
        _read(b"order_id,sku\n1,HKS0401A3U\n")
    with pytest.raises(ValueError):
        _read(b'{\n  "orders": [ {"id": 1, "created_at": "2024-01-01T00:00:00Z"}, \n')


def _bulk_lines() -> list[dict]:
    def order(n):
        return {
            "id": f"gid://shopify/Order/{n}",
            "legacyResourceId": str(n),
            "name": f"#{n}",
            "processedAt": "2024-03-01T10:00:00Z",
            "updatedAt": "2024-03-02T10:00:00Z",
            "displayFinancialStatus": "PAID",
            "refunds": [{"id": f"gid://shopify/Refund/{n}0"}],
        }

    def line(n, i, sku, q):
        return {
            "id": f"gid://shopify/LineItem/{n}{i}",
            "sku": sku,
            "title": sku or "Wrap",
            "quantity": q,
            "currentQuantity": q,
            "__parentId": f"gid://shopify/Order/{n}",
        }

    return [
        order(1),
        line(1, 1, "HKS0401A3U", 2),
        order(2),
        line(2, 1, "HMA0808A10", 1),
        # A child of order 1 after order 2: Shopify only promises "after its parent".
        line(1, 2, "", 1),
        {
            "id": "gid://shopify/RefundLineItem/5",
            "quantity": 1,
            "lineItem": {"id": "gid://shopify/LineItem/11"},
            "__parentId": "gid://shopify/Refund/10",
        },
    ]


def test_bulk_result_children_are_joined_to_their_order_even_when_late():
    data = "\n".join(json.dumps(line) for line in _bulk_lines()).encode()
    first, second = _read(data)
    assert [(line.sku, line.quantity, line.refunded_quantity) for line in first.lines] == [
        ("HKS0401A3U", 2, 1),
        ("", 1, 0),
    ]
    assert [line.sku for line in second.lines] == ["HMA0808A10"]
    assert first.raw_kind == "graphql_order"


def test_official_bulk_example_children_are_never_taken_for_line_items(fixtures_dir):
    path = fixtures_dir / "shopify/bulk_operation_products_example.jsonl"
    lines = enumerate(path.read_bytes().splitlines(), start=1)
    skipped: Counter[str] = Counter()
    products = list(assemble_bulk_orders(lines, skipped=skipped))
    assert len(products) == 5
    first = products[0]
    assert first["id"] == "gid://shopify/Product/1921569226808"
    assert first["lineItems"] == []  # its two ProductVariant children are not line items
    variants = sum(1 for raw in path.read_bytes().splitlines() if b"ProductVariant" in raw)
    assert skipped == Counter({"ProductVariant": variants})


def test_bulk_child_without_parent_is_rejected():
    lines = [
        *_bulk_lines(),
        {
            "id": "gid://shopify/LineItem/99",
            "sku": "X",
            "quantity": 1,
            "__parentId": "gid://shopify/Order/404",
        },
    ]
    items = _read("\n".join(json.dumps(line) for line in lines).encode())
    assert [(i.record_id, i.field) for i in items if isinstance(i, Rejected)] == [("line 7", "__parentId")]


def test_replay_maps_a_fixed_record_and_an_unparsed_line(fixtures_dir):
    base = _order(fixtures_dir)
    assert [r.external_id for r in replay_record(base, US)] == ["450789469"]
    fixed_line = {"unparsed_line": json.dumps(base)}
    assert [r.external_id for r in replay_record(fixed_line, US)] == ["450789469"]
    assert isinstance(next(replay_record({"unparsed_line": "{still broken"}, US)), Rejected)


def test_replay_maps_a_stored_graphql_order_from_the_sync():
    node = {
        "id": "gid://shopify/Order/7",
        "legacyResourceId": "7",
        "name": "#7",
        "processedAt": "2024-05-01T10:00:00Z",
        "updatedAt": "2024-05-02T10:00:00Z",
        "lineItems": [
            {"id": "gid://shopify/LineItem/70", "sku": "HKS0401A3U", "title": "KVM", "quantity": 1}
        ],
    }
    (record,) = replay_record(node, US)
    assert record.external_id == "7" and record.raw_kind == "graphql_order"
    assert [(line.line_key, line.sku) for line in record.lines] == [("70", "HKS0401A3U")]
