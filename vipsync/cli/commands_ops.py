"""Commands of the ops console (registered by vipsync.cli.main): ops decisions kept in the
store (``vipsync catalog classify``, ``vipsync catalog decisions``, ``vipsync policy
list|enable|disable``), the read-only role (``vipsync db grant-readonly``) and the web
process (``vipsync web``)."""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from vipsync.bootstrap import get_context
from vipsync.cli.progress import console
from vipsync.errors import ConfigError

if TYPE_CHECKING:  # main imports this module; at run time it passes the groups in
    from vipsync.cli.main import Groups

__all__ = ["print_decision", "register"]


def _who() -> str:
    """Who decides from the command line: VIPSYNC_OPERATOR, else the login name."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        login = "unknown"
    return "cli:" + (os.environ.get("VIPSYNC_OPERATOR") or login)


def print_decision(result: Any, *, as_json: bool) -> None:
    """A decision's outcome: the counts, the before/after matrix, the units listed."""
    data = result.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    head = "dry run, nothing written: " if result.dry_run else ""
    console.print(f"{head}{result.decision}", highlight=False)
    console.print(
        f"{result.affected_units} unit(s) affected, {result.changed_units} would change category, status or windows"
        if result.dry_run
        else f"{result.affected_units} unit(s) re-tagged, {result.changed_units} changed category, status or windows",
        highlight=False,
    )
    console.print(f"{result.windows_changed} window(s) changed", highlight=False)
    if result.benefit_matrix:
        matrix = Table("benefit_status before -> after", "units", title="benefit status")
        for k, v in result.benefit_matrix.items():
            matrix.add_row(k, str(v))
        console.print(matrix)
    if result.changes:
        table = Table(
            "unit",
            "store",
            "order",
            "sku",
            "category",
            "before",
            "after",
            "version",
            "windows",
            title="units",
        )
        for c in result.changes:
            table.add_row(
                str(c.unit_id),
                c.store,
                c.order_id,
                c.sku,
                f"{c.category_before or '-'} -> {c.category_after}",
                f"{c.benefit_before or '-'} / {'eligible' if c.eligible_before else 'not eligible'}",
                f"{c.benefit_after or '-'} / {'eligible' if c.eligible_after else 'not eligible'}",
                f"{c.version_before or '-'} -> {c.version_after}",
                str(c.windows_changed),
            )
        console.print(table)
        if result.changed_units > len(result.changes):
            console.print(
                f"(first {len(result.changes)} of {result.changed_units} listed; --json for the list)"
            )
    if result.claimed_units:
        ids = ", ".join(str(u) for u in result.claimed_units[:50])
        console.print(
            f"{len(result.claimed_units)} claimed unit(s) keep the version their claim was recorded with: {ids}",
            highlight=False,
        )


def register(groups: Groups) -> None:
    """Add this module's commands to the CLI groups."""
    catalog, db = groups.catalog, groups.db
    policy = typer.Typer(
        help="Policy versions: list, enable, disable (ops decisions in the store).", no_args_is_help=True
    )
    groups.app.add_typer(policy, name="policy")

    @catalog.command("classify")
    def catalog_classify(
        key: str = typer.Argument(..., help="The SKU (or, with --title, the title of lines without a SKU)."),
        category: str = typer.Argument(
            ..., help="kvm_switch, matrix, hdmi_splitter, kvm_extender, accessory, other"
        ),
        by_title: bool = typer.Option(
            False, "--title", help="KEY is the title of order lines without a SKU."
        ),
        note: str = typer.Option("", "--note", help="Why (kept with the decision)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Count and list the units that would change."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    ) -> None:
        """Classify a SKU in the store (wins over catalog.toml in every process); re-tag its units."""
        from vipsync.workers.decisions import classify

        result = classify(
            get_context(), key, category, by_title=by_title, note=note, decided_by=_who(), dry_run=dry_run
        )
        print_decision(result, as_json=as_json)

    @catalog.command("decisions")
    def catalog_decisions(as_json: bool = typer.Option(False, "--json")) -> None:
        """The catalog decisions kept in the store, newest first: who, when, why."""
        from vipsync.store.decisions import catalog_history

        with get_context().session_factory() as session:
            rows = catalog_history(session)
        if as_json:
            sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
            return
        table = Table(
            "id", "sku", "title", "category", "decided_by", "decided_at", "note", title="catalog decisions"
        )
        for r in rows:
            table.add_row(
                *(str(r[k]) for k in ("id", "sku", "title", "category", "decided_by", "decided_at", "note"))
            )
        console.print(table)

    @policy.command("list")
    def policy_list(as_json: bool = typer.Option(False, "--json")) -> None:
        """Every policy version as the processes apply it: the file, with the store's decisions on top."""
        from vipsync.workers.decisions import policy_table

        rows = policy_table(get_context())
        if as_json:
            sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
            return
        cols = (
            "version",
            "effective_from",
            "enabled",
            "retroactive",
            "stores",
            "countries",
            "decided_by",
            "decided_at",
        )
        table = Table(*cols, title="policy versions")
        for r in rows:
            table.add_row(
                *("all" if r[k] is None and k in ("stores", "countries") else str(r[k]) for k in cols)
            )
        console.print(table)

    def _set(version: str, enabled: bool, stores, countries, note: str, dry_run: bool, as_json: bool) -> None:
        from vipsync.workers.decisions import set_policy

        result = set_policy(
            get_context(),
            version,
            enabled=enabled,
            stores=_split(stores),
            countries=_split(countries),
            note=note,
            decided_by=_who(),
            dry_run=dry_run,
        )
        print_decision(result, as_json=as_json)

    store_opt = typer.Option(
        None, "--store", help="Limit the version to these store keys (repeat or comma-separate)."
    )
    country_opt = typer.Option(None, "--country", help="Limit the version to these countries (ISO codes).")

    @policy.command("enable")
    def policy_enable(
        version: str = typer.Argument(..., help="The policy version (see `vipsync policy list`)."),
        store: list[str] | None = store_opt,
        country: list[str] | None = country_opt,
        note: str = typer.Option("", "--note", help="Why (kept with the decision)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Report what would change, write nothing."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    ) -> None:
        """Enable a policy version (kept in the store); re-tag the units it now judges."""
        _set(version, True, store, country, note, dry_run, as_json)

    @policy.command("disable")
    def policy_disable(
        version: str = typer.Argument(..., help="The policy version."),
        note: str = typer.Option("", "--note", help="Why (kept with the decision)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Report what would change, write nothing."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    ) -> None:
        """Disable a policy version (kept in the store); re-tag the units it judged."""
        _set(version, False, None, None, note, dry_run, as_json)

    @db.command("grant-readonly")
    def db_grant_readonly(
        role: str = typer.Argument(..., help="The PostgreSQL role dashboards connect as."),
        password_env: str | None = typer.Option(
            None,
            "--password-env",
            help="Name of the environment variable holding the role's password (makes it a login role).",
        ),
    ) -> None:
        """Create a PostgreSQL role that can read the ops views and nothing else."""
        from vipsync.store.views import grant_readonly

        password = None
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise ConfigError(f"--password-env: the variable {password_env} is not set or empty")
        ctx = get_context()
        try:
            with ctx.engine.begin() as conn:
                granted = grant_readonly(conn, role, password=password)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        console.print(f"role {role}: SELECT on {len(granted)} view(s): {', '.join(granted)}", highlight=False)


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None
