"""Import benchmark: orders/s and peak memory of `vipsync import shopify` for N generated
orders, into SQLite and into PostgreSQL, next to the raw write rate of the same rows
(plain executemany on SQLite, COPY on PostgreSQL) measured in the same run.

    python bench/import_bench.py --n 100000 [--db sqlite|postgresql|both] [--digest]

Each measurement runs in a fresh child process so its peak RSS is its own; the child's
RSS after imports and before work is printed too, so growth with N is visible. The store is
migrated before the child starts (the release step's `vipsync db upgrade`); the child checks
the schema as every command does at start-up.
``--digest`` also prints a digest of the stored tables (times of the write left out): run
it with two versions of the code to check that they store identical tables.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PG_ADMIN = os.environ.get("VIPSYNC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SKUS = [
    ("HKS0401A3U", "TESmart 4-Port HDMI KVM Switch"),
    ("HKS0802A1U", "TESmart 8-Port HDMI KVM Switch"),
    ("DKS0401A30", "TESmart 4-Port Dual Monitor KVM Switch"),
    ("HMA0808A10", "TESmart 8x8 HDMI Matrix Switch"),
    ("CAB-HDMI-2M", "TESmart HDMI Cable 2m"),
]
COUNTRIES = ["US", "US", "US", "DE", "FR", "JP", "GB", "IT", "ES", "CA"]


def rss_mib() -> float:
    """This process's peak resident memory so far, MiB: the kernel's high-water mark of its
    own memory (VmHWM). Not ``ru_maxrss``: on Linux that keeps the largest RSS of the image an
    ``exec`` replaced, and a child started by ``subprocess`` (vfork, then exec) starts from its
    parent's, so a child's small peak printed as the benchmark driver's."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # not Linux: the resource figure, with the caveat above
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(path: Path, n: int, seed: int = 7) -> None:
    """N Shopify REST-shaped orders as JSON Lines (1 to 3 lines each)."""
    rng = random.Random(seed)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with path.open("w") as fh:
        for i in range(n):
            ts = (t0 + timedelta(minutes=7 * i)).isoformat()
            cc = rng.choice(COUNTRIES)
            lines = []
            for j in range(rng.choice((1, 1, 1, 2, 3))):
                sku, title = rng.choice(SKUS)
                lines.append(
                    {
                        "id": i * 10 + j,
                        "sku": sku,
                        "title": title,
                        "name": title,
                        "quantity": rng.choice((1, 1, 1, 2)),
                        "price": "169.99",
                        "product_id": 1,
                        "variant_id": 2,
                    }
                )
            order = {
                "id": 4_000_000_000 + i,
                "name": f"#{10000 + i}",
                "order_number": 10000 + i,
                "email": f"buyer{i}@example.com",
                "created_at": ts,
                "processed_at": ts,
                "updated_at": ts,
                "financial_status": "paid",
                "test": False,
                "cancelled_at": None,
                "currency": "USD",
                "total_price": "169.99",
                "line_items": lines,
                "refunds": [],
                "discount_codes": [],
                "shipping_address": {"country_code": cc, "zip": f"{10000 + i % 90000}"},
                "billing_address": {"country_code": cc},
            }
            fh.write(json.dumps(order) + "\n")


def child_import(url: str, file: Path) -> dict:
    from vipsync.config.settings import CONFIG_DIR
    from vipsync.config.stores import load_stores
    from vipsync.connectors.shopify.files import read_orders_file
    from vipsync.privacy import Digester, PiiKey
    from vipsync.store.db import ensure_schema, make_engine, make_session_factory
    from vipsync.workers.imports import import_records

    engine = make_engine(url)
    ensure_schema(engine)  # migrated beforehand, as by `vipsync db upgrade`: checked, as at start-up
    factory = make_session_factory(engine, digester=Digester(PiiKey(key_id="bench", secret=b"k" * 48)))
    shop = load_stores(CONFIG_DIR / "stores.toml").shopify("shopify-us")
    base = rss_mib()
    t, cpu = time.perf_counter(), time.process_time()
    with file.open("rb") as fh:
        summary = import_records(factory, read_orders_file(fh, shop), kind="shopify", store_key=shop.key)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    t2 = time.perf_counter()
    with file.open("rb") as fh:
        again = import_records(factory, read_orders_file(fh, shop), kind="shopify", store_key=shop.key)
    elapsed2 = time.perf_counter() - t2
    out = {
        "orders": summary.inserted,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "reimport_seconds": elapsed2,
        "reimport_unchanged": again.unchanged,
        "base_rss_mib": base,
        "peak_rss_mib": rss_mib(),
    }
    if os.environ.get("BENCH_DIGEST"):
        out["digest"] = tables_digest(url)
    return out


DIGEST_TABLES = ("raw_payloads", "products", "orders", "order_lines", "units", "import_errors")
WRITE_TIMES = {"created_at", "updated_at", "received_at", "first_seen_at"}


def tables_digest(url: str) -> str:
    """sha256 of the stored tables (rows in id order, every column but the times of the
    write): equal digests from two versions of the code = identical tables."""
    import hashlib

    from vipsync.store.models import Base

    digest = hashlib.sha256()
    columns = {
        t: [c.name for c in Base.metadata.tables[t].columns if c.name not in WRITE_TIMES]
        for t in DIGEST_TABLES
    }
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.split("///", 1)[1]) as conn:
            for table, cols in columns.items():
                for row in conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY id"):
                    digest.update(repr(row).encode())
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            for table, cols in columns.items():
                text_cols = ", ".join(f"{c}::text" for c in cols)
                for row in conn.execute(f"SELECT {text_cols} FROM {table} ORDER BY id"):
                    digest.update(repr(row).encode())
    return digest.hexdigest()


