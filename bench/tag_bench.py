"""Tagging benchmark: units/s of the eligibility engine alone and of the tagging job end to
end on PostgreSQL, and the time to re-tag after a policy change that touches 10% of the
units (only those rows are rewritten).

    python bench/tag_bench.py [--n 1000000] [--batch 5000] [--skip-db]

The database part creates its own database (dropped at the end), fills it with COPY
(orders, lines, units, members: fast bulk inserts, not the repository), then runs
`tag_pending`, `retag_all` with unchanged rules, and `retag_all` after enabling a policy
version that judges the latest 10% of purchases.

Beside `tag_pending` it prints the database's own floor for the same units, with no Python
work: reading their facts with the job's batch statement (rows sent as COPY text and
discarded) and inserting the same tag rows into the empty table with its indexes and keys
(rolled back). Their sum is the database CPU a unit costs; on N cores no tagging job can
run faster than N divided by it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The same generated products, countries and database as the import benchmark.
from import_bench import COUNTRIES, PG_ADMIN, SKUS, rss_mib

from vipsync.eligibility.engine import ClaimFacts, MemberFacts, UnitFacts, evaluate
from vipsync.eligibility.judge import Judge
from vipsync.eligibility.loader import load_policies

CONFIG = Path(__file__).resolve().parents[1] / "vipsync" / "config"

DAY0 = date(2024, 1, 1)
DAYS = 730  # purchases spread over two years


def engine_alone(n: int) -> None:
    policies = load_policies(CONFIG / "policies")
    judge = Judge(policies)
    plain = 0.0
    rng = random.Random(3)
    chunk = 20_000
    spent = 0.0
    done = 0
    while done < n:
        size = min(chunk, n - done)
        facts = []
        for i in range(size):
            day = DAY0 + timedelta(days=rng.randrange(DAYS))
            m = MemberFacts(i, DAY0 + timedelta(days=rng.randrange(DAYS))) if rng.random() < 0.4 else None
            facts.append(
                UnitFacts(
                    purchase_date=day,
                    country=rng.choice(COUNTRIES),
                    category=rng.choice(("kvm_switch", "kvm_switch", "kvm_switch", "matrix", "accessory")),
                    official=rng.random() < 0.97,
                    cancelled=rng.random() < 0.02,
                    refunded=rng.random() < 0.03,
                    member=m,
                    claim=ClaimFacts("exchange", day + timedelta(days=400))
                    if m and rng.random() < 0.05
                    else None,
                )
            )
        t = time.perf_counter()
        for f in facts:
            judge.judge(f)
        spent += time.perf_counter() - t
        if done == 0:
            # The per-unit path (no sharing) on the first chunk, for comparison.
            t = time.perf_counter()
            for f in facts:
                evaluate(f, policies.select(f.purchase_date)).digest()
            plain = size / (time.perf_counter() - t)
        done += size
    print(
        f"engine alone: {n:,} units in {spent:.2f} s = {n / spent:,.0f} units/s (policy selection + verdict + "
        f"digest, units sharing facts judged once: {judge.evaluations:,} evaluations); "
        f"one evaluation per unit: {plain:,.0f} units/s"
    )


def fill(url: str, n_units: int, seed: int = 11) -> tuple[int, date]:
    """COPY N units (1-3 per order) with orders, lines, products and members; returns
    (orders, the purchase date from which the latest 10% of units were bought)."""
    import psycopg

    rng = random.Random(seed)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    now = datetime.now(UTC)
    days: list[int] = []
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy("COPY products (sku, title, category, first_seen_at) FROM STDIN") as cp:
            for sku, title in SKUS:
                cp.write_row((sku, title, None, now))
        emails = [
            hashlib.sha256(f"m{i}@example.com".encode()).hexdigest() for i in range(max(1, n_units // 8))
        ]
        with cur.copy(
            "COPY members (email_hash, country, registered_at, exited_at, source, created_at, updated_at) FROM STDIN"
        ) as cp:
            for h in emails:
                cp.write_row(
                    (h, "US", DAY0 + timedelta(days=rng.randrange(-200, DAYS)), None, "import", now, now)
                )
        orders = []
        units_left = n_units
        oid = 0
        while units_left > 0:
            oid += 1
            qty = min(units_left, rng.choice((1, 1, 1, 2, 3)))
            units_left -= qty
            orders.append((oid, qty))
        # Ascending ids go with ascending purchase dates, so "the latest 10%" is a date cut.
        step = DAYS / len(orders)
        with cur.copy(
            "COPY orders (id, source, store_key, external_id, name, purchased_at, purchase_date, source_updated_at, "
            "currency, financial_status, payment_pending, is_cancelled, is_test, email_hash, country, country_source, "
            "discount_codes, content_hash, created_at, updated_at) FROM STDIN"
        ) as cp:
            for oid, qty in orders:
                day = DAY0 + timedelta(days=int((oid - 1) * step))
                ts = datetime(day.year, day.month, day.day, 18, tzinfo=UTC)
                email = (
                    rng.choice(emails)
                    if rng.random() < 0.5
                    else hashlib.sha256(f"x{oid}".encode()).hexdigest()
                )
                cp.write_row(
                    (
                        oid,
                        "shopify",
                        "shopify-us",
                        str(5_000_000_000 + oid),
                        f"#{1000 + oid}",
                        ts,
                        day,
                        ts,
                        "USD",
                        "paid",
                        False,
                        rng.random() < 0.02,
                        False,
                        email,
                        rng.choice(COUNTRIES),
                        "shipping",
                        "[]",
                        "x" * 64,
                        now,
                        now,
                    )
                )
                days.extend([day.toordinal()] * qty)
        with cur.copy(
            "COPY order_lines (order_id, line_key, sku, title, quantity, refunded_quantity) FROM STDIN"
        ) as cp:
            line_skus = {}
            for oid, qty in orders:
                sku, title = SKUS[oid % len(SKUS)] if oid % 7 else SKUS[0]
                line_skus[oid] = (sku, title)
                cp.write_row((oid, f"{oid}-0", sku, title, qty, 1 if qty > 1 and rng.random() < 0.1 else 0))
        with cur.copy(
            "COPY units (order_id, store_key, order_external_id, sku, ordinal, title, removed, needs_tag, created_at, updated_at) FROM STDIN"
        ) as cp:
            for oid, qty in orders:
                sku, title = line_skus[oid]
                for k in range(1, qty + 1):
                    cp.write_row(
                        (oid, "shopify-us", str(5_000_000_000 + oid), sku, k, title, False, True, now, now)
                    )
        cur.execute("SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders))")
        cur.execute("ANALYZE")
        conn.commit()
    days.sort()
    cut = date.fromordinal(days[int(len(days) * 0.9)])
    return len(orders), cut


def database_floor(url: str, batch: int) -> None:
    """The database's own work for tagging every unit, each part on one connection: the
    job's batch statement (facts read and units locked) by id batches, rows discarded;
    then the stored tags inserted again into the table emptied (indexes and foreign keys
    as they are), rolled back. Run after tag_pending, so every unit has its tag."""
    import psycopg
    from sqlalchemy.dialects import postgresql

    from vipsync.store.models import Unit
    from vipsync.store.read_models import _fact_select
    from vipsync.store.sql import in_values

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    dialect = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        ids = [r[0] for r in cur.execute("SELECT id FROM units ORDER BY id").fetchall()]
        conn.commit()
        t = time.perf_counter()
        for i in range(0, len(ids), batch):
            q = (
                _fact_select()
                .where(in_values(Unit.id, ids[i : i + batch], pg=True))
                .with_for_update(of=Unit, skip_locked=True)
            )
            compiled = q.compile(dialect=dialect)
            cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            cur.execute("SET LOCAL jit = off")
            cur.execute("SET LOCAL enable_hashjoin = off")
            cur.execute("SET LOCAL enable_mergejoin = off")
            with cur.copy(f"COPY ({compiled}) TO STDOUT", compiled.params) as copy:
                for _ in copy:
                    pass
            conn.commit()
        read_s = time.perf_counter() - t
        cur.execute("CREATE TEMP TABLE tags_again AS SELECT * FROM unit_tags")
        conn.commit()
        cur.execute("TRUNCATE unit_tags")  # empty, as before tag_pending; rolled back below
        t = time.perf_counter()
        cur.execute("INSERT INTO unit_tags SELECT * FROM tags_again")
        write_s = time.perf_counter() - t
        conn.rollback()
    n = len(ids)
    per_unit = (read_s + write_s) / n * 1e6
    print(
        f"database floor, no Python work, one connection: reading the facts {n / read_s:,.0f} units/s "
        f"({read_s / n * 1e6:.1f} us a unit), inserting the same tags {n / write_s:,.0f} units/s "
        f"({write_s / n * 1e6:.1f} us): "
        f"{per_unit:.1f} us of database work a unit, so at most {2e6 / per_unit:,.0f} units/s on 2 cores "
        f"with nothing left for Python"
    )


def end_to_end(n: int, batch: int) -> None:
    from vipsync.bootstrap import Context
    from vipsync.config.settings import Settings
    from vipsync.devtools.scratch_db import create_database, drop_database
    from vipsync.workers.tagging import retag_all, tag_pending

    url = create_database(PG_ADMIN, prefix="vipsync_tagbench")
    tmp = Path(tempfile.mkdtemp(prefix="tagbench-"))
    try:
        t = time.perf_counter()
        orders, cut = fill(url, n)
        print(
            f"fill (COPY): {n:,} units in {orders:,} orders in {time.perf_counter() - t:.1f} s (peak RSS so far {rss_mib():.0f} MiB)"
        )

        policies = tmp / "policies"
        shutil.copytree(CONFIG / "policies", policies)
        ctx = Context(
            settings=Settings(
                policies_dir=policies, database_url=url, pii_key="bench-only-pii-key-of-the-tag-benchmark"
            ),
            database_url=url,
            migrate=False,
        )

        r = tag_pending(ctx, batch_size=batch)
        print(
            f"tag_pending end to end (PostgreSQL): {r.scanned:,} units in {r.elapsed_s:.1f} s = "
            f"{r.scanned / r.elapsed_s:,.0f} units/s (inserted {r.inserted:,}; peak RSS {rss_mib():.0f} MiB)"
        )
        database_floor(url, batch)
        r = retag_all(ctx, batch_size=batch, full=True)
        print(
            f"retag_all --full (every unit judged, rules unchanged): {r.scanned:,} units in {r.elapsed_s:.1f} s = "
            f"{r.scanned / r.elapsed_s:,.0f} units/s, rewritten {r.rewritten:,}"
        )
        r = retag_all(ctx, batch_size=batch)
        print(
            f"retag_all, rules unchanged since the last run: {r.scanned:,} units judged in {r.elapsed_s:.2f} s, "
            f"rewritten {r.rewritten:,}"
        )
        tid = policies / "tesmart-id-2025-11-01.toml"
        body = tid.read_text().replace("enabled = false", "enabled = true")
        # The shipped version is limited to the EU stores; the generated units are US ones.
        body = body.replace('stores = ["shopify-eu", "amazon-eu"]\n', "")
        body = body.replace("effective_from = 2025-11-01", f"effective_from = {cut.isoformat()}")
        tid.write_text(body)
        r = retag_all(ctx, batch_size=batch)
        print(
            f"retag_all after a policy change (TESmart ID terms from {cut}): {r.scanned:,} units scanned in "
            f"{r.elapsed_s:.1f} s, rewritten {r.rewritten:,} ({r.rewritten / max(r.scanned, 1):.1%}), "
            f"by version {json.dumps(r.by_version)}; peak RSS {rss_mib():.0f} MiB"
        )
        ctx.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        drop_database(PG_ADMIN, url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="units (default 1,000,000)")
    ap.add_argument("--batch", type=int, default=5000, help="units per tagging batch")
    ap.add_argument("--skip-db", action="store_true", help="only the engine alone")
    args = ap.parse_args()
    engine_alone(args.n)
    if not args.skip_db:
        end_to_end(args.n, args.batch)


if __name__ == "__main__":
    main()
