"""The Shopify sync against the fake Admin API (real ShopifyAPI client, real databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.connectors.shopify.queries import page_size_for_cost
from vipsync.connectors.shopify.webhooks import SIXTY_DAY_NOTE
from vipsync.devtools.fake_shopify import FakeLine, FakeShopify
from vipsync.errors import PermanentSourceError, TransientSourceError
from vipsync.store.models import ImportError_, Order, OrderLineRow, RawPayload
from vipsync.store.repository import Repository
from vipsync.workers.shopify_jobs import make_client, sync_shop

THREE_PAGES = 2 * page_size_for_cost() + 10  # orders filling two pages and part of a third
FOUR_PAGES = 3 * page_size_for_cost() + 10

KEY = "shopify-us"


@pytest.fixture
def fake():
    # A small bucket refilled fast: the client has to wait for it, the tests stay quick.
    with FakeShopify(orders=0, seed=11, bucket_size=1000, restore_rate=4000, bulk_delay_s=0.1) as server:
        yield server


def _context(fake: FakeShopify, db_url: str, tmp_path, monkeypatch) -> Context:
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml(key=KEY))
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    settings = Settings(stores_file=stores, data_dir=tmp_path / "data", database_url=db_url)
    return Context(settings=settings, database_url=db_url)


@pytest.fixture
def ctx(fake, db_url, tmp_path, monkeypatch):
    context = _context(fake, db_url, tmp_path, monkeypatch)
    yield context
    context.dispose()


@pytest.fixture
def sqlite_ctx(fake, sqlite_url, tmp_path, monkeypatch):
    context = _context(fake, sqlite_url, tmp_path, monkeypatch)
    yield context
    context.dispose()


def _client(ctx, **kw):
    kw.setdefault("backoff", lambda attempt: 0.02)
    return make_client(ctx.stores.shopify(KEY), **kw)


def _sync(ctx, **kw):
    kw.setdefault("client", _client(ctx))
    kw.setdefault("bulk_poll_s", 0.05)
    # These tests are about the paged path whatever the window's size; the switch of a large
    # window to a bulk operation has its own tests (incremental_bulk=True, the default).
    kw.setdefault("incremental_bulk", False)
    return sync_shop(ctx, KEY, **kw)


def _counts(ctx) -> dict[str, int]:
    with ctx.session_factory() as s:
        return Repository(s).counts()


def _distinct_orders(ctx) -> int:
    with ctx.session_factory() as s:
        return s.execute(select(func.count(func.distinct(Order.external_id)))).scalar_one()


def _cursor(ctx) -> datetime | None:
    with ctx.session_factory() as s:
        cur = Repository(s).get_cursor(KEY, "orders")
        return datetime.fromisoformat(cur.value) if cur and cur.value else None


def _expected_units(fake: FakeShopify) -> int:
    return sum(
        line.current + sum(q for _, _, items in o.refunds for _, lid, q in items if lid == line.id)
        for o in (fake.order(i) for i in fake.order_ids)
        for line in o.lines
    )


def test_incremental_sync_stores_every_order_once_and_moves_the_bookmark(fake, ctx):
    fake.add_orders(120)
    result = _sync(ctx)
    assert (result.read, result.inserted, result.rejected) == (120, 120, 0)
    counts = _counts(ctx)
    assert counts["orders"] == _distinct_orders(ctx) == 120
    assert counts["units"] == _expected_units(fake)
    newest = max(fake.order(i).updated_at for i in fake.order_ids)
    assert _cursor(ctx) == newest
    assert result.api_calls == result.pages + 1 == fake.counters["graphql"]  # the pages and one scope check
    assert fake.counters["empty_bucket"] == 0


def test_rereading_the_overlap_creates_no_duplicates(fake, sqlite_ctx):
    ctx = sqlite_ctx
    fake.add_orders(40)
    recent = fake.order_ids[5]
    fake.update_order(recent, at=datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30))
    first = _sync(ctx)
    # The bookmark stops at the sync's start minus the overlap, before the recent update.
    assert _cursor(ctx) <= datetime.now(UTC) - timedelta(seconds=100)
    second = _sync(ctx)
    assert first.inserted == 40
    assert (second.read, second.inserted, second.updated, second.unchanged) == (1, 0, 0, 1)
    assert _counts(ctx)["orders"] == 40


def test_order_updated_during_a_sync_is_picked_up_by_the_next(fake, sqlite_ctx):
    ctx = sqlite_ctx
    fake.add_orders(THREE_PAGES)
    target = fake.order_ids[0]  # the oldest update: it is on the first page
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    pages = []

    def change_during_sync(variables):
        pages.append(variables.get("after"))
        if len(pages) == 2:
            fake.update_order(target, at=later, cancelled=True)

    fake.on_orders_page = change_during_sync
    first = _sync(ctx)
    fake.on_orders_page = None
    with ctx.session_factory() as s:
        assert (
            s.execute(select(Order.is_cancelled).where(Order.external_id == str(target))).scalar_one()
            is False
        )
    assert _cursor(ctx) < later
    second = _sync(ctx, now=lambda: datetime.now(UTC) + timedelta(seconds=30))
    assert first.pages >= 3 and second.updated == 1
    with ctx.session_factory() as s:
        assert (
            s.execute(select(Order.is_cancelled).where(Order.external_id == str(target))).scalar_one() is True
        )
    assert _counts(ctx)["orders"] == THREE_PAGES


def test_throttling_is_honoured_without_hitting_an_empty_bucket(fake, sqlite_ctx):
    fake.add_orders(250)
    client = _client(sqlite_ctx)
    result = _sync(sqlite_ctx, client=client)
    assert result.inserted == 250
    assert client.wait_s > 0  # it did have to wait for the bucket
    assert fake.counters["empty_bucket"] == 0 and fake.counters["throttled"] == 0


@pytest.mark.parametrize("fault", ["5xx", "429", "throttled", "slow", "truncated"])
def test_each_injected_fault_is_survived_with_no_order_lost_or_duplicated(fake, sqlite_ctx, fault):
    ctx = sqlite_ctx
    fake.add_orders(80)
    fake.retry_after_s = 0.05
    calls = []

    def inject(variables):
        calls.append(1)
        if len(calls) == 2:  # in the middle of the sync
            {
                "5xx": lambda: fake.fail_next(2, status=503),
                "429": lambda: fake.http429_next(2),
                "throttled": lambda: fake.throttle_next(2),
                "slow": lambda: fake.slow_next(1, delay_s=1.5),
                "truncated": lambda: fake.truncate_next(2),
            }[fault]()

    fake.on_orders_page = inject
    client = _client(ctx, timeout_s=0.5)
    result = _sync(ctx, client=client)
    assert result.inserted == 80 and result.rejected == 0
    assert _counts(ctx)["orders"] == _distinct_orders(ctx) == 80
    assert client.retries >= 1
    assert fake.counters["empty_bucket"] == 0
    assert _cursor(ctx) == max(fake.order(i).updated_at for i in fake.order_ids)


def test_a_page_that_never_comes_back_whole_stops_the_sync_without_moving_past_it(fake, sqlite_ctx):
    ctx = sqlite_ctx
    fake.add_orders(FOUR_PAGES)
    seen = []

    def break_third_page(variables):
        seen.append(1)
        if len(seen) == 3:
            fake.fail_next(50, status=502)

    fake.on_orders_page = break_third_page
    client = _client(ctx, max_attempts=3)
    with pytest.raises(TransientSourceError):
        _sync(ctx, client=client)
    stored = _counts(ctx)["orders"]
    assert 0 < stored < FOUR_PAGES
    with ctx.session_factory() as s:
        newest_stored = s.execute(select(func.max(Order.source_updated_at))).scalar_one()
    assert _cursor(ctx) == newest_stored  # the bookmark is at the last committed page
    fake.on_orders_page = None
    fake._faults.clear()
    _sync(ctx)
    assert _counts(ctx)["orders"] == FOUR_PAGES


def test_bulk_backfill_loads_every_order_with_refunds_and_sets_the_bookmark(fake, ctx):
    ids = fake.add_orders(150)
    order = fake.order(ids[3])
    fake.update_order(ids[3], refund={order.lines[0].id: 1}, at=datetime(2024, 6, 1, tzinfo=UTC))
    result = _sync(ctx, backfill=True)
    assert (result.mode, result.inserted, result.rejected) == ("backfill", 150, 0)
    # The bulk query cannot select refunded lines; the one order with a refund is read whole.
    assert result.notes == [
        "1 orders with refunds or returns read again for their refunded lines and exchanges"
    ]
    assert fake.counters["bulk_runs"] == 1 and fake.counters["bulk_downloads"] == 1
    assert fake.counters["bulk_refused"] == 0
    assert _counts(ctx)["units"] == _expected_units(fake)
    with ctx.session_factory() as s:
        refunded = s.execute(
            select(OrderLineRow.refunded_quantity)
            .join(Order)
            .where(Order.external_id == str(ids[3]), OrderLineRow.line_key == str(order.lines[0].id))
        ).scalar_one()
    assert refunded == 1
    assert _cursor(ctx) <= datetime.now(UTC) - timedelta(seconds=100)
    # An incremental sync afterwards only re-reads the overlap.
    assert _sync(ctx).inserted == 0


def test_a_backfill_runs_as_an_import_does_older_objects_frozen_and_statistics_following(
    fake, ctx, monkeypatch
):
    """As a file import (workers/runs.py): the objects older than the sync are out of the
    collector's full collections while it writes, handed back after; on PostgreSQL the
    orders and raw payloads are analyzed once the sync has inserted ANALYZE_FIRST rows."""
    import gc

    from tests.store_helpers import planner_row_counts
    from vipsync.workers import runs

    monkeypatch.setattr(runs, "ANALYZE_FIRST", 100)
    fake.add_orders(150)
    frozen: list[int] = []
    result = _sync(ctx, backfill=True, progress=lambda *a, **k: frozen.append(gc.get_freeze_count()))
    assert result.inserted == 150
    assert frozen and all(n > 0 for n in frozen)
    assert gc.get_freeze_count() == 0
    with ctx.session_factory() as s:
        if s.get_bind().dialect.name == "postgresql":
            counted = planner_row_counts(s, "orders", "raw_payloads")
            # Never analyzed: -1. Analyzed after the page that crossed 100 rows: 150.
            assert counted == {"orders": 150, "raw_payloads": 150}


def test_backfill_without_read_all_orders_says_plainly_that_only_60_days_come_back(fake, sqlite_ctx):
    fake.scopes = {"read_orders"}
    fake.add_orders(5)
    result = _sync(sqlite_ctx, backfill=True)
    assert SIXTY_DAY_NOTE in result.notes


def test_first_incremental_sync_without_read_all_orders_also_warns_but_later_ones_do_not(fake, sqlite_ctx):
    fake.scopes = {"read_orders"}
    fake.add_orders(5)
    assert SIXTY_DAY_NOTE in _sync(sqlite_ctx).notes
    assert _sync(sqlite_ctx).notes == []


@pytest.mark.parametrize(
    "outcome,error",
    [("FAILED", PermanentSourceError), ("CANCELED", PermanentSourceError), ("EXPIRED", TransientSourceError)],
)
def test_unsuccessful_bulk_operation_imports_nothing_and_keeps_the_bookmark(fake, sqlite_ctx, outcome, error):
    fake.add_orders(10)
    fake.bulk_outcome = outcome
    with pytest.raises(error, match=outcome):
        _sync(sqlite_ctx, backfill=True)
    assert _counts(sqlite_ctx)["orders"] == 0 and _cursor(sqlite_ctx) is None


def test_completed_bulk_operation_without_url_means_zero_orders(fake, sqlite_ctx):
    fake.bulk_outcome = "EMPTY"
    result = _sync(sqlite_ctx, backfill=True)
    assert (result.read, result.inserted) == (0, 0)
    assert fake.counters["bulk_downloads"] == 0


def test_bulk_operation_already_running_is_waited_for_then_ours_runs(fake, sqlite_ctx):
    fake.add_orders(20)
    fake.start_foreign_bulk(duration_s=0.4)
    result = _sync(sqlite_ctx, backfill=True)
    assert result.inserted == 20
    assert any("another bulk operation" in n for n in result.notes)


def test_backfill_since_a_date_only_loads_orders_created_since_and_leaves_the_bookmark(fake, sqlite_ctx):
    fake.add_orders(100)
    cut = fake.order(fake.order_ids[50]).created_at
    result = _sync(sqlite_ctx, backfill=True, since=(cut + timedelta(days=1)).date().isoformat())
    expected = sum(
        1
        for i in fake.order_ids
        if fake.order(i).created_at
        >= datetime.combine(
            (cut + timedelta(days=1)).date(), datetime.min.time(), tzinfo=sqlite_ctx.stores.shopify(KEY).tz
        )
    )
    assert result.inserted == expected and 0 < expected < 100
    assert _cursor(sqlite_ctx) is None


def test_record_the_api_rejects_goes_to_the_error_table(fake, sqlite_ctx):
    ids = fake.add_orders(10)
    fake.order(ids[4]).lines[0].quantity = -1
    result = _sync(sqlite_ctx)
    assert (result.inserted, result.rejected) == (9, 1)
    with sqlite_ctx.session_factory() as s:
        err = s.execute(select(ImportError_)).scalar_one()
    assert (err.source, err.record_id, err.field) == ("shopify", str(ids[4]), "lineItems[0].quantity")


def test_the_same_orders_read_by_pages_then_by_bulk_are_unchanged(fake, sqlite_ctx):
    ids = fake.add_orders(30)
    fake.update_order(ids[0], refund={fake.order(ids[0]).lines[0].id: 1}, at=datetime(2024, 1, 1, tzinfo=UTC))
    assert _sync(sqlite_ctx).inserted == 30
    again = _sync(sqlite_ctx, backfill=True)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 30)


def test_an_order_is_found_by_its_name_on_demand(fake, sqlite_ctx):
    from vipsync.connectors.shopify.streams import find_order_by_name

    ids = fake.add_orders(30)
    wanted = fake.order(ids[17])
    shop = sqlite_ctx.stores.shopify(KEY)
    record = find_order_by_name(_client(sqlite_ctx), shop, f"#{wanted.number}")
    assert record.external_id == str(wanted.id) and record.name == f"#{wanted.number}"
    assert find_order_by_name(_client(sqlite_ctx), shop, "#999999") is None


# ----------------------------------------------------------------------------- large windows
def _awkward_orders(fake: FakeShopify, n: int) -> list[int]:
    """``n`` orders, some of which do not fit a page's node: many lines (more than a page
    carries), several refunds, refunds of several lines, discounted lines, exchanges."""
    ids = fake.add_orders(n)
    for k, oid in enumerate(ids[::7]):
        order = fake.order(oid)
        for j in range(3 + k % 5):  # 4 to 8 lines in all
            order.lines.append(
                FakeLine(
                    8_000_000_000 + k * 10 + j,
                    "HKS0401A3U",
                    "TESmart 4-Port HDMI KVM Switch",
                    2,
                    2,
                    "329.99",
                    "32.99",
                )
            )
    for k, oid in enumerate(ids[3::11]):
        order = fake.order(oid)
        fake.update_order(oid, refund={order.lines[0].id: 1}, at=order.updated_at + timedelta(seconds=1))
        more = {line.id: 1 for line in order.lines[1:3] if line.current}  # a refund of two lines
        if k % 2 and more:
            fake.update_order(oid, refund=more, at=order.updated_at + timedelta(seconds=1))
    for oid in ids[5::23]:  # exchanges: a returned unit and the line added in its place
        order = fake.order(oid)
        fake.update_order(
            oid, exchange=(order.lines[0].id, "HKS0802A1U"), at=order.updated_at + timedelta(seconds=1)
        )
    return ids


def _stored(ctx) -> dict[str, tuple]:
    """Every stored order as comparable values: its columns, lines and raw payload."""
    skip = {"id", "order_id", "raw_payload_id", "created_at", "updated_at", "replaced_order_id"}
    order_cols = [c for c in Order.__table__.columns if c.name not in skip]
    line_cols = [c for c in OrderLineRow.__table__.columns if c.name not in skip]
    out: dict[str, tuple] = {}
    with ctx.session_factory() as s:
        for order in s.execute(select(Order)).scalars():
            lines = s.execute(select(*line_cols).where(OrderLineRow.order_id == order.id)).all()
            raw = s.get(RawPayload, order.raw_payload_id).payload
            out[order.external_id] = (
                tuple(getattr(order, c.key) for c in order_cols),
                sorted(tuple(r) for r in lines),
                raw,
            )
    return out


def test_a_large_incremental_window_is_read_by_one_bulk_operation_after_its_first_page(fake, ctx):
    ids = _awkward_orders(fake, 300)
    result = _sync(ctx, incremental_bulk=True)
    assert (result.inserted, result.rejected) == (300, 0)
    assert result.read == 300 + result.unchanged  # the first page's last update is read again
    assert fake.counters["bulk_runs"] == 1 and fake.counters["empty_bucket"] == 0
    refunded, exchanged = len(ids[3::11]), len(ids[5::23])
    # the scope check, one page carrying the window's count, the bulk operation (status,
    # run, polls), one read of each order with refunds, two (itself, its returns) of each
    # order with an exchange
    assert result.api_calls == fake.counters["graphql"] <= 2 + refunded + 2 * exchanged + 10
    assert (
        result.notes[-1]
        == f"{300 - page_size_for_cost()} more orders in the window: read by a bulk operation"
    )
    assert _counts(ctx)["units"] == _expected_units(fake)
    assert _cursor(ctx) <= datetime.now(UTC) - timedelta(seconds=100)
    assert _sync(ctx, incremental_bulk=True).inserted == 0  # the next sync only reads the overlap


def test_a_window_read_by_bulk_stores_exactly_what_pages_store(fake, ctx, tmp_path, monkeypatch):
    _awkward_orders(fake, 200)
    paged_dir = tmp_path / "paged"
    paged_dir.mkdir()
    paged = _context(fake, f"sqlite:///{paged_dir / 'paged.sqlite3'}", paged_dir, monkeypatch)
    try:
        by_pages = _sync(paged, incremental_bulk=False)
        by_bulk = _sync(ctx, incremental_bulk=True)
        assert by_pages.inserted == by_bulk.inserted == 200
        assert fake.counters["bulk_runs"] == 1
        assert _stored(ctx) == _stored(paged)
        # and the same orders read again page by page change nothing
        again = _sync(ctx, incremental_bulk=False, since="2020-01-01")
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 200)
    finally:
        paged.dispose()


def test_a_window_the_bucket_pays_for_at_once_stays_on_pages(fake, sqlite_ctx):
    fake.add_orders(page_size_for_cost() + 20)  # the first page and 20 more
    result = _sync(sqlite_ctx, incremental_bulk=True)
    assert result.inserted == page_size_for_cost() + 20
    assert fake.counters["bulk_runs"] == 0
    assert result.api_calls == result.pages + 1 == 3  # the scope check and two pages
