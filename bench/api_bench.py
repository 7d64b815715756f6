"""Dashboard query benchmark: p50/p99 of each query the ops dashboard (and the read API
behind it) runs, over N units on PostgreSQL.

    python bench/api_bench.py [--n 1000000] [--runs 50]

Creates its own database (dropped at the end), fills orders, units and their tags with COPY
(plausible tags: six stores, ten countries, windows spread over three years, a fifth of
the units members), then times each query of vipsync.store.ops_queries, the code the
routes run, `--runs` times. Target: every dashboard query p99 < 200 ms at 1,000,000 units.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_bench import COUNTRIES, PG_ADMIN, SKUS, rss_mib

STORES = ["shopify-us", "shopify-eu", "shopify-jp", "amazon-na", "amazon-eu", "amazon-fe"]
BENEFITS = [
    "not_member",
    "not_member",
    "not_member",
    "available",
    "registered_too_late",
    "exchange_used",
    None,
]


def fill(url: str, n_units: int, seed: int = 5) -> None:
    import psycopg

    rng = random.Random(seed)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    now = datetime.now(UTC)
    today = now.date()
    first_day = today - timedelta(days=3 * 365)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy("COPY products (sku, title, category, first_seen_at) FROM STDIN") as cp:
            for i, (sku, title) in enumerate(SKUS):
                cp.write_row((sku, title, "unknown" if i % 5 == 4 else "kvm_switch", now))
        orders: list[tuple[int, int, str, str, date]] = []
        left, oid = n_units, 0
        while left > 0:
            oid += 1
            qty = min(left, rng.choice((1, 1, 1, 2, 3)))
            left -= qty
            day = first_day + timedelta(days=rng.randrange(3 * 365))
            orders.append((oid, qty, rng.choice(STORES), rng.choice(COUNTRIES), day))
        with cur.copy(
            "COPY orders (id, source, store_key, external_id, name, purchased_at, purchase_date, source_updated_at, "
            "currency, financial_status, payment_pending, is_cancelled, is_test, email_hash, country, country_source, "
            "discount_codes, content_hash, created_at, updated_at) FROM STDIN"
        ) as cp:
            for oid, _qty, store, country, day in orders:
                ts = datetime(day.year, day.month, day.day, 18, tzinfo=UTC)
                source = "amazon" if store.startswith("amazon") else "shopify"
                cp.write_row(
                    (oid, source, store, str(5_000_000_000 + oid), f"#{1000 + oid}", ts, day, ts, "USD", "paid",
                     False, False, False, "h" * 64, country, "shipping", "[]", "x" * 64, now, now)
                )  # fmt: skip
        unit_id = 0
        with (
            cur.copy(
                "COPY units (id, order_id, store_key, order_external_id, sku, ordinal, title, removed, needs_tag, "
                "created_at, updated_at) FROM STDIN"
            ) as cp,
        ):
            tags = []
            for oid, qty, store, country, day in orders:
                sku, title = SKUS[oid % len(SKUS)]
                for k in range(1, qty + 1):
                    unit_id += 1
                    cp.write_row(
                        (unit_id, oid, store, str(5_000_000_000 + oid), sku, k, title, False, False, now, now)
                    )
                    tags.append((unit_id, country, day, oid % len(SKUS) % 5 != 4))
        with cur.copy(
            "COPY unit_tags (unit_id, policy_version, category, country, purchase_date, eligible, reasons, "
            "valid_purchase, original_warranty_end, registration_deadline, extended_warranty_end, trade_in_opens, "
            "member_id, benefit_status, facts_hash, tagged_at) FROM STDIN"
        ) as cp:
            for uid, country, day, kvm in tags:
                years = 2 if country == "DE" else 1
                original_end = (
                    day.replace(year=day.year + years)
                    if not (day.month == 2 and day.day == 29)
                    else day + timedelta(days=365 * years)
                )
                benefit = rng.choice(BENEFITS) if kvm else None
                member = benefit not in (None, "not_member")
                ext = (
                    original_end + timedelta(days=730) if benefit in ("available", "exchange_used") else None
                )
                cp.write_row(
                    (uid, "vip-2024", "kvm_switch" if kvm else "unknown", country, day, kvm,
                     "[]" if kvm else '["unclassified_sku"]', True, original_end, original_end if kvm else None,
                     ext, day + timedelta(days=120) if member else None, None, benefit, "f" * 64, now)
                )  # fmt: skip
        cur.execute("SELECT setval(pg_get_serial_sequence('units', 'id'), (SELECT max(id) FROM units))")
        cur.execute("SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders))")
        cur.execute(
            "INSERT INTO store_sync_health (store_key, last_success_at, last_attempt_at, syncs_ok) "
            "SELECT s, now() - interval '4 minutes', now() - interval '4 minutes', 12 FROM unnest(%s::text[]) s",
            (STORES,),
        )
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")


def timed(name: str, fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm the cache and the plan
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    flag = "ok" if p99 < 200 else "OVER 200 ms"
    print(f"  {name:<44} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   {flag}")
    return p50, p99


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="units (default 1,000,000)")
    ap.add_argument("--runs", type=int, default=50, help="timed runs of each query")
    args = ap.parse_args()

    from vipsync.devtools.scratch_db import create_database, drop_database
    from vipsync.store import ops_queries as q
    from vipsync.store.db import make_engine, make_session_factory

    url = create_database(PG_ADMIN, prefix="vipsync_apibench")
    try:
        t = time.perf_counter()
        fill(url, args.n)
        print(f"fill (COPY + VACUUM ANALYZE): {args.n:,} units with tags in {time.perf_counter() - t:.1f} s")
        engine = make_engine(url)
        factory = make_session_factory(engine)
        everything = q.UnitFilter()
        eu = q.UnitFilter(equals=(("store", "shopify-eu"),))

        def run(fn: Callable[..., object], *a, **kw) -> Callable[[], object]:
            def go() -> object:
                with factory() as s:
                    return fn(s, *a, **kw)

            return go

        t = time.perf_counter()
        with factory() as s:
            q.refresh_counts(s, force=True)
        print(
            f"unit counts summary rebuilt from ops_units in {(time.perf_counter() - t) * 1000:.0f} ms "
            f"(after a tag job, or by the first read after a change)"
        )
        print(f"dashboard queries over {args.n:,} units, {args.runs} runs each (PostgreSQL):")
        timed("counts by benefit_status", run(q.counts, ("benefit_status",), everything), args.runs)
        timed("counts by store", run(q.counts, ("store",), everything), args.runs)
        timed("counts by country", run(q.counts, ("country",), everything), args.runs)
        timed("windows closing in 30 days", run(q.windows_closing, within_days=30, limit=50), args.runs)
        timed(
            "registration deadlines in 30 days",
            run(q.registration_deadlines, within_days=30, limit=50),
            args.runs,
        )
        timed("sync health", run(q.sync_health), args.runs)
        timed("unclassified SKUs", run(q.unclassified), args.runs)
        print("read API queries:")
        timed("units, first page of 100", run(q.unit_page, everything, limit=100), args.runs)
        timed(
            "units, page after unit 900,000",
            run(q.unit_page, everything, after=int(args.n * 0.9), limit=100),
            args.runs,
        )
        timed("units of shopify-eu, first page", run(q.unit_page, eu, limit=100), args.runs)
        timed(
            "counts by store and original_warranty_status",
            run(q.counts, ("store", "original_warranty_status"), everything),
            max(5, args.runs // 10),
        )
        print(f"peak RSS {rss_mib():.0f} MiB")
        engine.dispose()
    finally:
        drop_database(PG_ADMIN, url)


if __name__ == "__main__":
    main()
