"""Commands of the shopify part (registered by vipsync.cli.main):
``vipsync sync shopify [--store KEY] [--backfill [--since DATE]]``."""

from __future__ import annotations

from datetime import date

import typer

from vipsync.bootstrap import get_context
from vipsync.cli.progress import console, err_console, progress_bar
from vipsync.errors import ConfigError

__all__ = ["register", "sync_shopify_stores"]


def sync_shopify_stores(store: str | None, *, backfill: bool, since: str | None) -> list:
    """Run the sync job of one shop, or of every Shopify shop; print each result."""
    from vipsync.cli.commands_core import print_summary
    from vipsync.workers.shopify_jobs import sync_shop

    ctx = get_context()
    if since is not None:
        if not backfill:
            raise ConfigError("--since goes with --backfill")
        try:
            date.fromisoformat(since)
        except ValueError:
            raise ConfigError(f"--since must be a date YYYY-MM-DD, not {since!r}") from None
    keys = [ctx.stores.shopify(store).key] if store else [s.key for s in ctx.stores.of_kind("shopify")]
    if not keys:
        raise ConfigError("the stores file lists no Shopify shop")
    results = []
    for key in keys:
        mode = "backfill" if backfill else "incremental"
        with progress_bar(f"{key}: {mode} sync (orders)") as advance:
            result = sync_shop(ctx, key, backfill=backfill, since=since, progress=advance)
        results.append(result)
        counts = result.as_dict()
        print_summary(f"shopify {mode} sync of {key}", {k: v for k, v in counts.items() if k not in ("store", "mode")})
        for note in result.notes:
            err_console.print(f"[yellow]note:[/] {note}", highlight=False)
        if result.rejected:
            err_console.print(f"{result.rejected} order(s) rejected: see `vipsync errors list --source shopify`",
                              highlight=False)
    return results


def register(groups) -> None:
    """Add this module's commands to the CLI groups."""

    @groups.sync.command("shopify")
    def sync_shopify(
        store: str | None = typer.Option(None, "--store", help="Key of one Shopify shop (default: every Shopify shop)."),
        backfill: bool = typer.Option(False, "--backfill", help="Load the whole history with a bulk operation."),
        since: str | None = typer.Option(None, "--since", help="With --backfill: only orders created since this date."),
    ) -> None:
        """Pull orders from Shopify (incremental by default, or a bulk backfill)."""
        sync_shopify_stores(store, backfill=backfill, since=since)
        console.print("done")
