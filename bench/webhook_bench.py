"""Webhook benchmark: a 50 MB body against `vipsync web --inline`, and the web process's
memory while it refuses it; then the rate of ordinary signed deliveries.

    python bench/webhook_bench.py [--mb 50] [--n 200]

Sends, to a fresh `vipsync web --inline` process on a scratch SQLite store:
1. an unsigned body of ``--mb`` MB with its Content-Length,
2. the same as a chunked body (no Content-Length),
3. the same signed with the shop's secret;
and prints each answer with the growth of the web process's resident memory (current and
peak, from /proc) over its idle size. The target: 413 every time, growth under 20 MB.
Then ``--n`` signed order deliveries, one after another: deliveries/s end to end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from vipsync.devtools.fake_shopify import FakeShopify, sign_webhook

CHUNK = 64 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def _body(size: int) -> Iterator[bytes]:
    sent = 0
    piece = b"x" * CHUNK
    while sent < size:
        yield piece[: min(CHUNK, size - sent)]
        sent += CHUNK


def _post(port: int, headers: dict[str, str], body, *, chunked: bool) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/webhooks/shopify", body=body, headers=headers, encode_chunked=chunked)
        resp = conn.getresponse()
        resp.read()
        return str(resp.status)
    except (BrokenPipeError, ConnectionResetError):
        # The server answered and closed while the rest of the body was still on its way.
        try:
            return f"{conn.getresponse().status} (connection closed mid-body)"
        except Exception:
            return "connection closed mid-body"
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=50, help="size of the oversized body in MB (default 50)")
    ap.add_argument("--n", type=int, default=200, help="signed deliveries for the rate (default 200)")
    args = ap.parse_args()
    size = args.mb * 1_000_000

    with FakeShopify(orders=max(args.n, 1), seed=7) as fake, tempfile.TemporaryDirectory() as tmp:
        stores = Path(tmp) / "stores.toml"
        stores.write_text(fake.stores_toml())
        port = _free_port()
        env = dict(
            os.environ,
            VIPSYNC_DATA_DIR=tmp,
            VIPSYNC_STORES_FILE=str(stores),
            VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN=fake.access_token,
            VIPSYNC_FAKE_SHOPIFY_API_SECRET=fake.webhook_secret,
            VIPSYNC_LOG_LEVEL="ERROR",
        )
        env.pop("VIPSYNC_DATABASE_URL", None)
        web = subprocess.Popen(
            [sys.executable, "-m", "vipsync.cli.main", "web", "--inline", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            # One ordinary delivery first, so the idle size includes a used database.
            order = json.dumps(fake.rest_order(fake.order_ids[0])).encode()
            base = {
                "X-Shopify-Topic": "orders/updated",
                "X-Shopify-Shop-Domain": "tesmart-us.myshopify.com",
                "Content-Type": "application/json",
            }
            _post(
                port,
                base
                | {
                    "X-Shopify-Webhook-Id": "warm",
                    "X-Shopify-Hmac-Sha256": sign_webhook(fake.webhook_secret, order),
                },
                order,
                chunked=False,
            )
            idle, _ = _memory_mib(web.pid)
            print(
                f"web process idle: {idle:.1f} MiB resident (webhook limit: the default VIPSYNC_WEBHOOK_MAX_BYTES)"
            )
            big_signature = None
            cases = [
                ("unsigned, Content-Length", {"Content-Length": str(size)}, False),
                ("unsigned, chunked", {}, True),
                ("signed, Content-Length", {"Content-Length": str(size)}, False),
            ]
            for label, extra, chunked in cases:
                headers = base | {"X-Shopify-Webhook-Id": f"big-{label}"} | extra
                if label.startswith("signed"):
                    if big_signature is None:
                        import base64
                        import hashlib
                        import hmac

                        mac = hmac.new(fake.webhook_secret.encode(), digestmod=hashlib.sha256)
                        for piece in _body(size):
                            mac.update(piece)
                        big_signature = base64.b64encode(mac.digest()).decode()
                    headers["X-Shopify-Hmac-Sha256"] = big_signature
                started = time.perf_counter()
                status = _post(port, headers, _body(size), chunked=chunked)
                elapsed = time.perf_counter() - started
                rss, peak = _memory_mib(web.pid)
                print(
                    f"{args.mb} MB body, {label}: answered {status} in {elapsed:.2f} s; "
                    f"resident +{rss - idle:.1f} MiB, peak +{peak - idle:.1f} MiB over idle"
                )

            started = time.perf_counter()
            statuses: dict[str, int] = {}
            for i, oid in enumerate(fake.order_ids[: args.n]):
                body = json.dumps(fake.rest_order(oid)).encode()
                headers = base | {
                    "X-Shopify-Webhook-Id": f"rate-{i}",
                    "X-Shopify-Hmac-Sha256": sign_webhook(fake.webhook_secret, body),
                }
                status = _post(port, headers, body, chunked=False)
                statuses[status] = statuses.get(status, 0) + 1
            elapsed = time.perf_counter() - started
            n = min(args.n, len(fake.order_ids))
            print(
                f"{n} signed deliveries one after another: {n / elapsed:.0f} deliveries/s, answers {statuses}"
            )
            rss, peak = _memory_mib(web.pid)
            print(f"web process after the run: {rss:.1f} MiB resident, peak {peak:.1f} MiB")
        finally:
            web.terminate()
            web.wait(timeout=10)


if __name__ == "__main__":
    main()
