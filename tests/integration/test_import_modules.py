"""What a file import loads: its memory is mostly the modules it imports before it reads a
line, so the import path (settings, stores file, reader, job, store) must not pull in the
validation library of the HTTP API, nor the PostgreSQL driver when the store is SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"


def _modules_after_import(db_url: str, tmp_path: Path) -> set[str]:
    orders = tmp_path / "orders.jsonl"
    order = json.loads((FIXTURES / "order.json").read_text())["order"]
    orders.write_text(json.dumps(order) + "\n")
    code = (
        "import sys\n"
        "from vipsync.bootstrap import Context\n"
        "from vipsync.config.settings import get_settings\n"
        "from vipsync.connectors.shopify.files import read_orders_file\n"
        "from vipsync.workers.imports import import_records\n"
        f"ctx = Context(settings=get_settings(), database_url={db_url!r})\n"
        "shop = ctx.stores.shopify('shopify-us')\n"
        f"with open({str(orders)!r}, 'rb') as fh:\n"
        "    summary = import_records(ctx.session_factory, read_orders_file(fh, shop), kind='shopify',\n"
        "                             store_key=shop.key, batch_size=ctx.settings.batch_size)\n"
        "print(summary.inserted, file=sys.stderr)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "VIPSYNC_DATA_DIR": str(tmp_path / "data")},
    )
    assert done.stderr.split()[-1] == "1"  # the order was stored
    return set(done.stdout.split())


def test_a_file_import_loads_neither_pydantic_nor_the_other_databases_driver(db_url, tmp_path):
    modules = _modules_after_import(db_url, tmp_path)
    assert "vipsync.workers.imports" in modules
    assert not [m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_settings", "pydantic_core")]
    assert not [m for m in modules if m.split(".")[0] in ("fastapi", "starlette", "typer", "rich", "alembic")]
    if db_url.startswith("sqlite"):
        assert not [m for m in modules if m.split(".")[0] == "psycopg"]
    else:
        assert "psycopg" in modules
