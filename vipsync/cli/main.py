"""The ``vipsync`` command: every job runs inline here (the embedded default) or is
handed to the workers. Expected failures print one clear line and exit 2; bugs raise.

Commands load lazily: ``vipsync --help`` lists every command from :data:`COMMANDS` without
importing a command module, and ``vipsync <name> ...`` imports only the modules that
register ``<name>`` (so ``vipsync api token new`` never imports SQLAlchemy, dramatiq or
the store clients). A command module keeps the usual shape, a ``register(groups)`` that adds
its commands to :class:`Groups`; to add one, write one line in :data:`COMMANDS` per
top-level name it registers::

    Lazy("members", "vipsync.cli.commands_members"),        # commands in an existing group
    Lazy("policy", "vipsync.cli.commands_policy", "Policy versions: list, check."),  # new name

A group of :class:`Groups` takes its help from :data:`GROUP_HELP`; any other name (a
top-level command, or a group the module creates itself) carries its one-line help in its
``Lazy`` entry. ``tests/unit/test_cli_lazy.py`` checks the entries against the commands
the modules really register, help lines included.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer import _click as click  # typer vendors click: its Group, Command and Context
from typer.core import TyperCommand, TyperGroup

from vipsync.errors import VipsyncError

__all__ = ["COMMANDS", "GROUP_HELP", "Groups", "Lazy", "app", "groups", "load_all", "main"]


@dataclass(frozen=True)
class Lazy:
    """One top-level name of ``vipsync`` and the module whose ``register(groups)`` adds it.
    ``help`` is the line ``vipsync --help`` shows (None: the group's help in GROUP_HELP)."""

    name: str
    module: str
    help: str | None = None


# The order here is the order of `vipsync --help`. A module touching several names is
# listed once per name.
COMMANDS: tuple[Lazy, ...] = (
    Lazy("status", "vipsync.cli.commands_core", "Counts of what the store holds."),
    Lazy(
        "tag",
        "vipsync.cli.commands_eligibility",
        "Tag units with their VIP eligibility and windows (new and changed units; --all: every unit).",
    ),
    Lazy(
        "units",
        "vipsync.cli.commands_eligibility",
        "Print each unit with its eligibility, windows and benefit status (no personal data).",
    ),
    Lazy(
        "run",
        "vipsync.cli.commands_workers",
        "Sync every store that has credentials or an endpoint, then tag units: inline, no Redis.",
    ),
    Lazy(
        "scheduler",
        "vipsync.cli.commands_workers",
        "Enqueue the scheduled jobs to the workers (Redis); safe to run twice.",
    ),
    Lazy(
        "worker",
        "vipsync.cli.commands_workers",
        "Run dramatiq workers (the same as `dramatiq vipsync.workers.actors`).",
    ),
    Lazy(
        "web", "vipsync.cli.commands_workers", "Serve the HTTP API (vipsync.api.app:create_app) with uvicorn."
    ),
    Lazy(
        "demo",
        "vipsync.cli.demo",
        "Load the bundled samples into a fresh SQLite store, sync the fake stores, tag, summarize.",
    ),
    Lazy("db", "vipsync.cli.commands_core"),
    Lazy("import", "vipsync.cli.commands_core"),
    Lazy("members", "vipsync.cli.commands_core"),
    Lazy("members", "vipsync.cli.commands_members"),
    Lazy("proofs", "vipsync.cli.commands_members", "Proofs of purchase: verify one, list the decisions."),
    Lazy("claims", "vipsync.cli.commands_members", "Claims: exchanges, trade-ins, quotes, trade-in codes."),
    Lazy("sync", "vipsync.cli.commands_shopify"),
    Lazy("sync", "vipsync.cli.commands_amazon"),
    Lazy("catalog", "vipsync.cli.commands_eligibility"),
    Lazy("catalog", "vipsync.cli.commands_ops"),
    Lazy("db", "vipsync.cli.commands_ops"),
    Lazy(
        "policy",
        "vipsync.cli.commands_ops",
        "Policy versions: list, enable, disable (ops decisions in the store).",
    ),
    Lazy("dlq", "vipsync.cli.commands_workers"),
    Lazy("errors", "vipsync.cli.commands_core"),
    Lazy("webhooks", "vipsync.cli.commands_webhooks", "Shopify webhook deliveries: list, replay."),
    Lazy("api", "vipsync.cli.commands_api", "The HTTP API: bearer tokens."),
    Lazy("pii", "vipsync.cli.commands_pii", "Personal data: keyed digests, rekey, data requests, erasure."),
)

GROUP_HELP: dict[str, str] = {
    "db": "The database: migrations.",
    "import": "Import orders from files (exports, reports, bulk results).",
    "members": "VIP members.",
    "sync": "Pull orders from the stores' APIs.",
    "catalog": "The product catalog and its classification.",
    "dlq": "The workers' dead-letter queue.",
    "errors": "Records that could not be imported: list, replay, drop.",
}


class _LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` from their help lines, imports a command's
    modules only when that command runs (or its own ``--help`` is asked for)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = dict.fromkeys(entry.name for entry in COMMANDS)
        names.update(dict.fromkeys(self.commands))
        return list(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        modules = {entry.module for entry in COMMANDS if entry.name == cmd_name}
        if modules <= _registered:
            return self.commands.get(cmd_name)
        if ctx.meta.get(_LISTING):
            # Only the name and help line are read while the root help is printed.
            return TyperCommand(name=cmd_name, help=_help_line(cmd_name))
        command = _load(cmd_name)
        if command is not None:
            self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta[_LISTING] = True
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx.meta.pop(_LISTING, None)


_LISTING = "vipsync.cli.listing"

app = typer.Typer(
    name="vipsync",
    cls=_LazyGroup,
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


def _group(name: str) -> typer.Typer:
    sub = typer.Typer(help=GROUP_HELP[name], no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


groups = Groups(
    app=app,
    db=_group("db"),
    imports=_group("import"),
    members=_group("members"),
    sync=_group("sync"),
    catalog=_group("catalog"),
    dlq=_group("dlq"),
    errors=_group("errors"),
)

_registered: set[str] = set()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr."),
    debug: bool = typer.Option(False, "--debug", help="On a failure, print the traceback too."),
) -> None:
    from vipsync.logging import configure_logging

    configure_logging("DEBUG" if verbose or debug else None)


def _help_line(name: str) -> str:
    for entry in COMMANDS:
        if entry.name == name and entry.help:
            return entry.help
    return GROUP_HELP.get(name, "")


def _register(module_name: str) -> None:
    if module_name not in _registered:
        module: Any = importlib.import_module(module_name)
        module.register(groups)
        _registered.add(module_name)


def _load(name: str) -> click.Command | None:
    """Register the modules behind ``name`` and build its click command."""
    for entry in COMMANDS:
        if entry.name == name:
            _register(entry.module)
    full = typer.main.get_group(app)
    return full.commands.get(name)


def load_all() -> TyperGroup:
    """Register every command module; the whole command tree (for checks and docs)."""
    for entry in COMMANDS:
        _register(entry.module)
    return typer.main.get_group(app)


def main() -> None:
    """The entry point. Exit codes: 0 done; 2 an expected failure (a VipsyncError: bad
    settings, an unreadable file, a busy store, a source refusing), one line; 1 a bug, one
    line naming the exception and where it was raised (never its message, which may quote
    data). ``vipsync --debug ...`` prints the traceback as well."""
    debug = "--debug" in sys.argv[1 : _first_command_index(sys.argv)]
    try:
        app()
    except VipsyncError as exc:
        from vipsync.cli.progress import err_console

        if debug:
            traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        from vipsync.cli.progress import err_console

        if debug:
            traceback.print_exc()
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
        err_console.print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}{where}: a bug, please report it "
            "(`vipsync --debug ...` shows the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


def _first_command_index(argv: list[str]) -> int:
    """The index of the first word of ``argv`` that is not an option (the command)."""
    for i, word in enumerate(argv[1:], start=1):
        if not word.startswith("-"):
            return i
    return len(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
