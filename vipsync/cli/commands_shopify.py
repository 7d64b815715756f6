"""Commands of the shopify part (registered by vipsync.cli.main):
``vipsync sync shopify [--store KEY] [--backfill [--since DATE]]``."""

from __future__ import annotations

import typer

from vipsync.bootstrap import get_context
from vipsync.cli.progress import console, progress_bar

__all__ = ["demo_sync", "register", "sync_shopify_stores"]

DEMO_STORE = "shopify-demo"


def demo_sync(*, orders: int = 200, restore_rate: float = 1000.0) -> list:
    """Run the real sync path (ShopifyAPI client, throttling, paging, then a bulk backfill)
    against a local fake Admin API serving ``orders`` generated orders, into the
    configured database under the store key ``shopify-demo`` (never a real shop's key).
    No credentials needed. For `vipsync demo`."""
    import os
    import tempfile
    from pathlib import Path

    from vipsync.bootstrap import Context, set_context
    from vipsync.config.settings import Settings
    from vipsync.devtools.fake_shopify import FakeShopify

    base = get_context()
    with (
        FakeShopify(orders=orders, seed=2026, restore_rate=restore_rate) as fake,
        tempfile.TemporaryDirectory(prefix="vipsync-demo-") as tmp,
    ):
        stores = Path(tmp) / "stores.toml"
        stores.write_text(fake.stores_toml(key=DEMO_STORE, shop_domain="tesmart-demo.myshopify.com"))
        os.environ["VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN"] = fake.access_token
        settings = Settings(
            stores_file=stores,
            data_dir=base.settings.data_dir,
            database_url=base.settings.effective_database_url,
        )
        ctx = Context(settings=settings, database_url=settings.effective_database_url)
        set_context(ctx)
        try:
            console.print(f"demo: a fake Shopify Admin API at {fake.url} serves {orders} generated orders")
            results = sync_shopify_stores(DEMO_STORE, backfill=False, since=None)
            results += sync_shopify_stores(DEMO_STORE, backfill=True, since=None)
        finally:
            set_context(None)
    return results


def sync_shopify_stores(store: str | None, *, backfill: bool, since: str | None) -> list:
    """Run the sync job of one shop, or of every Shopify shop; print each result."""
    from vipsync.cli.commands_core import print_sync_result, sync_targets
    from vipsync.workers.runner import store_lock
    from vipsync.workers.shopify_jobs import sync_shop
    from vipsync.workers.sync_health import tracked

    ctx = get_context()
    keys = sync_targets(ctx, "shopify", store, backfill=backfill, since=since)
    results = []
    for key in keys:
        mode = "backfill" if backfill else "incremental"
        with (
            store_lock(ctx, "sync_shopify", {"store_key": key}),
            progress_bar(f"{key}: {mode} sync (orders)") as advance,
        ):
            result = tracked(ctx, key, sync_shop, backfill=backfill, since=since, progress=advance)
        results.append(result)
        print_sync_result(result, kind="shopify", errors_source="shopify")
    return results


def register(groups) -> None:
    """Add this module's commands to the CLI groups."""

    @groups.sync.command("shopify")
    def sync_shopify(
        store: str | None = typer.Option(
            None, "--store", help="Key of one Shopify shop (default: every Shopify shop)."
        ),
        backfill: bool = typer.Option(
            False, "--backfill", help="Load the whole history with a bulk operation."
        ),
        since: str | None = typer.Option(
            None, "--since", help="With --backfill: only orders created since this date."
        ),
        demo: int = typer.Option(
            0,
            "--demo",
            metavar="N",
            help="Sync N generated orders from a local fake Shopify (store key shopify-demo).",
        ),
    ) -> None:
        """Pull orders from Shopify (incremental by default, or a bulk backfill)."""
        if demo:
            demo_sync(orders=demo)
        else:
            sync_shopify_stores(store, backfill=backfill, since=since)
        console.print("done")
