"""Workers benchmark: jobs/s, and the latency from a webhook's arrival to its tagged
units, with 1, 2 and 4 dramatiq worker processes.

    python bench/workers_bench.py [--n 200] [--samples 20] [--processes 1,2,4] [--threads 2]

Everything is real except Shopify: PostgreSQL (a database of its own, dropped at the
end), a private ``redis-server`` on a free port, ``vipsync web --enqueue`` (uvicorn) as
the webhook receiver, ``dramatiq vipsync.workers.actors`` as the workers, and the fake
Admin API of ``vipsync.devtools.fake_shopify`` for the signed ``orders/create`` deliveries.

For each process count:
- throughput: ``--n`` webhooks posted at once (8 senders); jobs/s = the webhook jobs done
  per second from the first post until every delivery is processed and every unit tagged
  (the ``tag_pending`` follow-ups coalesce, so they are not counted);
- latency: ``--samples`` webhooks posted one at a time; for each, the time from the POST
  until its order's units carry a tag (p50, p95, max).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.devtools.scratch_db import create_database, drop_database, truncate_all
from vipsync.devtools.worker_procs import (
    Proc,
    RedisServer,
    free_port,
    new_namespace,
    start_workers,
    wait_until,
    worker_env,
)
from vipsync.store.db import make_engine, make_session_factory
from vipsync.store.models import Order, Unit, UnitTag, WebhookDelivery

PG_ADMIN = os.environ.get("VIPSYNC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _tagged(factory, order_id: int) -> bool:
    with factory() as s:
        units = s.execute(
            select(func.count()).select_from(Unit).where(Unit.order_external_id == str(order_id))
        ).scalar_one()
        tags = s.execute(
            select(func.count())
            .select_from(UnitTag)
            .join(Unit, Unit.id == UnitTag.unit_id)
            .where(Unit.order_external_id == str(order_id))
        ).scalar_one()
    return units > 0 and tags == units


def _all_done(factory, n_deliveries: int) -> bool:
    with factory() as s:
        done = s.execute(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status != "pending")
        ).scalar_one()
        pending = s.execute(
            select(func.count()).select_from(Unit).where(Unit.needs_tag.is_(True))
        ).scalar_one()
        orders = s.execute(select(func.count()).select_from(Order)).scalar_one()
    return done >= n_deliveries and pending == 0 and orders >= n_deliveries


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="webhooks per throughput round")
    parser.add_argument("--samples", type=int, default=20, help="webhooks timed one by one per process count")
    parser.add_argument("--processes", default="1,2,4", help="worker process counts to measure")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process")
    args = parser.parse_args()
    counts = [int(x) for x in args.processes.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="workers-bench-"))
    db_url = create_database(PG_ADMIN, prefix="vipsync_bench_workers")
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    rows = []
    try:
        with RedisServer(tmp / "redis") as redis_server, FakeShopify(seed=3) as fake:
            (tmp / "stores.toml").write_text(fake.stores_toml())
            ns = new_namespace("vipsync-bench")
            env = worker_env(
                database_url=db_url,
                redis_url=redis_server.url,
                namespace=ns,
                metrics_dir=tmp / "prom",
                extra={
                    "VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN": fake.access_token,
                    "VIPSYNC_FAKE_SHOPIFY_API_SECRET": fake.webhook_secret,
                    "VIPSYNC_STORES_FILE": str(tmp / "stores.toml"),
                },
            )
            port = free_port()
            web = Proc(
                [sys.executable, "-m", "vipsync.cli.main", "web", "--enqueue", "--port", str(port)],
                env=env,
                log_path=tmp / "web.log",
            )
            url = f"http://127.0.0.1:{port}/webhooks/shopify"
            try:
                wait_until(lambda: _reachable(port), timeout_s=30, what="the web app")
                for processes in counts:
                    truncate_all(engine)
                    workers = start_workers(
                        env=env,
                        log_path=tmp / f"workers{processes}.log",
                        processes=processes,
                        threads=args.threads,
                    )
                    try:
                        rows.append(_round(fake, url, factory, processes, args))
                    finally:
                        workers.stop()
            finally:
                web.stop()
    finally:
        engine.dispose()
        drop_database(PG_ADMIN, db_url)

    print(
        f"\nworkers benchmark: {args.n} webhooks per throughput round, {args.samples} timed one by one, "
        f"{args.threads} threads per process, {os.cpu_count()} CPUs"
    )
    print(f"{'processes':>9} {'jobs/s':>8} {'round s':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for r in rows:
        print(
            f"{r['processes']:>9} {r['jobs_s']:>8.1f} {r['round_s']:>8.2f} {r['p50']:>8.0f} {r['p95']:>8.0f} "
            f"{r['max']:>8.0f}"
        )


def _reachable(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _round(fake: FakeShopify, url: str, factory, processes: int, args) -> dict:
    # Warm up: the first job of each process opens its connections.
    warm = fake.add_orders(processes * 2)
    for oid in warm:
        fake.deliver_webhook(url, "orders/create", fake.rest_order(oid))
    wait_until(lambda: all(_tagged(factory, oid) for oid in warm), timeout_s=60, what="warm-up")

    ids = fake.add_orders(args.n)
    with factory() as s:
        before = s.execute(select(func.count()).select_from(WebhookDelivery)).scalar_one()
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda oid: fake.deliver_webhook(url, "orders/create", fake.rest_order(oid)), ids)
        )
    assert all(s == 200 for s in statuses), statuses
    wait_until(lambda: _all_done(factory, before + args.n), timeout_s=600, interval_s=0.02, what="the round")
    round_s = time.perf_counter() - started

    latencies = []
    for oid in fake.add_orders(args.samples):
        t0 = time.perf_counter()
        assert fake.deliver_webhook(url, "orders/create", fake.rest_order(oid)) == 200
        wait_until(
            lambda oid=oid: _tagged(factory, oid), timeout_s=60, interval_s=0.005, what="a tagged unit"
        )
        latencies.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.05)
    return {
        "processes": processes,
        "jobs_s": args.n / round_s,
        "round_s": round_s,
        "p50": statistics.median(latencies),
        "p95": _percentile(latencies, 0.95),
        "max": max(latencies),
    }


if __name__ == "__main__":
    main()
