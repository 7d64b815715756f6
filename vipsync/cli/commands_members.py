"""Commands of the customer-facing side (registered by vipsync.cli.main):
``vipsync members register|exit|erase|show``, ``vipsync proofs verify|list`` and
``vipsync claims record|quote|apply-trade-ins``.

They run the same jobs as the ``/v1`` API, as the ``support`` side (no rate limits, no
minimum delay: the operator is trusted); every answer is JSON on stdout, without personal
data. Expected refusals exit 2 with one line.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import typer

from vipsync.bootstrap import get_context
from vipsync.errors import ConfigError, RecordError

__all__ = ["register"]


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _day_or_ts(value: str | None, option: str) -> date | datetime | None:
    if value is None:
        return None
    try:
        if "T" in value or " " in value.strip():
            ts = datetime.fromisoformat(value)
            if ts.tzinfo is None:
                raise ConfigError(
                    f"{option}: a timestamp needs its UTC offset (e.g. 2026-01-05T10:00:00+01:00)"
                )
            return ts
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a date (YYYY-MM-DD) or a timestamp") from None


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None


def register(groups) -> None:
    members = groups.members
    proofs = typer.Typer(help="Proofs of purchase: verify one, list the decisions.", no_args_is_help=True)
    claims = typer.Typer(help="Claims: exchanges, trade-ins, quotes, trade-in codes.", no_args_is_help=True)
    groups.app.add_typer(proofs, name="proofs")
    groups.app.add_typer(claims, name="claims")

    @members.command("register")
    def members_register(
        email: str = typer.Option(..., "--email", help="The member's e-mail (kept as a keyed digest)."),
        country: str = typer.Option(..., "--country", help="ISO code: decides whether the person may join."),
        on: str | None = typer.Option(None, "--on", help="Registration date or timestamp (default: now)."),
        reason: str | None = typer.Option(None, "--reason", help="Why an earlier date is given."),
    ) -> None:
        """Register a member (support): re-registering while active changes nothing."""
        from vipsync.workers.members import register_member

        result = register_member(
            get_context(),
            email=email,
            country=country,
            on=_day_or_ts(on, "--on"),
            reason=reason,
            source="support",
        )
        _print(result.as_dict())

    @members.command("exit")
    def members_exit(
        email: str = typer.Option(..., "--email"),
        on: str | None = typer.Option(None, "--on", help="Exit date or timestamp (default: now)."),
        reason: str | None = typer.Option(None, "--reason"),
    ) -> None:
        """Record a member's exit: program windows end; claims and covers stay."""
        from vipsync.workers.members import exit_member

        _print(exit_member(get_context(), email=email, on=_day_or_ts(on, "--on"), reason=reason).as_dict())

    @members.command("erase")
    def members_erase(email: str = typer.Option(..., "--email")) -> None:
        """Erase a person's personal data from every table; the member stays pseudonymous
        (exited now) with its warranty records and claims."""
        from vipsync.workers.members import erase_member

        _print(erase_member(get_context(), email=email, origin="cli"))

    @members.command("show")
    def members_show(email: str = typer.Option(..., "--email")) -> None:
        """A member's pseudonymous id, membership and units."""
        from vipsync.workers.members import show_member

        _print(show_member(get_context(), email=email))

    @proofs.command("verify")
    def proofs_verify(
        order: str = typer.Option(..., "--order", help="#1001, 1001 or an Amazon order id."),
        member_email: str = typer.Option(..., "--member-email", help="The member to link the order to."),
        order_email: str | None = typer.Option(None, "--order-email", help="Factor: the order's e-mail."),
        postal_code: str | None = typer.Option(
            None, "--postal-code", help="Factor: the shipping postal code."
        ),
        country: str | None = typer.Option(None, "--country", help="The postal code's country."),
        store: str | None = typer.Option(None, "--store", help="Only this official store."),
        fetch: bool = typer.Option(True, "--fetch/--no-fetch", help="Fetch an unknown order from its store."),
    ) -> None:
        """Verify a proof of purchase and link the order (exit 2 when refused)."""
        from vipsync.workers.proofs import ProofRequest, verify_proof
        from vipsync.workers.proofs_fetch import fetch_on_demand

        if (order_email is None) == (postal_code is None):
            raise RecordError("give one factor: --order-email or --postal-code", field="factor")
        ctx = get_context()
        req = ProofRequest(
            order_id=order,
            member_email=member_email,
            order_email=order_email,
            postal_code=postal_code,
            country=country,
            store=store,
            method="email" if order_email is not None else "postal_code",
        )
        result = verify_proof(ctx, req, client="cli", fetch=fetch_on_demand(ctx) if fetch else None)
        _print(result.as_dict())
        if result.outcome != "verified":
            raise typer.Exit(2)

    @proofs.command("list")
    def proofs_list(
        limit: int = typer.Option(50, "--limit", min=1, max=10_000),
        since: str | None = typer.Option(None, "--since", help="Only decisions from this date (YYYY-MM-DD)."),
    ) -> None:
        """The latest proof decisions (time, client, order, outcome, reason), newest first."""
        from datetime import UTC, time

        from vipsync.workers.proofs import recent_decisions

        start = datetime.combine(_day(since, "--since"), time(0), tzinfo=UTC) if since else None
        _print(recent_decisions(get_context(), limit=limit, since=start))

    @claims.command("record")
    def claims_record(
        unit: int = typer.Option(..., "--unit", help="The unit's id (see `vipsync units`)."),
        kind: str = typer.Option(..., "--kind", help="exchange, trade_in or warranty_exchange."),
        on: str = typer.Option(..., "--on", help="The day the customer's request was opened."),
        ship_date: str | None = typer.Option(
            None, "--ship-date", help="An exchange: the day the replacement ships."
        ),
        reason: str | None = typer.Option(None, "--reason", help="Needed for a request opened long ago."),
    ) -> None:
        """Record a claim; a second benefit on a unit is refused."""
        from vipsync.workers.claims import record_claim

        ship = _day(ship_date, "--ship-date") if ship_date else None
        _print(
            record_claim(
                get_context(), unit_id=unit, kind=kind, on=_day(on, "--on"), ship_date=ship, reason=reason
            )
        )

    @claims.command("quote")
    def claims_quote(
        unit: int = typer.Option(..., "--unit"),
        member_email: str = typer.Option(..., "--member-email"),
        store: str = typer.Option(..., "--store", help="The web store of the new order."),
        sku: str = typer.Option(..., "--sku", help="The new product's SKU."),
        list_price: str | None = typer.Option(
            None, "--list-price", help="Instead of the shop's price (needs --reason)."
        ),
        currency: str | None = typer.Option(None, "--currency"),
        reason: str | None = typer.Option(None, "--reason"),
    ) -> None:
        """Quote a trade-in: a single-use code with an expiry."""
        from vipsync.workers.claims import quote_trade_in
        from vipsync.workers.prices import shop_list_price

        price = None
        if list_price is not None:
            try:
                price = Decimal(list_price)
            except InvalidOperation:
                raise ConfigError(f"--list-price: {list_price!r} is not an amount") from None
        ctx = get_context()
        _print(
            quote_trade_in(
                ctx,
                unit_id=unit,
                member_email=member_email,
                store=store,
                sku=sku,
                list_price=price,
                currency=currency,
                reason=reason,
                caller_scope="support",
                recorded_by="cli",
                price_lookup=lambda s, k: shop_list_price(ctx, s, k),
            )
        )

    @claims.command("apply-trade-ins")
    def claims_apply() -> None:
        """Record the trade-ins of arrived orders that carry a quote's code; release those
        whose order was cancelled or fully refunded (the scheduler runs this after each sync)."""
        from vipsync.workers.trade_ins import apply_trade_in_codes

        _print(apply_trade_in_codes(get_context()).as_dict())
