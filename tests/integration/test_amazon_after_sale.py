"""Amazon after the sale against the fake SP-API over HTTP, into the real store (SQLite and
PostgreSQL): refund events from the Finances API, replacement orders, the returns report,
and facts that arrive before their order."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.config.stores import load_stores
from vipsync.connectors.amazon.client import SpApiClient
from vipsync.connectors.amazon.finances import read_returns_report
from vipsync.devtools.amazon_data import FakeItem, FakeOrder, generate_orders
from vipsync.devtools.fake_spapi import FakeSpApi, ShiftedClock, write_fake_stores
from vipsync.store.models import OrderFactRow, Unit, UnitTag
from vipsync.store.repository import Repository
from vipsync.workers.amazon_jobs import REFUNDS_STREAM, sync_account
from vipsync.workers.tagging import tag_pending

MARKETS = ("DE", "FR")


def _fake_env(context, tmp_path, monkeypatch, **fake_kwargs):
    clock = ShiftedClock()
    orders = generate_orders(40, markets=MARKETS, seed=31, span_days=5)
    with FakeSpApi(orders=orders, rate_scale=2000, clock=clock, **fake_kwargs) as fake:
        env: dict[str, str] = {}
        key = write_fake_stores(tmp_path / "stores.toml", url=fake.url, markets=MARKETS, environ=env)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        context._stores = load_stores(tmp_path / "stores.toml")
        yield context, fake, key, clock


@pytest.fixture
def fake_env(context, tmp_path, monkeypatch):
    yield from _fake_env(context, tmp_path, monkeypatch)


@pytest.fixture
def sqlite_ctx(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path / "data"))
    ctx = Context(settings=Settings(), database_url=sqlite_url)
    yield ctx
    ctx.dispose()


def _sync(ctx, key, clock, **kwargs):
    client = SpApiClient.for_account(ctx.stores.amazon(key), clock=clock, retry_base_s=0.02)
    return sync_account(ctx, key, client=client, report_poll_interval_s=0.02, **kwargs)


def _tags(ctx, order_id: str) -> dict[tuple[str, int], UnitTag]:
    with ctx.session_factory() as s:
        rows = s.execute(
            select(Unit.sku, Unit.ordinal, UnitTag)
            .join(UnitTag, UnitTag.unit_id == Unit.id)
            .where(Unit.order_external_id == order_id)
        ).all()
    return {(sku, ordinal): tag for sku, ordinal, tag in rows}


def _shipped(fake) -> list[FakeOrder]:
    return [o for o in fake.orders.values() if o.status == "Shipped" and o.items]


def test_a_refund_posted_after_the_first_sync_takes_the_unit_at_the_next_tagging(fake_env):
    ctx, fake, key, clock = fake_env
    _sync(ctx, key, clock)
    tag_pending(ctx)
    order = _shipped(fake)[0]
    item = order.items[0]
    before = _tags(ctx, order.order_id)
    highest = (item.sku, max(n for sku, n in before if sku == item.sku))  # units go highest first
    assert before[highest].original_warranty_end is not None

    clock.jump(minutes=10)
    fake.refund(order.order_id, {item.item_id: 1})
    clock.jump(minutes=5)  # the event is older than PostedBefore's 2 minutes
    result = _sync(ctx, key, clock)
    assert result.facts_inserted == 1
    assert fake.calls["listFinancialEvents"] >= 2 and fake.violations["listFinancialEvents"] == 0

    tag_pending(ctx)
    after = _tags(ctx, order.order_id)
    taken = after[highest]
    assert "refunded" in taken.reasons and not taken.valid_purchase
    assert taken.original_warranty_end is None and taken.extended_warranty_end is None
    others = {k: t for k, t in after.items() if k != highest}
    assert all(t.original_warranty_end is not None for t in others.values())

    # Reading the overlap again changes nothing.
    clock.jump(minutes=5)
    again = _sync(ctx, key, clock)
    assert (again.facts_inserted, again.facts_known) == (0, 1)


def test_an_event_posted_late_in_the_last_48_hours_is_caught_by_the_overlap(context, tmp_path, monkeypatch):
    for ctx, fake, key, clock in _fake_env(context, tmp_path, monkeypatch, finance_delay_s=6 * 3600):
        _sync(ctx, key, clock)
        order = _shipped(fake)[0]
        fake.refund(order.order_id, posted_at=clock.now() - timedelta(hours=1))
        clock.jump(minutes=5)
        assert _sync(ctx, key, clock).facts_inserted == 0  # not visible yet at Amazon
        clock.jump(hours=12)  # now visible, posted before the bookmark: the overlap reads it
        assert _sync(ctx, key, clock).facts_inserted == len(order.items)
        with ctx.session_factory() as s:
            cursor = Repository(s).get_cursor(key, REFUNDS_STREAM)
        assert cursor is not None and datetime.fromisoformat(cursor.value) > clock.now() - timedelta(
            minutes=5
        )


def test_a_replacement_orders_units_get_no_windows_and_the_replaced_unit_keeps_its_own(fake_env):
    ctx, fake, key, clock = fake_env
    original = _shipped(fake)[0]
    now = clock.now().replace(microsecond=0)
    repl = FakeOrder(
        order_id="028-0000000-0000001",
        market=original.market,
        purchased_at=now - timedelta(hours=1),
        updated_at=now - timedelta(minutes=30),
        status="Shipped",
        ship_country=original.ship_country,
        postal_code=original.postal_code,
        items=[replace(original.items[0], item_id="99990000000001", quantity=1)],
        replaced_order_id=original.order_id,
    )
    fake.sim.upsert(repl)
    _sync(ctx, key, clock)
    tag_pending(ctx)
    for tag in _tags(ctx, repl.order_id).values():
        assert tag.reasons[-1] == "replacement_order" and not tag.valid_purchase
        assert tag.original_warranty_end is None and tag.extended_warranty_end is None
    kept = _tags(ctx, original.order_id)
    assert kept and all(t.original_warranty_end is not None for t in kept.values())


def test_a_refund_before_its_order_is_applied_when_the_order_arrives(sqlite_ctx, tmp_path, monkeypatch):
    clock = ShiftedClock()
    now = clock.now().replace(microsecond=0)
    order = FakeOrder(
        order_id="028-1111111-2222222",
        market="DE",
        purchased_at=now - timedelta(days=3),
        updated_at=now - timedelta(hours=1),
        status="Shipped",
        ship_country="DE",
        postal_code="10115",
        items=[
            FakeItem(
                "51111111111111", "HKS0401A3U", "TESmart 4 Port HDMI KVM Switch", "B0A", 2, Decimal("189.99")
            )
        ],
    )
    with FakeSpApi(orders=[], rate_scale=2000, clock=clock) as fake:
        env: dict[str, str] = {}
        key = write_fake_stores(tmp_path / "stores.toml", url=fake.url, markets=("DE",), environ=env)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        sqlite_ctx._stores = load_stores(tmp_path / "stores.toml")
        # The refund event is visible first (e.g. an order outside the orders window).
        fake.sim.orders[order.order_id] = order  # known to the simulator for its prices...
        fake.refund(order.order_id, {"51111111111111": 1}, posted_at=now - timedelta(hours=2))
        del fake.sim.orders[order.order_id]  # ...but not yet served by getOrders
        assert _sync(sqlite_ctx, key, clock).facts_inserted == 1
        with sqlite_ctx.session_factory() as s:
            assert s.execute(select(OrderFactRow.order_external_id)).scalars().all() == [order.order_id]
        clock.jump(minutes=1)
        fake.sim.upsert(replace(order, updated_at=clock.now().replace(microsecond=0)))  # now it arrives
        clock.jump(minutes=5)
        assert _sync(sqlite_ctx, key, clock).inserted == 1
        tag_pending(sqlite_ctx)
        tags = _tags(sqlite_ctx, order.order_id)
        assert "refunded" in tags[("HKS0401A3U", 2)].reasons
        assert tags[("HKS0401A3U", 1)].original_warranty_end is not None


def test_the_returns_report_records_refunds_and_takes_units_like_refund_events(fake_env):
    ctx, fake, key, clock = fake_env
    _sync(ctx, key, clock)
    order = _shipped(fake)[1]
    item = order.items[0]
    account = ctx.stores.amazon(key)
    report = (
        "Order ID\tOrder date\tReturn request date\tReturn request status\tAmazon RMA ID\tMerchant SKU\t"
        "Return quantity\tResolution\tRefunded Amount\tCurrency code\n"
        f"{order.order_id}\t2026-01-01\t2026-01-05\tApproved\tRMA1\t{item.sku}\t1\tStandardRefund\t"
        f"{item.unit_price}\tEUR\n"
        f"{order.order_id}\t2026-01-01\t2026-01-06\tApproved\tRMA2\t{item.sku}\t1\tReturnWithoutRefund\t\tEUR\n"
        "bad-row\t\t2026-01-06\t\t\t\tnot-a-number\n"
    ).encode()
    items = list(read_returns_report(io.BytesIO(report), account))
    facts = [f for f in items if not hasattr(f, "message")]
    rejects = [r for r in items if hasattr(r, "message")]
    assert len(facts) == 2 and [(r.record_id, r.field) for r in rejects] == [("bad-row", "merchant sku")]
    with ctx.session_factory() as s:
        Repository(s).record_facts(facts)
        s.commit()
    tag_pending(ctx)
    tags = _tags(ctx, order.order_id)
    refunded = [k for k, t in tags.items() if "refunded" in t.reasons]
    highest = max(n for sku, n in tags if sku == item.sku)
    assert refunded == [(item.sku, highest)]  # one unit: the return without refund takes none


def test_finances_calls_beyond_the_burst_are_paced_within_the_documented_rate(
    sqlite_ctx, tmp_path, monkeypatch
):
    for ctx, fake, key, clock in _fake_env(sqlite_ctx, tmp_path, monkeypatch):
        for o in _shipped(fake)[:8]:
            fake.refund(o.order_id, posted_at=clock.now() - timedelta(hours=3))
        since = (clock.now() - timedelta(days=1100)).date().isoformat()
        result = _sync(ctx, key, clock, since=since)  # 37 slices of 30 days: past the burst of 30
        assert fake.calls["listFinancialEvents"] >= 37
        assert fake.violations["listFinancialEvents"] == 0 and fake.rule_violations == []
        assert result.facts_inserted == sum(len(o.items) for o in _shipped(fake)[:8])
        with ctx.session_factory() as s:
            stored = s.execute(select(OrderFactRow)).scalars().all()
        assert len({f.fact_key for f in stored}) == len(stored) == result.facts_inserted
        assert all(f.posted_at.utcoffset() == timedelta(0) for f in stored)