def child_raw(url: str, file: Path) -> dict:
    """Write the same order, line and unit rows with the fastest plain path, no logic."""
    from vipsync.config.settings import CONFIG_DIR
    from vipsync.config.stores import load_stores
    from vipsync.connectors.shopify.files import read_orders_file
    from vipsync.store.db import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    shop = load_stores(CONFIG_DIR / "stores.toml").shopify("shopify-us")
    with file.open("rb") as fh:
        records = list(read_orders_file(fh, shop))  # mapping is not timed: only the writes
    now = datetime.now(UTC)
    orders, lines, units = [], [], []
    for oid, r in enumerate(records, start=1):
        orders.append(
            (
                oid,
                r.source,
                r.store_key,
                r.external_id,
                r.name,
                r.purchased_at,
                r.purchase_date,
                r.updated_at,
                r.country,
                "shipping",
                "[]",
                "x" * 64,
                now,
                now,
            )
        )
        for line in r.lines:
            lines.append((oid, line.line_key, line.sku, line.title, line.quantity, 0))
        for sku, ordinal in r.unit_keys():
            units.append((oid, r.store_key, r.external_id, sku, ordinal, "", now, now))
    elapsed, how = write_raw(url, orders, lines, units)
    return {"orders": len(orders), "lines": len(lines), "units": len(units), "seconds": elapsed, "how": how}


COLS_O = "id, source, store_key, external_id, name, purchased_at, purchase_date, source_updated_at, country, country_source, discount_codes, content_hash, created_at, updated_at"
COLS_L = "order_id, line_key, sku, title, quantity, refunded_quantity"
COLS_U = "order_id, store_key, order_external_id, sku, ordinal, title, created_at, updated_at"


def write_raw(url: str, orders: list[tuple], lines: list[tuple], units: list[tuple]) -> tuple[float, str]:
    """Write order, line and unit rows (tuples in COLS_O, COLS_L, COLS_U order) into the
    migrated, empty store at ``url`` with the fastest plain path: one executemany per table
    on SQLite, COPY on PostgreSQL. Returns (seconds, how)."""
    cols_o, cols_l, cols_u = COLS_O, COLS_L, COLS_U
    t = time.perf_counter()
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1])
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")

        def conv(rows):
            return [
                tuple(v.replace(tzinfo=None).isoformat(" ") if isinstance(v, datetime) else v for v in row)
                for row in rows
            ]

        conn.executemany(f"INSERT INTO orders ({cols_o}) VALUES ({','.join('?' * 14)})", conv(orders))
        conn.executemany(f"INSERT INTO order_lines ({cols_l}) VALUES (?,?,?,?,?,?)", lines)
        conn.executemany(f"INSERT INTO units ({cols_u}) VALUES (?,?,?,?,?,?,?,?)", conv(units))
        conn.commit()
        conn.close()
        how = "executemany"
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            with conn.cursor() as cur:
                for table, cols, rows in (
                    ("orders", cols_o, orders),
                    ("order_lines", cols_l, lines),
                    ("units", cols_u, units),
                ):
                    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            conn.commit()
        how = "COPY"
    return time.perf_counter() - t, how


def run_child(mode: str, url: str, file: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--url", url, "--file", str(file)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--digest", action="store_true", help="print a digest of the stored tables")
    ap.add_argument("--child")
    ap.add_argument("--url")
    ap.add_argument("--file")
    args = ap.parse_args()
    if args.digest:
        os.environ["BENCH_DIGEST"] = "1"  # the children inherit it
    if args.child:
        fn = child_import if args.child == "import" else child_raw
        print(json.dumps(fn(args.url, Path(args.file))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        data = tmpdir / "orders.jsonl"
        generate(data, args.n)
        print(
            f"import benchmark: {args.n:,} generated Shopify orders ({data.stat().st_size / 2**20:.1f} MiB JSONL)"
        )
        dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
        for db in dbs:
            results = {}
            for mode in ("import", "raw"):
                # The store is migrated here, as the release step does (`vipsync db upgrade`);
                # the import process only checks the schema, as it does at start-up.
                if db == "sqlite":
                    from vipsync.store.db import make_engine, upgrade

                    url = f"sqlite:///{tmpdir / f'{mode}.sqlite3'}"
                    engine = make_engine(url)
                    upgrade(engine)
                    engine.dispose()
                    results[mode] = run_child(mode, url, data)
                else:
                    from vipsync.devtools.scratch_db import scratch_database

                    with scratch_database(PG_ADMIN, prefix="vipsync_bench") as url:
                        results[mode] = run_child(mode, url, data)
            imp, raw = results["import"], results["raw"]
            print(
                f"{db:10s} import: {imp['orders'] / imp['seconds']:9,.0f} orders/s ({imp['seconds']:.1f} s; "
                f"{imp['cpu_seconds']:.1f} s of CPU in the importing process), "
                f"peak RSS {imp['peak_rss_mib']:.0f} MiB (baseline {imp['base_rss_mib']:.0f} MiB); "
                f"re-import of the same file: {imp['orders'] / imp['reimport_seconds']:,.0f} orders/s, "
                f"{imp['reimport_unchanged']:,} unchanged"
            )
            if "digest" in imp:
                print(f"{db:10s} stored tables digest: {imp['digest']}")
            print(
                f"{db:10s} raw {raw['how']}: {raw['orders'] / raw['seconds']:9,.0f} orders/s "
                f"({raw['orders']:,} orders + {raw['lines']:,} lines + {raw['units']:,} units in {raw['seconds']:.1f} s); "
                f"import runs at {100 * (imp['orders'] / imp['seconds']) / (raw['orders'] / raw['seconds']):.0f}% of raw"
            )


if __name__ == "__main__":
    main()
