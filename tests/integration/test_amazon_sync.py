"""The Amazon sync job against the fake SP-API over HTTP, into the real store (SQLite and
PostgreSQL): paging, bookmarks, report backfill, unit identity across sources, faults."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.config.stores import load_stores
from vipsync.connectors.amazon.client import SpApiClient
from vipsync.connectors.amazon.flatfile import read_all_orders_report
from vipsync.connectors.amazon.mapping import map_order_v0
from vipsync.devtools.amazon_data import generate_orders, order_items_v0, order_v0, report_text
from vipsync.devtools.fake_spapi import FakeSpApi, ShiftedClock, write_fake_stores
from vipsync.errors import PermanentSourceError, TransientSourceError
from vipsync.store.models import ImportError_, Order, Unit
from vipsync.store.repository import Repository
from vipsync.workers.amazon_jobs import STREAM, sync_account

MARKETS = ("DE", "UK", "FR")


def _fake_env(context, tmp_path, monkeypatch):
    clock = ShiftedClock()
    orders = generate_orders(250, markets=MARKETS, seed=21, span_days=20)
    with FakeSpApi(orders=orders, rate_scale=2000, clock=clock) as fake:
        env: dict[str, str] = {}
        key = write_fake_stores(tmp_path / "stores.toml", url=fake.url, markets=MARKETS, environ=env)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        context._stores = load_stores(tmp_path / "stores.toml")
        yield context, fake, key, clock


@pytest.fixture
def fake_env(context, tmp_path, monkeypatch):
    """A fake SP-API (fast rates), a stores file pointing at it, a shared shifted clock;
    on SQLite and on PostgreSQL."""
    yield from _fake_env(context, tmp_path, monkeypatch)


@pytest.fixture
def fake_env_sqlite(sqlite_url, tmp_path, monkeypatch):
    """The same on SQLite only (the fault matrix: the store is not what it tests)."""
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path / "data"))
    ctx = Context(settings=Settings(), database_url=sqlite_url)
    try:
        yield from _fake_env(ctx, tmp_path, monkeypatch)
    finally:
        ctx.dispose()


def _client(ctx, key, clock):
    return SpApiClient.for_account(ctx.stores.amazon(key), clock=clock, retry_base_s=0.02)


def _sync(ctx, key, clock, **kwargs):
    kwargs.setdefault("report_poll_interval_s", 0.02)
    return sync_account(ctx, key, client=_client(ctx, key, clock), **kwargs)


def _orders_and_units(ctx, key):
    with ctx.session_factory() as s:
        orders = s.execute(select(func.count()).select_from(Order).where(Order.store_key == key)).scalar_one()
        units = set(
            s.execute(
                select(Unit.order_external_id, Unit.sku, Unit.ordinal).where(Unit.removed.is_(False))
            ).all()
        )
        removed = s.execute(select(func.count()).select_from(Unit).where(Unit.removed.is_(True))).scalar_one()
    return orders, units, removed


def _cursor(ctx, key):
    with ctx.session_factory() as s:
        cur = Repository(s).get_cursor(key, STREAM)
        return cur.value if cur else None


def _expected_units(fake):
    return {(o.order_id, sku, n) for o in fake.orders.values() for sku, n in _keys(o)}


def _keys(order):
    counts: dict[str, int] = {}
    for item in order.items:
        for _ in range(item.quantity):
            counts[item.sku] = counts.get(item.sku, 0) + 1
            yield item.sku, counts[item.sku]


def test_incremental_sync_pages_through_every_order_and_moves_the_bookmark(fake_env):
    ctx, fake, key, clock = fake_env
    since = (clock.now() - timedelta(days=25)).date().isoformat()
    result = sync_account(ctx, key, since=since, client=_client(ctx, key, clock))
    assert result.pages == 3 and result.inserted == 250 and result.rejected == 0
    assert fake.calls["getOrderItems"] == 250
    orders, units, removed = _orders_and_units(ctx, key)
    assert orders == 250 and units == _expected_units(fake) and removed == 0
    bookmark = datetime.fromisoformat(_cursor(ctx, key))
    assert clock.now() - timedelta(minutes=3) < bookmark <= clock.now() - timedelta(minutes=2)
    assert fake.total_violations == 0 and fake.rule_violations == []

    # Nothing changed: one getOrders call, no item calls, the bookmark moves on.
    clock.jump(minutes=5)
    again = _sync(ctx, key, clock)
    assert again.read == 0 and fake.calls["getOrderItems"] == 250
    assert datetime.fromisoformat(_cursor(ctx, key)) > bookmark


def test_status_change_updates_the_order_without_calling_get_order_items(fake_env):
    ctx, fake, key, clock = fake_env
    _sync(ctx, key, clock, since=(clock.now() - timedelta(days=25)).date().isoformat())
    shipped = [o for o in fake.orders.values() if o.status == "Unshipped"][:5]
    for o in shipped:
        fake.sim.touch(o.order_id, status="Shipped")
    clock.jump(minutes=5)
    before = fake.calls["getOrderItems"]
    result = _sync(ctx, key, clock)
    assert result.updated == len(shipped) and fake.calls["getOrderItems"] == before
    with ctx.session_factory() as s:
        statuses = set(
            s.execute(
                select(Order.order_status).where(Order.external_id.in_([o.order_id for o in shipped]))
            ).scalars()
        )
    assert statuses == {"shipped"}
    assert _orders_and_units(ctx, key)[1] == _expected_units(fake)


def test_report_backfill_then_orders_api_keeps_the_same_units(fake_env):
    ctx, fake, key, clock = fake_env
    result = _sync(
        ctx, key, clock, backfill=True, since=(clock.now() - timedelta(days=25)).date().isoformat()
    )
    assert result.inserted == 250 and fake.calls["createReport"] == 1 and fake.calls["download"] == 1
    _, units_from_report, _ = _orders_and_units(ctx, key)
    assert units_from_report == _expected_units(fake)

    for o in list(fake.orders.values()):
        fake.sim.touch(o.order_id)  # every order is updated after the report
    clock.jump(minutes=5)
    api = _sync(ctx, key, clock)
    assert api.updated == 250 and api.inserted == 0
    orders, units, removed = _orders_and_units(ctx, key)
    assert orders == 250 and units == units_from_report and removed == 0
    assert fake.total_violations == 0


def test_report_rows_then_orders_api_items_yield_identical_units_in_the_repository(db_url, session_factory):
    account = load_stores(
        __import__("pathlib").Path(__file__).resolve().parents[2] / "vipsync" / "config" / "stores.toml"
    ).amazon("amazon-eu")
    orders = generate_orders(120, markets=MARKETS, seed=33)
    report = list(read_all_orders_report(io.BytesIO(report_text(orders)), account))
    later = [o.touched(o.updated_at + timedelta(hours=1)) for o in orders]
    api = [map_order_v0(order_v0(o), order_items_v0(o), account) for o in later]
    with session_factory() as s:
        Repository(s).upsert_orders(report)
        s.commit()
        first = set(s.execute(select(Unit.id, Unit.order_external_id, Unit.sku, Unit.ordinal)).all())
    with session_factory() as s:
        counts = Repository(s).upsert_orders(api)
        s.commit()
        second = set(s.execute(select(Unit.id, Unit.order_external_id, Unit.sku, Unit.ordinal)).all())
        removed = s.execute(select(func.count()).select_from(Unit).where(Unit.removed.is_(True))).scalar_one()
    assert counts.updated == 120
    assert first == second and removed == 0  # the same unit rows, not new ones


@pytest.mark.parametrize(
    "kind", ["429", "429_empty", "500", "503_html", "200_empty", "expired_token", "slow"]
)
def test_every_injected_fault_is_survived_with_no_order_lost_or_duplicated(fake_env_sqlite, kind):
    ctx, fake, key, clock = fake_env_sqlite
    fake.inject(kind, op="getOrders", skip=1, delay_s=0.2)
    fake.inject(kind, op="getOrderItems", skip=40, delay_s=0.2)
    fake.inject(kind, op="getOrderItems", skip=90, delay_s=0.2)
    result = _sync(ctx, key, clock, since=(clock.now() - timedelta(days=25)).date().isoformat())
    assert fake.faults_served[kind] == 3
    orders, units, removed = _orders_and_units(ctx, key)
    assert result.inserted == 250 and orders == 250 and units == _expected_units(fake) and removed == 0
    assert fake.total_violations == 0
    assert _cursor(ctx, key) is not None


def test_token_expiry_mid_sync_is_refreshed_and_the_sync_completes(fake_env):
    ctx, fake, key, clock = fake_env
    fake.inject("expired_token", op="getOrderItems", skip=120)
    result = _sync(ctx, key, clock, since=(clock.now() - timedelta(days=25)).date().isoformat())
    assert result.inserted == 250 and fake.calls["lwa"] == 2


def test_undecodable_next_token_fails_without_moving_the_bookmark_and_a_rerun_recovers(fake_env):
    ctx, fake, key, clock = fake_env
    _sync(ctx, key, clock, since=(clock.now() - timedelta(days=25)).date().isoformat())
    bookmark = _cursor(ctx, key)
    touched = [o.order_id for o in list(fake.orders.values())[:150]]
    for oid in touched:
        fake.sim.touch(oid, status="Shipped")
    clock.jump(minutes=5)
    fake.inject("bad_next_token", op="getOrders")
    with pytest.raises(PermanentSourceError, match="NextToken"):
        _sync(ctx, key, clock)
    assert _cursor(ctx, key) == bookmark
    result = _sync(ctx, key, clock)
    assert _cursor(ctx, key) != bookmark
    with ctx.session_factory() as s:
        statuses = set(s.execute(select(Order.order_status).where(Order.external_id.in_(touched))).scalars())
    assert statuses == {"shipped"} and result.read == 150


def test_a_response_that_is_not_a_verified_page_never_moves_the_bookmark(fake_env):
    ctx, fake, key, clock = fake_env
    fake.inject("200_empty", op="getOrders", times=20)
    with pytest.raises(TransientSourceError):
        _sync(ctx, key, clock, since=(clock.now() - timedelta(days=25)).date().isoformat())
    assert _cursor(ctx, key) is None and _orders_and_units(ctx, key)[0] == 0


def test_fatal_report_is_recorded_for_ops_and_cancelled_report_means_no_data(fake_env):
    ctx, fake, key, clock = fake_env
    since = (clock.now() - timedelta(days=25)).date().isoformat()
    fake.inject("report_fatal", op="report")
    with pytest.raises(PermanentSourceError, match="FATAL"):
        _sync(ctx, key, clock, backfill=True, since=since)
    with ctx.session_factory() as s:
        err = s.execute(select(ImportError_)).scalars().one()
    assert err.field == "processingStatus" and "FATAL" in err.message and _cursor(ctx, key) is None

    fake.inject("report_cancelled", op="report")
    result = _sync(ctx, key, clock, backfill=True, since=since)
    assert any("CANCELLED" in n for n in result.notes) and result.inserted == 0
    assert _cursor(ctx, key) is not None


def test_failed_backfill_resumes_at_the_window_that_failed(fake_env):
    ctx, fake, key, clock = fake_env
    since = (clock.now() - timedelta(days=45)).date().isoformat()  # two report windows
    fake.inject("report_fatal", op="report", skip=1)
    with pytest.raises(PermanentSourceError):
        _sync(ctx, key, clock, backfill=True, since=since)
    first_window_orders = _orders_and_units(ctx, key)[0]
    assert 0 < first_window_orders < 250 and fake.calls["createReport"] == 2
    result = _sync(ctx, key, clock, backfill=True, since=since)
    assert fake.calls["createReport"] == 3 and any("resumed" in n for n in result.notes)
    orders, units, _ = _orders_and_units(ctx, key)
    assert orders == 250 and units == _expected_units(fake)
