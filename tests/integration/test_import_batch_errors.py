"""One malformed record among 10,000 never stops or corrupts the rest of the import."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from vipsync.config.settings import CONFIG_DIR
from vipsync.config.stores import load_stores
from vipsync.connectors.shopify.files import read_orders_file
from vipsync.store.models import ImportError_, Order, Unit
from vipsync.workers.imports import import_records

N = 10_000
BAD = 4_321


def _order(i: int) -> dict:
    ts = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00-05:00"
    return {
        "id": 7_000_000 + i,
        "name": f"#{20000 + i}",
        "email": f"b{i}@example.com",
        "created_at": ts,
        "processed_at": ts,
        "updated_at": ts,
        "financial_status": "paid",
        "test": False,
        "cancelled_at": None,
        "currency": "USD",
        "total_price": "169.99",
        "refunds": [],
        "discount_codes": [],
        "line_items": [
            {
                "id": 9_000_000 + i,
                "sku": "HKS0401A3U",
                "title": "TESmart 4-Port HDMI KVM Switch",
                "quantity": 1 + i % 2,
                "price": "169.99",
            }
        ],
        "shipping_address": {"country_code": "US", "zip": "40202"},
    }


def test_one_malformed_record_among_10000_is_rejected_alone(session_factory, tmp_path):
    path = tmp_path / "orders.jsonl"
    with path.open("w") as fh:
        for i in range(N):
            order = _order(i)
            if i == BAD:
                order["processed_at"] = "yesterday-ish"
            fh.write(json.dumps(order) + "\n")
    shop = load_stores(CONFIG_DIR / "stores.toml").shopify("shopify-us")
    with path.open("rb") as fh:
        summary = import_records(
            session_factory, read_orders_file(fh, shop), kind="shopify", store_key=shop.key
        )
    assert summary.as_dict() == {"read": N, "inserted": N - 1, "updated": 0, "unchanged": 0, "rejected": 1}
    with session_factory() as s:
        assert s.execute(select(func.count()).select_from(Order)).scalar_one() == N - 1
        expected_units = sum(1 + i % 2 for i in range(N) if i != BAD)
        assert s.execute(select(func.count()).select_from(Unit)).scalar_one() == expected_units
        error = s.execute(select(ImportError_)).scalar_one()
    assert error.record_id == str(7_000_000 + BAD)
    assert error.field == "processed_at"
    assert error.source == "shopify" and error.store_key == "shopify-us" and error.status == "open"
    assert error.message == "not an ISO 8601 timestamp"
    assert json.loads(error.raw)["id"] == 7_000_000 + BAD  # kept whole, ready to replay
