"""Shopify sync benchmark against the fake Admin API at standard-plan limits.

Prints, for the incremental sync (its first GraphQL page counts the window; a window larger
than a full bucket pays for at once is then read by a bulk operation), the same window read
page by page only (``paged``, the incremental path before the switch), and the backfill's
bulk path (bulk operation + JSONL download + constant-memory join): API calls per 1,000
orders, orders/s, the seconds spent waiting for the cost bucket, requests sent into an empty
bucket, and the peak resident memory of the syncing process; for the bulk path also the raw
write rate of the same order, line and unit rows (plain executemany into an empty store,
measured in the same run after the sync) and the sync's share of it. The fake runs in its
own process, so the memory figure is the sync's alone; each path runs in a fresh process
against a fresh SQLite store, migrated before that process starts (the release step).

    python bench/shopify_bench.py                # --n 600 incremental and paged, --bulk-n 20000 bulk
    python bench/shopify_bench.py --n 2000 --bulk-n 50000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_fake(orders: int, restore_rate: float, bucket_size: float) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vipsync.devtools.fake_shopify",
            "--port",
            str(port),
            "--orders",
            str(orders),
            "--restore-rate",
            str(restore_rate),
            "--bucket-size",
            str(bucket_size),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # printed once the server listens
    if "fake Shopify at" not in line:
        proc.kill()
        raise SystemExit(f"the fake did not start: {line!r}")
    return proc, f"http://127.0.0.1:{port}"


def _child(path: str, url: str, workdir: Path) -> None:
    """Run one sync in this (fresh) process and print its figures as JSON."""
    from vipsync.bootstrap import Context
    from vipsync.config.settings import Settings
    from vipsync.workers.shopify_jobs import make_client, sync_shop

    stores = workdir / "stores.toml"
    stores.write_text(
        '[stores.shopify-us]\nkind = "shopify"\nshop_domain = "tesmart-us.myshopify.com"\n'
        'timezone = "America/Los_Angeles"\ncountry = "US"\napi_version = "2025-10"\n'
        f'endpoint = "{url}"\ncredentials = {{ access_token = "BENCH_SHOPIFY_TOKEN" }}\n'
    )
    os.environ["BENCH_SHOPIFY_TOKEN"] = "fake-access-token"
    db = f"sqlite:///{workdir / f'{path}.sqlite3'}"
    ctx = Context(
        settings=Settings(stores_file=stores, data_dir=workdir / "data", database_url=db), database_url=db
    )
    _ = ctx.engine  # migrated by the parent (the release step): only checked here, as at start-up
    client = make_client(ctx.stores.shopify("shopify-us"))
    t0 = time.perf_counter()
    result = sync_shop(
        ctx,
        "shopify-us",
        backfill=(path == "bulk"),
        client=client,
        bulk_poll_s=0.5,
        incremental_bulk=(path != "paged"),
    )
    elapsed = time.perf_counter() - t0
    from import_bench import rss_mib  # the process's own peak, not its parent's (see there)

    peak_mib = rss_mib()
    figures = {
        "read": result.read,
        "inserted": result.inserted,
        "calls": client.calls,
        "elapsed_s": elapsed,
        "wait_s": client.wait_s,
        "peak_mib": peak_mib,
    }
    if path == "bulk":
        figures["raw_s"] = _raw_write_s(workdir / f"{path}.sqlite3", workdir / "raw.sqlite3")
    print(json.dumps(figures))


def _raw_write_s(synced: Path, target: Path) -> float:
    """Seconds to write the synced store's order, line and unit rows again into an empty
    store with plain executemany (import_bench's raw writer): the physical limit the sync
    is compared with, measured in the same run."""
    import sqlite3

    from import_bench import COLS_L, COLS_O, COLS_U, write_raw

    from vipsync.store.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{target}")
    upgrade(engine)
    engine.dispose()
    with sqlite3.connect(synced) as conn:
        rows = [
            conn.execute(f"SELECT {cols} FROM {table} ORDER BY id").fetchall()
            for table, cols in (("orders", COLS_O), ("order_lines", COLS_L), ("units", COLS_U))
        ]
    seconds, _how = write_raw(f"sqlite:///{target}", *rows)
    return seconds


def _run_path(path: str, orders: int, restore_rate: float, bucket_size: float) -> dict:
    proc, url = _start_fake(orders, restore_rate, bucket_size)
    try:
        with tempfile.TemporaryDirectory(prefix="shopify-bench-") as tmp:
            # The store is migrated here, as the release step does (`vipsync db upgrade`), so
            # the syncing process's memory is its own work, not the migrations'.
            from vipsync.store.db import make_engine, upgrade

            engine = make_engine(f"sqlite:///{Path(tmp) / f'{path}.sqlite3'}")
            upgrade(engine)
            engine.dispose()
            out = subprocess.run(
                [sys.executable, __file__, "--child", path, "--url", url, "--workdir", tmp],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise SystemExit(f"{path} run failed:\n{out.stderr}")
            figures = json.loads(out.stdout.strip().splitlines()[-1])
        with urllib.request.urlopen(f"{url}/_fake/counters") as resp:
            figures["empty_bucket"] = json.load(resp)["empty_bucket"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    figures["orders"] = orders
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="orders for the incremental path")
    parser.add_argument(
        "--bulk-n", type=int, default=20_000, help="orders for the bulk path (also run at a tenth)"
    )
    parser.add_argument(
        "--restore-rate", type=float, default=100.0, help="points/s (Shopify standard plan: 100)"
    )
    parser.add_argument("--bucket-size", type=float, default=2000.0, help="maximumAvailable points")
    parser.add_argument("--no-paged", action="store_true", help="skip the page-by-page run (slow)")
    parser.add_argument("--child", choices=["incremental", "paged", "bulk"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, Path(args.workdir))
        return

    print(
        f"Shopify sync against the fake Admin API: restore {args.restore_rate:g} points/s, "
        f"bucket {args.bucket_size:g} points (standard plan)"
    )
    print(
        f"{'path':<12}{'orders':>8}{'API calls':>11}{'calls/1000':>12}{'orders/s':>10}{'bucket wait s':>15}"
        f"{'empty-bucket':>14}{'peak RSS MiB':>14}{'raw orders/s':>14}{'share of raw':>14}"
    )
    runs = [("incremental", args.n)]
    runs += [] if args.no_paged else [("paged", args.n)]
    runs += [("bulk", max(1, args.bulk_n // 10)), ("bulk", args.bulk_n)]
    for path, n in runs:
        f = _run_path(path, n, args.restore_rate, args.bucket_size)
        assert f["inserted"] == n, f"{path}: {f['inserted']} of {n} orders stored"
        raw = ""
        if "raw_s" in f:  # the bulk path's rows written again plainly, in the same run
            raw_rate = n / f["raw_s"]
            raw = f"{raw_rate:>14.0f}{100 * (n / f['elapsed_s']) / raw_rate:>13.0f}%"
        print(
            f"{path:<12}{n:>8}{f['calls']:>11}{f['calls'] * 1000 / n:>12.1f}{n / f['elapsed_s']:>10.0f}"
            f"{f['wait_s']:>15.1f}{f['empty_bucket']:>14}{f['peak_mib']:>14.0f}{raw}",
            flush=True,
        )


if __name__ == "__main__":
    main()
