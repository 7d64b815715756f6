"""Commands of the amazon part (registered by vipsync.cli.main):
``vipsync sync amazon [--store KEY] [--backfill [--since DATE]]``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import typer

from vipsync.bootstrap import get_context
from vipsync.cli.progress import console, err_console, progress_bar

__all__ = ["describe_estimate", "register", "sync_amazon_accounts"]


def _fmt_s(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_estimate(*, backfill: bool, days: float, expected_orders: int) -> str:
    """One plain line: the calls and the minimum time SP-API's documented limits impose."""
    from vipsync.connectors.amazon.pacing import estimate

    if backfill:
        windows = max(1, math.ceil(days / 30))
        est = estimate(orders=expected_orders, mode="report", report_windows=windows)
        return (
            f"backfill by report: {windows} report(s) of up to 30 days; createReport and getReportDocument allow a "
            f"burst of 15 then 1 per minute: at least {_fmt_s(est.seconds)} of pacing, plus Amazon's report "
            "processing time (minutes per report)"
        )
    est = estimate(orders=expected_orders, mode="orders_api")
    return (
        f"about {expected_orders} updated order(s) expected: {est.calls['getOrders']} getOrders page(s) "
        f"(burst 20, then 1 per minute) and up to {est.calls['getOrderItems']} getOrderItems call(s) "
        f"(burst 30, then 1 per 2 s): at least {_fmt_s(est.seconds)} imposed by the rate limits"
    )


def _expected_orders(ctx, key: str, after: datetime | None, now: datetime) -> tuple[int, float]:
    """Orders this account had updated over a window as long as the one about to be synced."""
    from sqlalchemy import func, select

    from vipsync.store.models import Order

    after = after or now - timedelta(days=7)
    span = max(now - after, timedelta(minutes=1))
    with ctx.session_factory() as session:
        n = session.execute(
            select(func.count())
            .select_from(Order)
            .where(Order.store_key == key, Order.source_updated_at >= now - span)
        ).scalar_one()
    return int(n), span.total_seconds() / 86400


def sync_amazon_accounts(store: str | None, *, backfill: bool, since: str | None) -> list:
    """Run the sync job of one Amazon account, or of every one; print each result."""
    from vipsync.cli.commands_core import print_sync_result, sync_targets
    from vipsync.store.repository import Repository
    from vipsync.workers.amazon_jobs import HISTORY_DAYS, STREAM, sync_account
    from vipsync.workers.runner import store_lock
    from vipsync.workers.sync_health import tracked

    ctx = get_context()
    keys = sync_targets(ctx, "amazon", store, backfill=backfill, since=since)
    results = []
    now = datetime.now(UTC)
    for key in keys:
        mode = "backfill" if backfill else "incremental"
        if backfill:
            start = (
                datetime.fromisoformat(since).replace(tzinfo=UTC)
                if since
                else now - timedelta(days=HISTORY_DAYS)
            )
            line = describe_estimate(
                backfill=True, days=(now - start).total_seconds() / 86400, expected_orders=0
            )
        else:
            with ctx.session_factory() as session:
                cur = Repository(session).get_cursor(key, STREAM)
                after = datetime.fromisoformat(cur.value) if cur is not None and cur.value else None
            expected, days = _expected_orders(ctx, key, after, now)
            line = describe_estimate(backfill=False, days=days, expected_orders=expected)
        err_console.print(f"[dim]{key}: {line}[/]", highlight=False)

        with (
            store_lock(ctx, "sync_amazon", {"store_key": key}),
            progress_bar(f"{key}: {mode} sync (orders)") as advance,
        ):
            seen = {"orders": 0}

            def progress(stage: str, *, seen: dict[str, int] = seen, **info) -> None:
                done = int(info.get("orders", 0))
                total = info.get("windows") if stage == "report" else None
                advance(max(0, done - seen["orders"]), total=total)
                seen["orders"] = done

            result = tracked(ctx, key, sync_account, backfill=backfill, since=since, progress=progress)
        results.append(result)
        print_sync_result(result, kind="amazon", errors_source="amazon-api")
    return results


def register(groups) -> None:
    """Add this module's commands to the CLI groups."""

    @groups.sync.command("amazon")
    def sync_amazon(
        store: str | None = typer.Option(
            None, "--store", help="Key of one Amazon account (default: every Amazon account)."
        ),
        backfill: bool = typer.Option(
            False, "--backfill", help="Load the history through the Reports API (All Orders report)."
        ),
        since: str | None = typer.Option(
            None, "--since", help="With --backfill: orders purchased since this date (default: 2 years back)."
        ),
    ) -> None:
        """Pull orders from Amazon SP-API (incremental by default, or a report backfill)."""
        sync_amazon_accounts(store, backfill=backfill, since=since)
        console.print("done")
