"""Core commands: database, file imports, members, the import-error table, demo."""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from vipsync.bootstrap import get_context
from vipsync.cli.progress import console, err_console, open_with_progress
from vipsync.connectors.records import MemberRecord, OrderFact, OrderRecord, Rejected
from vipsync.errors import ConfigError

__all__ = ["READERS", "print_summary", "print_sync_result", "register", "run_import", "sync_targets"]

# Each file kind: (reader "module:function", store kind or None). A reader takes a binary
# file and the store's config and yields OrderRecord/MemberRecord or Rejected; its module
# also has `replay_record(raw, store)` yielding the same, for the import-error table.
READERS: dict[str, tuple[str, str | None]] = {
    "shopify": ("vipsync.connectors.shopify.files:read_orders_file", "shopify"),
    "amazon-report": ("vipsync.connectors.amazon.flatfile:read_all_orders_report", "amazon"),
    "members": ("vipsync.connectors.files.members:read_members_csv", None),
    # Orders API records rejected during a sync: replayed by the same Amazon module.
    "amazon-api": ("vipsync.connectors.amazon.flatfile:read_all_orders_report", "amazon"),
    # Facts after the sale: the returns report, and refund events rejected during a sync.
    "amazon-returns": ("vipsync.connectors.amazon.finances:read_returns_report", "amazon"),
    "amazon-finances": ("vipsync.connectors.amazon.finances:read_returns_report", "amazon"),
}
FACT_KINDS = frozenset({"amazon-returns", "amazon-finances"})


def _load(spec: str) -> Callable:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def print_summary(title: str, counts: dict[str, int]) -> None:
    if len(counts) > 5:  # many counts read better as rows than as truncated columns
        table = Table("what", "count", title=title)
        for key, value in counts.items():
            table.add_row(key, str(value))
    else:
        table = Table(*counts, title=title)
        table.add_row(*(str(v) for v in counts.values()))
    console.print(table)


def sync_targets(ctx, kind: str, store: str | None, *, backfill: bool, since: str | None) -> list[str]:
    """The store keys a `vipsync sync KIND` runs on, after checking its options."""
    from datetime import date

    if since is not None:
        if not backfill:
            raise ConfigError("--since goes with --backfill")
        try:
            date.fromisoformat(since)
        except ValueError:
            raise ConfigError(f"--since must be a date YYYY-MM-DD, not {since!r}") from None
    if store:
        return [getattr(ctx.stores, kind)(store).key]  # Stores.shopify / Stores.amazon check the kind
    keys = [s.key for s in ctx.stores.of_kind(kind)]
    if not keys:
        raise ConfigError(f"the stores file lists no {kind} store")
    return keys


def print_sync_result(result, *, kind: str, errors_source: str) -> None:
    """A sync's counts, its notes for ops, and where its rejects are."""
    counts = result.as_dict()
    print_summary(
        f"{kind} {result.mode} sync of {result.store_key}",
        {k: v for k, v in counts.items() if k not in ("store", "mode")},
    )
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    if result.rejected:
        err_console.print(
            f"{result.rejected} order(s) rejected: see `vipsync errors list --source {errors_source}`",
            highlight=False,
        )


def run_import(kind: str, path: Path, store_key: str | None) -> dict[str, int]:
    """Stream ``path`` through the reader of ``kind`` into the store; print the counts."""
    from vipsync.workers.imports import import_facts, import_records

    ctx = get_context()
    spec, store_kind = READERS[kind]
    store = None
    if store_kind is not None:
        if not store_key:
            raise ConfigError(f"`vipsync import {kind}` needs --store (one of the {store_kind} stores)")
        store = ctx.stores.get(store_key)
        if store.kind != store_kind:
            raise ConfigError(
                f"store {store_key!r} is a {store.kind} store; `import {kind}` needs a {store_kind} store"
            )
    reader = _load(spec)
    if not path.is_file():
        raise ConfigError(f"cannot read {path}: no such file")
    try:
        with open_with_progress(path, f"importing {path.name}") as fh:
            items = reader(fh) if store is None else reader(fh, store)
            write = import_facts if kind in FACT_KINDS else import_records
            summary = write(
                ctx.session_factory,
                items,
                kind=kind,
                store_key=store_key,
                source_name=path.name,
                batch_size=ctx.settings.batch_size,
            )
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        # The file as a whole cannot be read: the only case that exits non-zero.
        raise ConfigError(f"cannot read {path}: {exc}") from None
    counts = summary.as_dict()
    print_summary(f"{kind} import of {path.name} (run {summary.run_id})", counts)
    if counts["rejected"]:
        err_console.print(
            f"{counts['rejected']} record(s) rejected: see `vipsync errors list --run {summary.run_id}`",
            highlight=False,
        )
    return counts


def _replay_items(rows) -> Iterator[tuple[Any, OrderRecord | MemberRecord | OrderFact | Rejected]]:
    ctx = get_context()
    for row in rows:
        spec, store_kind = READERS.get(row.source, (None, None))
        if spec is None:
            yield row, Rejected(row.record_id, None, f"no replay for source {row.source!r}", row.raw)
            continue
        module = importlib.import_module(spec.split(":")[0])
        raw: Any = row.raw
        if raw.startswith(("{", "[")):
            with contextlib.suppress(ValueError, RecursionError):  # else replayed as the text it is
                raw = json.loads(raw)
        store = ctx.stores.get(row.store_key) if store_kind and row.store_key else None
        try:
            yield from ((row, item) for item in module.replay_record(raw, store))
        except Exception as exc:  # a stored record the reader cannot read stays open
            yield row, Rejected(row.record_id, None, f"unreadable record ({type(exc).__name__})", None)


