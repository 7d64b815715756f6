"""Commands of the eligibility part (registered by vipsync.cli.main):
``vipsync tag``, ``vipsync units`` and ``vipsync catalog unclassified``."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date

import typer
from rich.console import Console
from rich.table import Table

from vipsync.bootstrap import get_context
from vipsync.cli.progress import console
from vipsync.errors import ConfigError

__all__ = ["register"]

FORMATS = ("table", "json", "csv")
# The table format leaves out what is long or redundant on screen (json and csv carry every field).
TABLE_LEAVES_OUT = frozenset({"order_id", "valid_purchase", "removed", "tagged"})


def _as_of(value: str | None) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--as-of: {value!r} is not a date (YYYY-MM-DD)") from None


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def register(groups) -> None:
    """Add this module's commands to the CLI groups."""
    app, catalog = groups.app, groups.catalog

    @app.command("tag")
    def tag(
        all_units: bool = typer.Option(
            False,
            "--all",
            help="After a policy or catalog change: re-tag every unit the change can affect.",
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="With --all: count what would change, write nothing."
        ),
        full: bool = typer.Option(False, "--full", help="With --all: judge every unit, affected or not."),
    ) -> None:
        """Tag units with their VIP eligibility and windows (new and changed units; --all: every unit)."""
        from vipsync.workers.tagging import retag_all, tag_pending

        ctx = get_context()
        if (dry_run or full) and not all_units:
            raise ConfigError("--dry-run and --full go with --all")
        result = retag_all(ctx, dry_run=dry_run, full=full) if all_units else tag_pending(ctx)
        counts = result.as_dict()
        table = Table(
            title=f"tagging ({counts.pop('mode')}{', dry run: nothing written' if dry_run else ''})"
        )
        for key in counts:
            table.add_column(key, justify="right")
        table.add_row(*(str(v) for v in counts.values()))
        console.print(table)
        if result.errors:
            console.print(
                f"{result.errors} unit(s) could not be tagged: see `vipsync errors list --source tagging`"
            )

    @app.command("units")
    def units(
        fmt: str = typer.Option("table", "--format", help="table, json (one array of objects) or csv"),
        as_of: str | None = typer.Option(
            None, "--as-of", help="Date for the read-time statuses (YYYY-MM-DD; default today)."
        ),
        store: str | None = typer.Option(None, "--store", help="Only units of this store key."),
        order: str | None = typer.Option(
            None, "--order", help="Only units of this order (id, #name or Amazon order id)."
        ),
        include_removed: bool = typer.Option(
            False, "--include-removed", help="Also units an order edit took away."
        ),
    ) -> None:
        """Print each unit with its eligibility, windows and benefit status (no personal data)."""
        from vipsync.store.read_models import STATUS_FIELDS, UNIT_FIELDS

        table_fields = [f for f in UNIT_FIELDS if f not in TABLE_LEAVES_OUT]
        from vipsync.workers.tagging import unit_view

        if fmt not in FORMATS:
            raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
        day = _as_of(as_of)
        ctx = get_context()
        with ctx.session_factory() as session:
            rows = unit_view(
                session, as_of=day, store_key=store, order=order, include_removed=include_removed
            )
            out = sys.stdout
            if fmt == "json":
                # Streamed: one JSON array, one object per unit, whatever the number of units.
                out.write("[")
                count = 0
                for row in rows:
                    out.write(("\n  " if count == 0 else ",\n  ") + json.dumps(row, ensure_ascii=False))
                    count += 1
                out.write("\n]\n" if count else "]\n")
            elif fmt == "csv":
                fields = UNIT_FIELDS + STATUS_FIELDS
                writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: _cell(row[k]) for k in fields})
            else:
                table = Table(*table_fields, title=f"units as of {day.isoformat()}")
                count = 0
                for row in rows:
                    table.add_row(*(_cell(row[k]) for k in table_fields))
                    count += 1
                # Wide enough for every column; use --format csv or json for tools.
                Console(width=max(console.width, 220)).print(table)
                console.print(f"{count} unit(s)")

    @catalog.command("unclassified")
    def catalog_unclassified(
        fmt: str = typer.Option("table", "--format", help="table or json"),
    ) -> None:
        """SKUs the catalog cannot place yet, with how many orders carry them (run `vipsync tag` first)."""
        from vipsync.store.read_models import unclassified_skus

        with get_context().session_factory() as session:
            rows = unclassified_skus(session)
        if fmt == "json":
            sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
            return
        table = Table("sku", "title", "orders", "units", title="SKUs to classify in catalog.toml")
        for r in rows:
            table.add_row(r["sku"], r["title"], str(r["orders"]), str(r["units"]))
        console.print(table)
        console.print(f"{len(rows)} SKU(s) to classify")
