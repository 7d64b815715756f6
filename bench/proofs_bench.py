"""Proof-of-purchase benchmark: latency (p50/p99) and requests/s of ``POST /v1/proofs``
served by uvicorn with 4 workers against a PostgreSQL store of N units.

    python bench/proofs_bench.py [--n 1000000] [--requests 2000] [--concurrency 16] [--workers 4]
                                 [--members 1000] [--client wrk|httpx] [--duration 10]

The store is filled with COPY (the tagging benchmark's generator: orders, lines, units,
members) in its own database, dropped at the end; every order gets a shipping postal
code (each proof tags its own order's units, so the store is not tagged beforehand).
``--members`` members (1,000) register through the API; then each request proves a
different stored order by its postal code, the members presenting them in turn (the
verified path: member check, indexed order lookup, owner check, link, re-tag of the
order's units, the answer). A
second run proves again the orders the first one linked (no re-tag); a third measures
refusals, which wait ``VIPSYNC_PROOF_MIN_DELAY_MS`` by design; a last one proves linked
orders with one request in flight (the latency of a proof without queueing).
Targets: p99 < 20 ms for a verified stored order, >= 500 requests/s.

A floor run then serves ``bench/proofs_floor_app.py`` the same way (FastAPI, uvicorn, the
same workers) on the same store and sends it the same linked orders: the least a verified
proof must do (token, one Redis call, one query, one decision row, commit), with none of
vipsync's rules, so the proof's figures can be read against what the machine gives for
the protocol alone (``--no-floor`` skips it).

The load comes from ``wrk`` (Debian's package; C, so the client does not take the CPU
the server needs) when it is installed, each of its threads sending its own share of the
bodies for ``--duration`` seconds; else from an httpx client in this process, which sends
``--requests`` bodies. Each run also prints the CPU time the client and the uvicorn
processes used per request, read from ``/proc`` (the rest of a request's time is
PostgreSQL, Redis and waiting for a core).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_bench import PG_ADMIN  # the benchmarks' PostgreSQL server
from tag_bench import fill

from vipsync.devtools.scratch_db import scratch_database

TOKEN = "bench-website-token-0123456789"
PII_KEY = "bench-pii-key-0123456789-0123456789-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(
    url: str, bodies: list[dict], concurrency: int, path: str = "/v1/proofs"
) -> tuple[list[float], dict[int, int], float]:
    latencies: list[float] = []
    codes: dict[int, int] = {}
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                t = time.perf_counter()
                res = await client.post(path, json=body)
                latencies.append((time.perf_counter() - t) * 1000)
                codes[res.status_code] = codes.get(res.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, codes, elapsed


def _report(title: str, latencies: list[float], codes: dict[int, int], elapsed: float) -> None:
    print(
        f"{title}: {len(latencies):,} requests in {elapsed:.2f} s = {len(latencies) / elapsed:,.0f} req/s; "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {_percentile(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms; statuses {dict(sorted(codes.items()))}"
    )


def _tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    wanted = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    for pid in wanted:
        total += times.get(pid, 0.0)
    return total


_LUA = """
local bodies = {BODIES}
local token = "{TOKEN}"
local threads, counter = {{}}, 1
function setup(thread)
  thread:set("first", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  step, i, codes = {THREADS}, first, {{}}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end
function request()
  local body = bodies[i]
  i = i + step
  if i > #bodies then i = first end
  return wrk.format(nil, "/v1/proofs", nil, body)
end
function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
function done(summary, latency, requests)
  local merged = {{}}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("codes")) do merged[status] = (merged[status] or 0) + n end
  end
  local parts = {{}}
  for status, n in pairs(merged) do table.insert(parts, string.format('"%d": %d', status, n)) end
  io.write(string.format('RESULT {{"requests": %d, "elapsed_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "codes": {{%s}}}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    table.concat(parts, ", ")))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run_wrk(url: str, bodies: list[dict], concurrency: int, duration: int, threads: int = 2) -> dict:
    """One wrk run: each thread sends its own share of ``bodies`` (wrapping around when it
    runs out); the figures wrk measured, and the client's CPU seconds."""
    script = _LUA.format(
        BODIES="{" + ",".join(_lua_string(json.dumps(b)) for b in bodies) + "}",
        TOKEN=TOKEN,
        THREADS=threads,
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--timeout", "30s", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(f.name)
    found = re.search(r"^RESULT (.*)$", out, re.M)
    if found is None:
        raise RuntimeError("wrk printed no result:\n" + out)
    result: dict = json.loads(found.group(1))
    result["client_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def _report_wrk(title: str, r: dict, server_cpu_s: float, pool: int) -> None:
    n, elapsed = r["requests"], r["elapsed_us"] / 1e6
    codes = {int(k): v for k, v in sorted(r["codes"].items(), key=lambda kv: int(kv[0]))}
    print(
        f"{title}: {n:,} requests in {elapsed:.2f} s = {n / elapsed:,.0f} req/s; "
        f"p50 {r['p50_us'] / 1000:.1f} ms, p99 {r['p99_us'] / 1000:.1f} ms, max {r['max_us'] / 1000:.1f} ms; "
        f"statuses {codes}; CPU per request: server {server_cpu_s * 1000 / max(n, 1):.2f} ms, "
        f"client (wrk) {r['client_cpu_s'] * 1000 / max(n, 1):.2f} ms"
        + (f"; {n - pool:,} requests reused a body (pool {pool:,})" if n > pool else "")
    )


def _serve(app: str, workers: int, env: dict, app_dir: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start uvicorn serving the factory ``app`` with ``workers`` processes; return it and
    its base URL once ``/healthz`` answers."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            *(["--app-dir", str(app_dir)] if app_dir else []),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return server, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="units in the store (the target: 1,000,000)")
    ap.add_argument("--requests", type=int, default=2_000, help="verified proofs to send")
    ap.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    ap.add_argument("--workers", type=int, default=4, help="uvicorn worker processes")
    ap.add_argument(
        "--refusals",
        type=int,
        default=None,
        help="refused proofs to send, each to its own unknown order (default: 100 with httpx, 3,000 with wrk)",
    )
    ap.add_argument(
        "--client",
        choices=("wrk", "httpx"),
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load tool",
    )
    ap.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    ap.add_argument("--pool", type=int, default=20_000, help="wrk: distinct stored orders to prove")
    ap.add_argument("--members", type=int, default=1_000, help="members presenting the proofs, in turn")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor run")
    args = ap.parse_args()
    wanted = args.requests if args.client == "httpx" else args.pool
    if args.refusals is None:
        # Each refused order identifier counts against its own rate limit (5 by default).
        args.refusals = 100 if args.client == "httpx" else 3_000

    with scratch_database(PG_ADMIN, prefix="vipsync_proofs_bench") as url:
        t = time.perf_counter()
        n_orders, _ = fill(url, args.n)
        import psycopg

        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE orders SET shipping_postal_code = lpad((id % 90000 + 10000)::text, 5, '0'), country = 'US'"
            )
            cur.execute(
                "SELECT o.name, o.shipping_postal_code FROM orders o WHERE o.is_cancelled = false "
                "AND NOT EXISTS (SELECT 1 FROM members m WHERE m.email_hash = o.email_hash) ORDER BY o.id DESC LIMIT %s",
                (wanted + 50,),
            )
            targets = cur.fetchall()
            conn.commit()
        # As a store in service: no dead rows left by the fill's UPDATE, nothing it wrote
        # still to flush by a checkpoint in the middle of a run.
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
            conn.execute("CHECKPOINT")
        print(f"store: {args.n:,} units in {n_orders:,} orders, filled in {time.perf_counter() - t:.1f} s")

        env = {
            **os.environ,
            "VIPSYNC_DATABASE_URL": url,
            "VIPSYNC_PII_KEY": PII_KEY,
            "VIPSYNC_API_TOKENS": f"bench:website:{hashlib.sha256(TOKEN.encode()).hexdigest()}",
            "VIPSYNC_BROKER_NAMESPACE": f"proofs-bench-{os.getpid()}",
            "VIPSYNC_PROOF_MIN_DELAY_MS": "200",
            "VIPSYNC_PROOF_FETCH_TIMEOUT_MS": "200",
            "VIPSYNC_PROOF_RATE_PER_TOKEN": "100000000",
            "VIPSYNC_PROOF_RATE_PER_ADDRESS": "100000000",
            "VIPSYNC_DATA_DIR": tempfile.mkdtemp(prefix="proofs-bench-"),
            "VIPSYNC_LOG_LEVEL": "WARNING",
        }
        server, base = _serve("vipsync.api.app:create_app", args.workers, env)
        try:
            # Each customer proves their own orders: the proofs in flight come from different
            # members, as on the website (every decision's foreign key locks its member's row).
            members = [
                {"email": f"bench.member.{i}@example.com", "country": "US"} for i in range(args.members)
            ]
            _, codes, _ = asyncio.run(_run(base, members, args.concurrency, path="/v1/members"))
            assert set(codes) <= {200, 201}, codes
            bodies = [
                {
                    "member_email": members[i % len(members)]["email"],
                    "order_id": name,
                    "postal_code": zip_code,
                }
                for i, (name, zip_code) in enumerate(targets)
            ]
            asyncio.run(_run(base, bodies[:50], args.concurrency))  # warm the workers' pools
            refusals = [
                {
                    "member_email": members[i % len(members)]["email"],
                    "order_id": f"#{9_000_000 + i}",
                    "postal_code": "00000",
                }
                for i in range(args.refusals)
            ]
            c = args.concurrency

            def linked() -> list[dict]:
                """The bodies whose order a run before linked: "verified again" proves only
                those (the first run links as many orders as it gets through)."""
                with psycopg.connect(conninfo) as conn:
                    names = {
                        name
                        for (name,) in conn.execute(
                            "SELECT o.name FROM orders o JOIN order_member_links l ON l.order_id = o.id"
                        )
                    }
                return [b for b in bodies[50:] if b["order_id"] in names]

            runs: list[tuple[str, Callable[[], list[dict]], int]] = [
                (f"verified proofs (stored orders, {args.workers} workers)", lambda: bodies[50:], c),
                ("verified again (orders already linked)", linked, c),
                ("refusals (unknown orders; wait the 200 ms minimum delay by design)", lambda: refusals, c),
                # Latency without queueing: one request in flight, the order already linked.
                ("verified again, one request in flight", linked, 1),
            ]
            print(f"client: {args.client}, {c} connections; load average {os.getloadavg()}")
            for title, batch_of, concurrency in runs:
                batch = batch_of()
                cpu = _tree_cpu_s(server.pid)
                if args.client == "wrk":
                    result = _run_wrk(base, batch, concurrency, args.duration, threads=min(2, concurrency))
                    _report_wrk(title, result, _tree_cpu_s(server.pid) - cpu, len(batch))
                    continue
                started = time.process_time()
                latencies, codes, elapsed = asyncio.run(_run(base, batch, concurrency))
                _report(title, latencies, codes, elapsed)
                n = len(latencies)
                print(
                    f"  CPU per request: server {(_tree_cpu_s(server.pid) - cpu) * 1000 / n:.2f} ms, "
                    f"client (httpx, this process) {(time.process_time() - started) * 1000 / n:.2f} ms"
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
        if args.no_floor or args.client != "wrk":
            return
        env["FLOOR_TOKEN_SHA256"] = hashlib.sha256(TOKEN.encode()).hexdigest()
        server, base = _serve("proofs_floor_app:create_app", args.workers, env, app_dir=Path(__file__).parent)
        try:
            cpu = _tree_cpu_s(server.pid)
            result = _run_wrk(base, bodies[50:], args.concurrency, args.duration)
            _report_wrk(
                f"floor: the protocol alone (bench/proofs_floor_app.py, {args.workers} workers)",
                result,
                _tree_cpu_s(server.pid) - cpu,
                len(bodies) - 50,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
