"""One malformed record among 10,000 never stops or corrupts the rest of the import."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from sqlalchemy import func, select

from vipsync.config.settings import CONFIG_DIR
from vipsync.config.stores import load_stores
from vipsync.connectors.shopify.files import read_orders_file
from vipsync.store.models import ImportError_, Order, Unit
from vipsync.workers.imports import ImportSummary, import_records

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


def _returns_report(rows: int) -> bytes:
    lines = ["Order ID\tReturn request date\tAmazon RMA ID\tMerchant SKU\tReturn quantity\tRefunded Amount"]
    lines += [f"111-0000000-{i:07d}\t2026-01-05\tRMA{i}\tHKS0401A3U\t1\t169.99" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _one_refused(items, bad: int):
    """The reader's facts, fact ``bad`` with a quantity no column can hold (past the
    reader's own limits: what a reader missed, the writer must still isolate)."""
    for i, item in enumerate(items):
        yield dataclasses.replace(item, quantity=2**70) if i == bad else item


def test_a_fact_the_database_refuses_is_rejected_alone_and_the_rest_of_its_batch_is_kept(session_factory):
    from vipsync.connectors.amazon.finances import read_returns_report
    from vipsync.store.models import OrderFactRow
    from vipsync.workers.imports import import_facts

    account = load_stores(CONFIG_DIR / "stores.toml").amazon("amazon-eu")
    report = _returns_report(50)

    def run():
        return import_facts(
            session_factory,
            _one_refused(read_returns_report(io.BytesIO(report), account), 17),
            kind="amazon-returns",
            store_key=account.key,
            batch_size=20,
        )

    summary = run()
    assert summary.as_dict() == {"read": 50, "inserted": 49, "updated": 0, "unchanged": 0, "rejected": 1}
    with session_factory() as s:
        kept = set(s.execute(select(OrderFactRow.order_external_id)).scalars())
        error = s.execute(select(ImportError_)).scalar_one()
    assert len(kept) == 49 and "111-0000000-0000017" not in kept
    assert error.record_id.startswith("111-0000000-0000017/return/")
    assert error.source == "amazon-returns" and error.message.startswith("could not be stored: ")
    assert json.loads(error.raw)["row"]["order_id"] == "111-0000000-0000017"  # replayable as a row
    again = run()
    assert (again.inserted, again.unchanged, again.rejected) == (0, 49, 1)


def _thirty_orders_in_tens(session_factory, *, wrap=lambda records: records, **kw) -> ImportSummary:
    """30 generated orders imported into shopify-us from one file in batches of 10; ``wrap``
    may change the records on their way (e.g. a reader that breaks after them)."""
    shop = load_stores(CONFIG_DIR / "stores.toml").shopify("shopify-us")
    body = ("\n".join(json.dumps(_order(i)) for i in range(30)) + "\n").encode()
    records = wrap(read_orders_file(io.BytesIO(body), shop))
    return import_records(session_factory, records, kind="shopify", store_key=shop.key, batch_size=10, **kw)


def test_the_objects_older_than_a_run_are_frozen_during_it_and_handed_back_after(session_factory, tmp_path):
    """A run leaves the collector's full collections to its own objects (gc.freeze) and
    gives the older ones back at its end, whether it ends well or not."""
    import gc

    seen: list[int] = []
    summary = _thirty_orders_in_tens(session_factory, on_batch=lambda _: seen.append(gc.get_freeze_count()))
    assert summary.inserted == 30 and len(seen) == 3
    assert all(n > 0 for n in seen)
    assert gc.get_freeze_count() == 0

    def failing(records):
        yield from records
        raise RuntimeError("reader broke")

    with pytest.raises(RuntimeError):
        _thirty_orders_in_tens(session_factory, wrap=failing)
    assert gc.get_freeze_count() == 0


def test_a_run_refreshes_the_planners_statistics_as_it_fills_the_store(session_factory, monkeypatch):
    """On PostgreSQL the orders and raw payloads are analyzed when a run has inserted
    ANALYZE_FIRST rows, then twice as many, ...: the statistics count the rows of the last
    analyze (the planner then looks keys up by index). SQLite keeps no statistics."""
    from sqlalchemy import text

    from tests.store_helpers import planner_row_counts
    from vipsync.workers import runs

    monkeypatch.setattr(runs, "ANALYZE_FIRST", 10)
    summary = _thirty_orders_in_tens(session_factory)
    assert summary.inserted == 30
    with session_factory() as s:
        if s.get_bind().dialect.name == "postgresql":
            counted = planner_row_counts(s, "orders", "raw_payloads")
            # Analyzed at 10 and 20 inserted (the next at 40); never analyzed would be -1
            # (30: a server whose autovacuum came by since).
            assert counted["orders"] in (20, 30) and counted["raw_payloads"] in (20, 30)
        else:
            assert (
                s.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar()
                == 0
            )
