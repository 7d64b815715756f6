"""The ``vipsync`` command: every job runs inline here (the embedded default) or is
handed to the workers. Expected failures print one clear line and exit 2; bugs raise."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import typer

from vipsync.cli.progress import err_console
from vipsync.errors import VipsyncError

__all__ = ["Groups", "app", "main"]

app = typer.Typer(
    name="vipsync",
    help="Order sync and VIP warranty tagging for TESmart's official stores.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass(frozen=True)
class Groups:
    """The command groups other modules add their commands to."""

    app: typer.Typer
    db: typer.Typer
    imports: typer.Typer
    members: typer.Typer
    sync: typer.Typer
    catalog: typer.Typer
    dlq: typer.Typer
    errors: typer.Typer


def _group(name: str, help: str) -> typer.Typer:
    sub = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


groups = Groups(
    app=app,
    db=_group("db", "The database: migrations."),
    imports=_group("import", "Import orders from files (exports, reports, bulk results)."),
    members=_group("members", "VIP members."),
    sync=_group("sync", "Pull orders from the stores' APIs."),
    catalog=_group("catalog", "The product catalog and its classification."),
    dlq=_group("dlq", "The workers' dead-letter queue."),
    errors=_group("errors", "Records that could not be imported: list, replay, drop."),
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr.")) -> None:
    from vipsync.logging import configure_logging

    configure_logging("DEBUG" if verbose else None)


def _register_all() -> None:
    # Each module adds its own commands; the order here is the order of `--help`.
    from vipsync.cli import (
        commands_amazon,
        commands_api,
        commands_core,
        commands_eligibility,
        commands_members,
        commands_shopify,
        commands_workers,
        demo,
    )

    for module in (
        commands_core,
        commands_shopify,
        commands_amazon,
        commands_eligibility,
        commands_members,
        commands_workers,
        commands_api,
        demo,
    ):
        module.register(groups)


_register_all()


def main() -> None:
    try:
        app()
    except VipsyncError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
