"""``vipsync pii``: personal data: key status, rekey, data requests, erasure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # main imports this module; at run time it passes the groups in
    from vipsync.cli.main import Groups

__all__ = ["register"]


def register(groups: Groups) -> None:
    pii = typer.Typer(
        help="Personal data: keyed digests, rekey, data requests, erasure.", no_args_is_help=True
    )
    groups.app.add_typer(pii, name="pii")

    @pii.command("status")
    def status() -> None:
        """The current key id, the stored digests per key id, and the open privacy requests."""
        from sqlalchemy import select

        from vipsync.bootstrap import get_context
        from vipsync.store.digests import digest_status
        from vipsync.store.models import PrivacyRequest

        ctx = get_context()
        with ctx.session_factory() as s:
            counts = digest_status(s, ctx.digester)
            open_requests = s.execute(
                select(
                    PrivacyRequest.id,
                    PrivacyRequest.kind,
                    PrivacyRequest.store_key,
                    PrivacyRequest.requested_at,
                )
                .where(PrivacyRequest.status != "done")
                .order_by(PrivacyRequest.id)
            ).all()
        typer.echo(f"current key id: {ctx.digester.key_id}")
        typer.echo(f"retired key ids: {', '.join(ctx.digester.key_ids[:-1]) or 'none'}")
        stale = 0
        for table, by_key in counts.items():
            parts = ", ".join(f"{k}: {n}" for k, n in sorted(by_key.items())) or "none"
            typer.echo(f"{table}: {parts}")
            stale += sum(n for k, n in by_key.items() if k != ctx.digester.key_id)
        if stale:
            typer.echo(f"{stale} digests are under another key: run `vipsync pii rekey`")
        for r in open_requests:
            typer.echo(
                f"open request {r.id}: {r.kind} store={r.store_key or '-'} since {r.requested_at:%Y-%m-%d %H:%M}Z"
            )

    @pii.command("rekey")
    def rekey_cmd() -> None:
        """Move every stored e-mail digest to the current key (after a key rotation)."""
        from vipsync.bootstrap import get_context
        from vipsync.store.digests import rekey

        ctx = get_context()
        report = rekey(ctx.session_factory, ctx.digester)
        moved = ", ".join(f"{t}: {n}" for t, n in sorted(report.rows.items())) or "nothing to move"
        typer.echo(f"rekeyed to {ctx.digester.key_id}: {moved}")

    @pii.command("data-request")
    def data_request(
        email: str | None = typer.Option(None, "--email", help="The person's e-mail address."),
        request: int | None = typer.Option(None, "--request", help="A recorded customers/data_request id."),
        out: Path | None = typer.Option(None, "--out", help="Write the JSON here (readable by you only)."),
    ) -> None:
        """What the store holds about a person, as JSON for ops to send."""
        import os

        from vipsync.bootstrap import get_context
        from vipsync.errors import StoreError
        from vipsync.workers.privacy_jobs import data_request_export

        if (email is None) == (request is None):
            raise StoreError("give exactly one of --email and --request")
        data = data_request_export(get_context(), email=email, request_id=request)
        text = json.dumps(data, indent=2, sort_keys=True)
        if out is None:
            typer.echo(text)
            return
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
        typer.echo(f"wrote {out} ({len(data['orders'])} orders, {len(data['members'])} member rows)")

    @pii.command("erase")
    def erase(
        email: str = typer.Option(..., "--email", help="The person's e-mail address."),
        yes: bool = typer.Option(False, "--yes", help="Erase without asking."),
    ) -> None:
        """Erase a person's personal data everywhere; the member stays, pseudonymous."""
        from vipsync.bootstrap import get_context
        from vipsync.workers.privacy_jobs import erase_email

        if not yes:
            typer.confirm("Erase this person's personal data (cannot be undone)?", abort=True)
        ctx = get_context()
        request_id, report = erase_email(ctx, email)
        typer.echo(
            f"privacy request {request_id}: erased {len(report.member_ids)} member(s) "
            f"(kept pseudonymous: {', '.join(map(str, report.member_ids)) or '-'}), {report.orders} order(s), "
            f"{report.raw_payloads} raw payload(s), {report.import_errors} error record(s), "
            f"{report.webhook_deliveries} webhook deliveries; {report.units_to_retag} unit(s) to re-tag"
        )
        if report.units_to_retag:
            ctx.dispatch("tag_pending")