def register(groups) -> None:
    db, imports, members, errors, app = groups.db, groups.imports, groups.members, groups.errors, groups.app

    @db.command("upgrade")
    def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
        """Run the migrations (the production path on PostgreSQL)."""
        from vipsync.store.db import current_revision, make_engine, upgrade

        ctx = get_context()
        engine = make_engine(ctx.settings.effective_database_url)
        before = current_revision(engine)
        upgrade(engine, revision)
        console.print(f"database at {current_revision(engine)} (was {before or 'empty'})")

    @db.command("current")
    def db_current() -> None:
        """Print the schema revision of the database and of the code."""
        from vipsync.store.db import current_revision, head_revision, make_engine

        engine = make_engine(get_context().settings.effective_database_url)
        console.print(f"database: {current_revision(engine) or 'empty'}  code: {head_revision()}")

    @imports.command("shopify")
    def import_shopify(
        file: Path = typer.Argument(
            ...,
            help="Orders as JSON ({order}, {orders: [...]}) or JSON Lines, REST/webhook shape, or a bulk-operation result.",
        ),
        store: str = typer.Option(..., "--store", help="Key of the Shopify shop in the stores file."),
    ) -> None:
        """Import Shopify orders from a file."""
        run_import("shopify", file, store)

    @imports.command("amazon-report")
    def import_amazon_report(
        file: Path = typer.Argument(..., help="Tab-separated All Orders flat-file report."),
        store: str = typer.Option(..., "--store", help="Key of the Amazon account in the stores file."),
    ) -> None:
        """Import Amazon's All Orders flat-file report (by order date or by last update)."""
        run_import("amazon-report", file, store)

    @imports.command("amazon-returns")
    def import_amazon_returns(
        file: Path = typer.Argument(
            ..., help="Tab-separated returns report (GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE)."
        ),
        store: str = typer.Option(..., "--store", help="Key of the Amazon account in the stores file."),
    ) -> None:
        """Import Amazon's returns report: rows that record a refund take units (POLICY.md)."""
        run_import("amazon-returns", file, store)

    @members.command("import")
    def members_import(
        file: Path = typer.Argument(..., help="CSV: email,registered_at[,country,exited_at]"),
    ) -> None:
        """Import VIP members from a CSV file."""
        run_import("members", file, None)

    @errors.command("list")
    def errors_list(
        run: int | None = typer.Option(None, "--run", help="Only errors of this import run."),
        source: str | None = typer.Option(None, "--source"),
        status: str = typer.Option("open", "--status", help="open, replayed, dropped or all"),
        fmt: str = typer.Option("table", "--format", help="table or json"),
    ) -> None:
        """List records that could not be imported (no personal data is shown)."""
        from sqlalchemy import select

        from vipsync.store.models import ImportError_

        ctx = get_context()
        q = select(ImportError_).order_by(ImportError_.id)
        if run is not None:
            q = q.where(ImportError_.run_id == run)
        if source:
            q = q.where(ImportError_.source == source)
        if status != "all":
            q = q.where(ImportError_.status == status)
        with ctx.session_factory() as session:
            rows = list(session.execute(q).scalars())
        fields = ("id", "run_id", "source", "store_key", "record_id", "field", "message", "status")
        if fmt == "json":
            console.print_json(json.dumps([{f: getattr(r, f) for f in fields} for r in rows]))
            return
        table = Table(*fields)
        for r in rows:
            table.add_row(*(str(getattr(r, f) if getattr(r, f) is not None else "") for f in fields))
        console.print(table)

    @errors.command("replay")
    def errors_replay(
        ids: list[int] = typer.Argument(None, help="Error ids; none means every open error."),
        source: str | None = typer.Option(None, "--source"),
    ) -> None:
        """Map the stored records again (after a fix) and import those that now pass."""
        from sqlalchemy import select

        from vipsync.store.models import ImportError_
        from vipsync.store.repository import Repository
        from vipsync.store.writer import is_unavailable, write_batch

        ctx = get_context()
        with ctx.session_factory() as session:
            q = select(ImportError_).where(ImportError_.status == "open").order_by(ImportError_.id)
            if ids:
                q = q.where(ImportError_.id.in_(ids))
            if source:
                q = q.where(ImportError_.source == source)
            rows = list(session.execute(q).scalars())
            session.expunge_all()
        fixed = still = 0
        for row, item in _replay_items(rows):
            if isinstance(item, Rejected):
                still += 1
                continue
            try:  # the one writer's batch path: the record alone, in its own transaction
                write_batch(ctx.session_factory, [item])
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                still += 1
                continue
            with ctx.session_factory() as session:
                Repository(session).resolve_error(row.id, "replayed")
                session.commit()
            fixed += 1
        print_summary("replay", {"replayed": fixed, "still_failing": still})

    @errors.command("drop")
    def errors_drop(ids: list[int] = typer.Argument(..., help="Error ids to drop.")) -> None:
        """Mark errors as dropped (kept for the record, no longer listed as open)."""
        from vipsync.store.repository import Repository

        with get_context().session_factory() as session:
            repo = Repository(session)
            for i in ids:
                repo.resolve_error(i, "dropped")
            session.commit()
        console.print(f"dropped {len(ids)} error(s)")

    @app.command("status")
    def status() -> None:
        """Counts of what the store holds."""
        from vipsync.store.repository import Repository

        with get_context().session_factory() as session:
            counts = Repository(session).counts()
        print_summary("vipsync store", counts)
