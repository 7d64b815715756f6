"""``vipsync webhooks``: the stored Shopify webhook deliveries (list, replay)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from vipsync.bootstrap import get_context
from vipsync.cli.progress import console

if TYPE_CHECKING:  # main imports this module; at run time it passes the groups in
    from vipsync.cli.main import Groups

__all__ = ["register"]


def register(groups: Groups) -> None:
    hooks = typer.Typer(help="Shopify webhook deliveries: list, replay.", no_args_is_help=True)
    groups.app.add_typer(hooks, name="webhooks")

    @hooks.command("list")
    def webhooks_list(
        status: str = typer.Option(
            "failed", "--status", help="failed, pending, done, deferred, ignored or all"
        ),
        limit: int = typer.Option(200, "--limit", min=1),
        fmt: str = typer.Option("table", "--format", help="table or json"),
    ) -> None:
        """Deliveries with their status and error, newest first (no payloads are shown)."""
        from vipsync.workers.shopify_jobs import list_deliveries

        rows = list_deliveries(get_context(), status=None if status == "all" else status, limit=limit)
        fields = ("id", "webhook_id", "store_key", "topic", "status", "attempts", "received_at", "error")
        if fmt == "json":
            console.print_json(json.dumps([{f: r[f] for f in fields} for r in rows], default=str))
            return
        table = Table(*fields)
        for r in rows:
            table.add_row(*(str(r[f]) if r[f] is not None else "" for f in fields))
        console.print(table)

    @hooks.command("replay")
    def webhooks_replay(
        ids: list[int] = typer.Argument(..., help="Delivery ids (from `vipsync webhooks list`)."),
    ) -> None:
        """Process failed or deferred deliveries again (after a fix), inline."""
        from vipsync.workers.shopify_jobs import replay_delivery

        ctx = get_context()
        for delivery_id in ids:
            result = replay_delivery(ctx, delivery_id)
            line = f"delivery {delivery_id}: {result['status']}"
            if result["status"] == "failed":
                errors = _failed(ctx, delivery_id)
                line += f" ({errors[0]})" if errors else ""
            console.print(line, highlight=False)


def _failed(ctx, delivery_id: int) -> list[str]:
    from vipsync.store.models import WebhookDelivery

    with ctx.session_factory() as session:
        row = session.get(WebhookDelivery, delivery_id)
        return [row.error] if row is not None and row.error else []
