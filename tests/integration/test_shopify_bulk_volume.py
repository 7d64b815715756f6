"""The 50,000-order bulk backfill: every order stored, in constant memory.

The backfill runs in a child process so its peak resident memory is its own; it is
compared with a child that only parses a tenth of the orders. Holding the orders in
memory would cost hundreds of MiB more; streaming costs the same whatever the size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vipsync.devtools.fake_shopify import FakeShopify

N = 50_000

_CHILD = r"""
import json, os, resource, sys
from pathlib import Path
from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.connectors.records import OrderRecord
from vipsync.connectors.shopify.bulk import iter_bulk_file
from vipsync.workers.shopify_jobs import make_client, sync_shop

mode, arg, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
db = f"sqlite:///{workdir / (mode + '.sqlite3')}"
ctx = Context(settings=Settings(stores_file=workdir / "stores.toml", data_dir=workdir / "data", batch_size=2000),
              database_url=db)
ctx.engine
shop = ctx.stores.shopify("shopify-us")
if mode == "parse":
    count = sum(1 for item in iter_bulk_file(Path(arg), shop) if isinstance(item, OrderRecord))
else:
    count = sync_shop(ctx, "shopify-us", backfill=True, client=make_client(shop), bulk_poll_s=0.2).inserted
print(json.dumps({"count": count, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _child(mode: str, arg: str, workdir, env) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, arg, str(workdir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_bulk_backfill_of_50000_orders_in_constant_memory(tmp_path):
    with FakeShopify(orders=N, seed=50, restore_rate=10_000, bulk_delay_s=0.0) as fake:
        (tmp_path / "stores.toml").write_text(fake.stores_toml())
        env = dict(os.environ, VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN=fake.access_token)
        keys = fake._sorted_keys()
        until = keys[N // 10 - 1][0].strftime("%Y-%m-%dT%H:%M:%SZ")
        small_file, _ = fake._write_bulk_file(
            {"id": "gid://shopify/BulkOperation/9", "search": f"updated_at:<='{until}'"}
        )
        small = _child("parse", str(small_file), tmp_path, env)
        large = _child("backfill", "", tmp_path, env)
    assert small["count"] == N // 10
    assert large["count"] == N
    grown_mib = (large["peak_kib"] - small["peak_kib"]) / 1024
    assert grown_mib < 40, f"peak memory grew by {grown_mib:.0f} MiB for ten times the orders"
