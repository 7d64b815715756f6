"""``vipsync api``: the HTTP API's bearer tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from vipsync.api.auth import SCOPES, new_token

if TYPE_CHECKING:  # main imports this module; at run time it passes the groups in
    from vipsync.cli.main import Groups

__all__ = ["register"]


def register(groups: Groups) -> None:
    api = typer.Typer(help="The HTTP API: bearer tokens.", no_args_is_help=True)
    groups.app.add_typer(api, name="api")
    token = typer.Typer(help="Bearer tokens (VIPSYNC_API_TOKENS).", no_args_is_help=True)
    api.add_typer(token, name="token")

    @token.command("new")
    def token_new(
        name: str = typer.Argument(..., help="A name for the caller, logged with each decision."),
        scope: str = typer.Option(..., "--scope", help=f"One of: {', '.join(SCOPES)}."),
    ) -> None:
        """Print a fresh token (give it to the caller) and its entry for VIPSYNC_API_TOKENS."""
        secret, entry = new_token(name, scope)
        typer.echo(f"token: {secret}")
        typer.echo(f"VIPSYNC_API_TOKENS entry: {entry}")
        typer.echo("The entry holds only the token's digest; the token is shown once.", err=True)
