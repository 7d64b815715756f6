"""``vipsync demo``: the whole path on the embedded default, with no credentials.

It loads the bundled samples (Shopify orders, Amazon flat-file reports, members) into a
fresh SQLite store, points the US web store and the North American Amazon account at the
local fake Admin API and fake SP-API, runs the same inline pass as ``vipsync run`` (sync
every store, then tag), and prints a summary. The database is the default one, so
``vipsync units`` and ``vipsync status`` show the result afterwards.

The CLI imports ``devtools`` here only: the demo is the one command whose purpose is to
run against the fakes.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import typer

from vipsync.bootstrap import Context, set_context
from vipsync.cli.progress import console
from vipsync.config.settings import CONFIG_DIR, get_settings
from vipsync.errors import ConfigError

__all__ = ["register", "run_demo"]

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
FAKE_SHOPIFY_TOKEN_ENV = "VIPSYNC_SHOPIFY_US_ACCESS_TOKEN"
FAKE_SHOPIFY_SECRET_ENV = "VIPSYNC_SHOPIFY_US_API_SECRET"
FAKE_AMAZON_ENV = {
    "refresh_token": "VIPSYNC_AMAZON_NA_REFRESH_TOKEN",
    "lwa_app_id": "VIPSYNC_AMAZON_NA_LWA_APP_ID",
    "lwa_client_secret": "VIPSYNC_AMAZON_NA_LWA_CLIENT_SECRET",
}


def demo_stores_toml(*, shopify_url: str, amazon_url: str) -> str:
    """The default stores file with shopify-us and amazon-na pointed at the fakes."""
    text = (CONFIG_DIR / "stores.toml").read_text(encoding="utf-8")
    for key, url in (("shopify-us", shopify_url), ("amazon-na", amazon_url)):
        header = f"[stores.{key}]\n"
        if header not in text:
            raise ConfigError(f"the default stores file has no {key} to point at the fake")
        text = text.replace(header, f'{header}endpoint = "{url}"\n', 1)
    return text


def _fresh_sqlite(path: Path) -> Path | None:
    """Move an existing database aside (nothing is lost); return where it went."""
    if not path.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    backup = path.with_name(f"{path.name}.before-demo-{stamp}")
    shutil.move(path, backup)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.unlink()
    return backup


def run_demo(*, shopify_orders: int = 60, amazon_orders: int = 25) -> dict:
    from vipsync.cli.commands_core import print_summary, run_import
    from vipsync.cli.commands_workers import _print_step
    from vipsync.devtools.amazon_data import generate_orders
    from vipsync.devtools.fake_shopify import FakeShopify
    from vipsync.devtools.fake_spapi import FakeSpApi
    from vipsync.store.repository import Repository
    from vipsync.workers.runner import run_once

    settings = get_settings()
    url = settings.effective_database_url
    if not url.startswith("sqlite:///"):
        raise ConfigError("the demo runs on the embedded SQLite default: unset VIPSYNC_DATABASE_URL")
    db_path = Path(url.removeprefix("sqlite:///"))
    backup = _fresh_sqlite(db_path)
    if backup:
        console.print(f"demo: the previous database was moved to {backup}")
    demo_dir = settings.data_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)

    amazon = generate_orders(amazon_orders, markets=("US", "CA"), seed=2026, span_days=20)
    with (
        FakeShopify(orders=shopify_orders, seed=2026, restore_rate=1000.0) as shop_fake,
        FakeSpApi(orders=amazon, rate_scale=200, report_polls_until_done=0) as amazon_fake,
    ):
        stores_file = demo_dir / "stores.toml"
        stores_file.write_text(
            demo_stores_toml(shopify_url=shop_fake.url, amazon_url=amazon_fake.url), encoding="utf-8"
        )
        os.environ[FAKE_SHOPIFY_TOKEN_ENV] = shop_fake.access_token
        os.environ[FAKE_SHOPIFY_SECRET_ENV] = shop_fake.webhook_secret
        for cred, var in FAKE_AMAZON_ENV.items():
            os.environ[var] = f"fake-{cred}"
        ctx = Context(settings=settings.replace(stores_file=stores_file), database_url=url)
        set_context(ctx)
        try:
            console.rule("1. bundled sample files")
            run_import("shopify", SAMPLES / "shopify_orders_sample.jsonl", "shopify-us")
            for region, key in (("na", "amazon-na"), ("eu", "amazon-eu"), ("fe", "amazon-fe")):
                run_import("amazon-report", SAMPLES / f"amazon_all_orders_sample_{region}.tsv", key)
            run_import("members", SAMPLES / "members_sample.csv", None)
            console.rule("2. sync (fake Shopify Admin API and fake SP-API), then tag")
            console.print(
                f"fake Shopify at {shop_fake.url} ({shopify_orders} orders), "
                f"fake SP-API at {amazon_fake.url} ({amazon_orders} orders)",
                highlight=False,
            )
            report = run_once(ctx, on_step=_print_step)
            console.rule("3. the store")
            with ctx.session_factory() as session:
                counts = Repository(session).counts()
            print_summary("vipsync store", counts)
            _print_sample_units(ctx)
        finally:
            set_context(None)
            ctx.dispose()
    console.print(
        "\nNext: `.venv/bin/vipsync units --store shopify-us`, `vipsync units --format json`, "
        "`vipsync errors list`, `vipsync status`.",
        highlight=False,
    )
    if not report.ok:
        raise typer.Exit(2)
    return counts


def _print_sample_units(ctx) -> None:
    """A few tagged units of the bundled Shopify sample, as `vipsync units` shows them."""
    from rich.table import Table

    from vipsync.store.read_models import iter_units

    today = date.today()
    with ctx.session_factory() as session:
        rows = [
            r
            for r in iter_units(session, as_of=today, store_key="shopify-us")
            if r["order_id"].startswith("59000000")
        ]
    fields = (
        "order_name",
        "sku",
        "country",
        "purchase_date",
        "original_warranty_end",
        "extended_warranty_end",
        "trade_in_opens",
        "benefit_status",
    )
    table = Table(
        "order",
        "sku",
        "country",
        "bought",
        "warranty until",
        "extended until",
        "trade-in from",
        "benefit / reasons",
        title=f"the bundled Shopify sample, tagged (as of {today})",
    )
    for r in sorted(rows, key=lambda r: (r["order_name"], r["sku"], r["ordinal"])):
        cells = ["" if r[f] is None else str(r[f]) for f in fields]
        if not r["eligible"]:
            cells[-1] = ", ".join(r["reasons"] or [])
        table.add_row(*cells)
    console.print(table)


def register(groups) -> None:
    @groups.app.command("demo")
    def demo(
        shopify_orders: int = typer.Option(60, help="Orders the fake Shopify Admin API serves."),
        amazon_orders: int = typer.Option(25, help="Orders the fake SP-API serves."),
    ) -> None:
        """Load the bundled samples into a fresh SQLite store, sync the fake stores, tag, summarize."""
        run_demo(shopify_orders=shopify_orders, amazon_orders=amazon_orders)
