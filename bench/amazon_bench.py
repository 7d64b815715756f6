"""How long SP-API's documented rate limits make an Amazon sync, on a simulated clock.

The real connector code (python-amazon-sp-api, our pacing, paging and mapping) runs against
the fake SP-API in-process (httpx MockTransport) at the official rates and bursts; a
simulated clock advances on every wait, so hours of pacing take seconds. Printed for
``--n`` orders (default 10,000) spread over two years:

1. backfill through the Orders API (getOrders pages + getOrderItems per order);
2. backfill through the Reports API (one All Orders report per 30 days);
3. one day of incremental updates (``--daily-updates`` orders, half new, half status
   changes, and ``--daily-refunds`` refund events), synced hourly: the Orders calls and,
   beside them, the Finances API calls (listFinancialEvents over the refunds bookmark minus
   its 48-hour overlap) of the same day;
4. the flat-file parser's speed and peak memory for a report of n and 4n orders.

Usage: python bench/amazon_bench.py [--n 10000] [--daily-updates 200] [--daily-refunds 20]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from pathlib import Path

import httpx

from vipsync.config.stores import load_stores
from vipsync.connectors.amazon.client import SpApiClient
from vipsync.connectors.amazon.finances import OVERLAP, iter_refund_pages
from vipsync.connectors.amazon.pacing import SimClock, estimate
from vipsync.connectors.amazon.sync import (
    KnownOrder,
    iter_order_pages,
    open_report_records,
    report_windows,
    run_report,
    safe_until,
)
from vipsync.connectors.records import OrderLine, OrderRecord
from vipsync.devtools.amazon_data import generate_orders
from vipsync.devtools.fake_spapi import SpApiSimulator

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = load_stores(ROOT / "vipsync" / "config" / "stores.toml").amazon("amazon-eu")
MARKETS = ("DE", "UK", "FR", "IT", "ES")
DAYS = 730


def _setup(orders, clock):
    sim = SpApiSimulator(orders=orders, clock=clock, report_polls_until_done=2)
    client = SpApiClient(
        ACCOUNT,
        refresh_token="r",
        lwa_app_id="a",
        lwa_client_secret="s",
        endpoint="http://fake",
        clock=clock,
        http=httpx.Client(transport=sim.transport()),
    )
    return sim, client


def _fmt(seconds: float) -> str:
    return f"{seconds / 3600:7.2f} h" if seconds >= 3600 else f"{seconds / 60:7.1f} min"


def _line(name: str, calls: dict, sim_s: float, wall_s: float, orders: int, violations: int) -> None:
    total = sum(calls.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
    print(
        f"  {name:<34} {orders:>6} orders  {total:>6} calls  imposed {_fmt(sim_s)}  "
        f"(wall {wall_s:5.1f} s, violations {violations})\n      {detail}"
    )


def bench_orders_api(n: int) -> None:
    clock = SimClock()
    orders = generate_orders(
        n, markets=MARKETS, end=clock.now() - timedelta(minutes=10), span_days=DAYS - 1, seed=1
    )
    sim, client = _setup(orders, clock)
    t0, s0 = time.perf_counter(), clock.monotonic()
    until = safe_until(clock.now())
    got = 0
    for lo, hi in report_windows(until - timedelta(days=DAYS), until):  # 30-day slices, as the job does
        for page in iter_order_pages(
            client, ACCOUNT, updated_after=lo, updated_before=hi, known=lambda ids: {}
        ):
            got += len(page.records)
    _line(
        "backfill via Orders API",
        dict(client.calls),
        clock.monotonic() - s0,
        time.perf_counter() - t0,
        got,
        sim.total_violations,
    )
    est = estimate(orders=n, mode="orders_api")
    print(f"      lower bound from the documented limits: {est.total_calls} calls, {_fmt(est.seconds)}")


def bench_report(n: int) -> None:
    clock = SimClock()
    orders = generate_orders(
        n, markets=MARKETS, end=clock.now() - timedelta(minutes=10), span_days=DAYS - 1, seed=1
    )
    sim, client = _setup(orders, clock)
    t0, s0 = time.perf_counter(), clock.monotonic()
    until = safe_until(clock.now())
    got = 0
    windows = report_windows(until - timedelta(days=DAYS), until)
    for lo, hi in windows:
        window = run_report(client, ACCOUNT, start=lo, end=hi, poll_interval_s=30)
        with open_report_records(client, ACCOUNT, window) as records:
            got += sum(1 for r in records if isinstance(r, OrderRecord))
    _line(
        "backfill via Reports API",
        dict(client.calls),
        clock.monotonic() - s0,
        time.perf_counter() - t0,
        got,
        sim.total_violations,
    )
    print(f"      ({len(windows)} reports of 30 days; the fake finishes a report after 2 polls 30 s apart)")


def bench_daily(n: int, daily: int, refunds: int = 20) -> None:
    clock = SimClock()
    orders = generate_orders(
        n, markets=MARKETS, end=clock.now() - timedelta(hours=1), span_days=DAYS - 1, seed=1
    )
    sim, client = _setup(orders, clock)
    known = {
        o.order_id: KnownOrder(
            o.item_count, tuple(OrderLine(i.item_id, i.sku, i.title, i.quantity) for i in o.items)
        )
        for o in orders
    }
    start = clock.now()
    new = generate_orders(
        daily // 2, markets=MARKETS, start_index=n, seed=2, end=start + timedelta(hours=24), span_days=1
    )
    changes = [o for o in orders if o.status == "Unshipped"][: daily - len(new)]
    events = [(o.purchased_at, "new", o) for o in new]
    events += [
        (start + timedelta(minutes=(k * 1440) // max(len(changes), 1)), "ship", o)
        for k, o in enumerate(changes)
    ]
    shipped = [o for o in orders if o.status == "Shipped"][:refunds]
    events += [
        (start + timedelta(minutes=(k * 1440) // max(len(shipped), 1) + 7), "refund", o)
        for k, o in enumerate(shipped)
    ]
    events.sort(key=lambda e: e[0])
    bookmark = safe_until(start)
    refunds_bookmark = bookmark
    refund_facts: set[str] = set()
    t0 = time.perf_counter()
    imposed = 0.0
    got = runs = 0
    for hour in range(1, 25):
        horizon = start + timedelta(hours=hour)
        while events and events[0][0] <= horizon:
            when, kind, order = events.pop(0)
            if kind == "refund":
                sim.refund(order.order_id, posted_at=when)
                continue
            sim.upsert(order.touched(when) if kind == "new" else order.touched(when, status="Shipped"))
        clock.advance(max(0.0, (horizon - clock.now()).total_seconds()))  # the scheduler's hour, not imposed
        until = safe_until(clock.now())
        s0 = clock.monotonic()
        for page in iter_order_pages(
            client,
            ACCOUNT,
            updated_after=bookmark,
            updated_before=until,
            known=lambda ids: {i: known[i] for i in ids if i in known},
        ):
            got += len(page.records)
            for rec in page.records:
                if isinstance(rec, OrderRecord):
                    known[rec.external_id] = KnownOrder(sum(line.quantity for line in rec.lines), rec.lines)
        for fpage in iter_refund_pages(
            client, ACCOUNT, posted_after=refunds_bookmark - OVERLAP, posted_before=until
        ):
            refund_facts.update(f.fact_key for f in fpage.facts if hasattr(f, "fact_key"))
        refunds_bookmark = until
        imposed += clock.monotonic() - s0
        bookmark = until
        runs += 1
    _line(
        f"one day of updates ({runs} hourly syncs)",
        dict(client.calls),
        imposed,
        time.perf_counter() - t0,
        got,
        sim.total_violations,
    )
    print(
        f"      ({len(new)} new orders, {len(changes)} status changes: getOrderItems only for the new ones)"
    )
    orders_calls = client.calls["getOrders"] + client.calls["getOrderItems"]
    finances_calls = client.calls["listFinancialEvents"]
    print(
        f"      calls per day: Orders {orders_calls} (getOrders {client.calls['getOrders']}, "
        f"getOrderItems {client.calls['getOrderItems']})  beside  Finances {finances_calls} "
        f"(listFinancialEvents, {len(refund_facts)} refunded items read, 48 h overlap; "
        f"rate 0.5/s burst 30: {sim.violations['listFinancialEvents']} over the limit)"
    )


def bench_report_memory(n: int) -> None:
    """Peak memory of parsing a report of ``n`` and ``4n`` orders: flat in the file's size."""
    import tempfile
    import tracemalloc

    from vipsync.connectors.amazon.flatfile import read_all_orders_report
    from vipsync.devtools.amazon_data import write_report

    for size in (n, 4 * n):
        orders = generate_orders(size, markets=MARKETS, span_days=DAYS - 1, seed=3)
        with tempfile.TemporaryFile() as fh:
            write_report(orders, fh)
            mb = fh.tell() / 1e6
            del orders
            fh.seek(0)
            tracemalloc.start()
            t0 = time.perf_counter()
            count = sum(1 for _ in read_all_orders_report(fh, ACCOUNT))
            wall = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
        print(
            f"  parse All Orders report {count:>7} orders ({mb:6.1f} MB)  {count / wall:8.0f} orders/s  "
            f"peak Python memory {peak:5.1f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="orders over two years")
    parser.add_argument("--daily-updates", type=int, default=200, help="orders updated in the simulated day")
    parser.add_argument(
        "--daily-refunds", type=int, default=20, help="refund events posted in the simulated day"
    )
    args = parser.parse_args()
    print(f"Amazon SP-API sync, {args.n} orders over {DAYS} days, official rates and bursts, simulated clock")
    bench_orders_api(args.n)
    bench_report(args.n)
    bench_daily(args.n, args.daily_updates, args.daily_refunds)
    bench_report_memory(args.n)


if __name__ == "__main__":
    main()
