"""The Amazon sync job: one seller account, incremental by default, or a report backfill.

``sync_account(ctx, store_key, backfill=False, since=None)``:

- Incremental: getOrders by ``LastUpdatedAfter`` = the ``orders`` bookmark, up to
  ``LastUpdatedBefore`` = the sync's start minus 2.5 minutes (SP-API wants at least 2), in
  slices of at most 30 days. Each page is written in its own transaction; the bookmark moves
  to a slice's end only after every page of that slice is committed. Any error (throttled
  past the retries, 5xx, an undecodable NextToken, a 2xx that is not a verified page)
  leaves the bookmark where it was; the pages already written are idempotent.
- Backfill: the Reports API All Orders report by order date, 30-day windows from ``since``
  (default: two years back, as far as Amazon keeps orders), each streamed into the store;
  a ``orders_backfill`` bookmark lets a failed backfill resume at its next window. Then the
  incremental sync runs from where the backfill ended.
- Refunds: every run (incremental and backfill) then reads the Finances API's refund events
  posted since the ``refunds`` bookmark minus 48 hours (Amazon: events of the last 48 hours
  may be missing; re-read events are already-known facts), up to the same end as the
  orders; the bookmark moves only after every page of a slice is committed. A first run
  reads as far back as the orders do (the backfill's start, or the last 7 days).
- The pacing buckets are saved with the bookmark so the next run does not assume a full
  burst the server has not given back.
- Rejected records go to the import-error table (``amazon-api`` for Orders API payloads,
  ``amazon-report`` for report rows), with the payload for replay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from vipsync.connectors.amazon.client import SpApiClient
from vipsync.connectors.amazon.finances import OVERLAP, iter_refund_pages
from vipsync.connectors.amazon.sync import (
    KnownOrder,
    iter_order_pages,
    open_report_records,
    report_windows,
    run_report,
    safe_until,
)
from vipsync.connectors.records import OrderFact, OrderLine, OrderRecord, Rejected
from vipsync.downloads import workspace
from vipsync.errors import PermanentSourceError
from vipsync.store.models import Order, OrderLineRow
from vipsync.store.repository import Repository
from vipsync.store.writer import write_page
from vipsync.workers.results import SyncResult
from vipsync.workers.runs import follow_growth

__all__ = [
    "BACKFILL_STREAM",
    "DEFAULT_FIRST_SYNC_DAYS",
    "HISTORY_DAYS",
    "STREAM",
    "known_orders",
    "sync_account",
]

log = logging.getLogger(__name__)

STREAM = "orders"
BACKFILL_STREAM = "orders_backfill"
REFUNDS_STREAM = "refunds"
DEFAULT_FIRST_SYNC_DAYS = 7
HISTORY_DAYS = 730  # the Orders API and order reports reach back about two years
SLICE_DAYS = 30

Progress = Callable[..., None]


def _parse_since(since: str | date | datetime | None) -> datetime | None:
    if since is None or since == "":
        return None
    if isinstance(since, datetime):
        return since.astimezone(UTC)
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day, tzinfo=UTC)
    text = str(since).strip()
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def known_orders(factory, store_key: str) -> Callable[[Sequence[str]], Mapping[str, KnownOrder]]:
    """What the store holds for a page's orders: unit count and lines per order id."""

    def lookup(order_ids: Sequence[str]) -> Mapping[str, KnownOrder]:
        if not order_ids:
            return {}
        with factory() as session:
            rows = session.execute(
                select(Order.id, Order.external_id).where(
                    Order.store_key == store_key, Order.external_id.in_(list(order_ids))
                )
            ).all()
            if not rows:
                return {}
            by_id = {r.id: r.external_id for r in rows}
            lines: dict[str, list[OrderLine]] = {ext: [] for ext in by_id.values()}
            for line in session.execute(
                select(OrderLineRow).where(OrderLineRow.order_id.in_(list(by_id))).order_by(OrderLineRow.id)
            ).scalars():
                lines[by_id[line.order_id]].append(
                    OrderLine(
                        line_key=line.line_key,
                        sku=line.sku,
                        title=line.title,
                        quantity=line.quantity,
                        refunded_quantity=line.refunded_quantity,
                        unit_price=line.unit_price,
                        discount=line.discount,
                    )
                )
        return {
            ext: KnownOrder(item_count=sum(line.quantity for line in ls), lines=tuple(ls))
            for ext, ls in lines.items()
        }

    return lookup


def _write(
    ctx, items: list[OrderRecord | Rejected], *, store_key: str, source: str, result: SyncResult
) -> None:
    """Commit one page through the one writer: a bad order is rejected alone; the
    planner's statistics follow what the sync has inserted (an All Orders report is large)."""
    before = result.inserted
    result.add_page(write_page(ctx.session_factory, items, source=source, store_key=store_key))
    follow_growth(ctx.session_factory, before, result.inserted)


def _set_cursor(ctx, store_key: str, stream: str, value: str | None, state: dict) -> None:
    with ctx.session_factory() as session:
        Repository(session).set_cursor(store_key, stream, value, state)
        session.commit()


def _get_cursor(ctx, store_key: str, stream: str) -> tuple[str | None, dict]:
    with ctx.session_factory() as session:
        cur = Repository(session).get_cursor(store_key, stream)
        return (cur.value, dict(cur.state or {})) if cur is not None else (None, {})


def _emit(progress: Progress | None, stage: str, **info: Any) -> None:
    if progress is not None:
        progress(stage, **info)


def sync_account(
    ctx,
    store_key: str,
    backfill: bool = False,
    since: str | None = None,
    progress: Progress | None = None,
    *,
    client: SpApiClient | None = None,
    report_poll_interval_s: float = 30.0,
    page_size: int = 100,
) -> SyncResult:
    """Sync one Amazon seller account into the store (see the module docstring).
    ``progress(stage, **info)`` is called after each page or report window."""
    account = ctx.stores.amazon(store_key)
    value, state = _get_cursor(ctx, store_key, STREAM)
    own_client = client is None
    if client is None:
        client = SpApiClient.for_account(account, pacing_state=state.get("pacing"))
    result = SyncResult(store_key=store_key, mode="backfill" if backfill else "incremental")
    clock = client.clock
    started = clock.now()
    until = safe_until(started)
    try:
        if backfill:
            value = _backfill(
                ctx,
                client,
                account,
                since=_parse_since(since),
                until=until,
                cursor=value,
                result=result,
                progress=progress,
                poll_interval_s=report_poll_interval_s,
            )
        after = _parse_since(value)
        if after is None:
            after = _parse_since(since) if since and not backfill else None
            if after is None:
                after = until - timedelta(days=DEFAULT_FIRST_SYNC_DAYS)
                result.notes.append(
                    f"no bookmark yet: synced orders updated in the last {DEFAULT_FIRST_SYNC_DAYS} days; "
                    "run `vipsync sync amazon --backfill` for the history"
                )
        slice_start = after
        while slice_start < until:
            slice_end = min(until, slice_start + timedelta(days=SLICE_DAYS))
            for page in iter_order_pages(
                client,
                account,
                updated_after=slice_start,
                updated_before=slice_end,
                known=known_orders(ctx.session_factory, store_key),
                page_size=page_size,
            ):
                _write(ctx, page.records, store_key=store_key, source="amazon-api", result=result)
                result.pages += 1
                _emit(
                    progress,
                    "page",
                    page=result.pages,
                    orders=result.read,
                    items_fetched=page.items_fetched,
                    until=slice_end,
                    after=slice_start,
                )
            # Every page of the slice is committed: only now does the bookmark move.
            _set_cursor(ctx, store_key, STREAM, slice_end.isoformat(), {"pacing": client.pacer.state()})
            result.cursor = slice_end.isoformat()
            slice_start = slice_end
        if result.cursor is None:
            result.cursor = value or (after.isoformat() if after else None)
        _sync_refunds(
            ctx,
            client,
            account,
            first_start=_parse_since(since)
            or (until - timedelta(days=HISTORY_DAYS if backfill else DEFAULT_FIRST_SYNC_DAYS)),
            until=until,
            result=result,
            progress=progress,
        )
    except BaseException:
        _keep_pacing(ctx, store_key, client)
        raise
    finally:
        result.api_calls = sum(client.calls.values())
        result.rate_limit_wait_s = client.waited_s
        if own_client:
            client.close()
    log.info("amazon sync finished", extra={k: v for k, v in result.as_dict().items() if k != "cursor"})
    return result


def _sync_refunds(
    ctx, client: SpApiClient, account, *, first_start: datetime, until: datetime, result: SyncResult, progress
) -> None:
    """Refund events posted since the ``refunds`` bookmark (minus the 48-hour overlap) up to
    ``until``, in slices; each page is committed before the next, the bookmark after its slice."""
    store_key = account.key
    value, _ = _get_cursor(ctx, store_key, REFUNDS_STREAM)
    done = _parse_since(value)
    start = (done - OVERLAP) if done is not None else first_start
    while start < until:
        end = min(until, start + timedelta(days=SLICE_DAYS))
        for page in iter_refund_pages(client, account, posted_after=start, posted_before=end):
            _write_facts(ctx, page.facts, store_key=store_key, result=result)
            _emit(progress, "refunds", page=page.number, until=end, after=start)
        _set_cursor(ctx, store_key, REFUNDS_STREAM, end.isoformat(), {})
        start = end


def _write_facts(ctx, items: list[OrderFact | Rejected], *, store_key: str, result: SyncResult) -> None:
    """One page of facts through the one writer: one transaction, or fact by fact when it
    fails; its rejects beside them (for ops to replay)."""
    outcome = write_page(ctx.session_factory, items, source="amazon-finances", store_key=store_key)
    result.facts_inserted += outcome.inserted
    result.facts_known += outcome.unchanged
    result.rejected += outcome.rejected


def _keep_pacing(ctx, store_key: str, client: SpApiClient) -> None:
    """After a failure: save the drained buckets with the unchanged bookmark, so a retry
    does not start with a burst the server has not given back."""
    try:
        value, state = _get_cursor(ctx, store_key, STREAM)
        _set_cursor(ctx, store_key, STREAM, value, {**state, "pacing": client.pacer.state()})
    except Exception:  # never hide the original error
        log.warning("could not save the pacing state", exc_info=True)


def _backfill(ctx, client, account, *, since, until, cursor, result, progress, poll_interval_s) -> str | None:
    """The report backfill; returns the ``orders`` bookmark the incremental sync continues from."""
    store_key = account.key
    start = since or (until - timedelta(days=HISTORY_DAYS))
    bf_value, bf_state = _get_cursor(ctx, store_key, BACKFILL_STREAM)
    if bf_value and bf_state.get("start") == start.isoformat():
        resumed = _parse_since(bf_value)
        if resumed and resumed > start:
            result.notes.append(f"backfill resumed at {resumed:%Y-%m-%d}")
            start = resumed
    windows = report_windows(start, until)
    for number, (lo, hi) in enumerate(windows, start=1):
        try:
            window = run_report(client, account, start=lo, end=hi, poll_interval_s=poll_interval_s)
        except PermanentSourceError as exc:
            with ctx.session_factory() as session:
                Repository(session).record_error(
                    source="amazon-api",
                    store_key=store_key,
                    record_id=f"report {lo:%Y-%m-%d}..{hi:%Y-%m-%d}",
                    field="processingStatus",
                    message=str(exc),
                    raw={"start": lo.isoformat(), "end": hi.isoformat()},
                )
                session.commit()
            raise
        if window.status == "CANCELLED":
            result.notes.append(
                f"report {window.report_id} ({lo:%Y-%m-%d}..{hi:%Y-%m-%d}) CANCELLED: Amazon had no data"
            )
        # The report document (buyers' data) spools into a private workspace of the data
        # folder, removed once its orders are committed (vipsync/downloads.py).
        with workspace(ctx.settings.data_dir), open_report_records(client, account, window) as records:
            batch: list[OrderRecord | Rejected] = []
            for rec in records:
                batch.append(rec)
                if len(batch) >= ctx.settings.batch_size:
                    _write(ctx, batch, store_key=store_key, source="amazon-report", result=result)
                    batch = []
            _write(ctx, batch, store_key=store_key, source="amazon-report", result=result)
        if window.stats.skipped_non_amazon_rows:
            result.notes.append(
                f"report {window.report_id}: {window.stats.skipped_non_amazon_rows} Non-Amazon rows skipped"
            )
        _set_cursor(
            ctx,
            store_key,
            BACKFILL_STREAM,
            hi.isoformat(),
            {"start": (since or (until - timedelta(days=HISTORY_DAYS))).isoformat()},
        )
        _emit(
            progress, "report", window=number, windows=len(windows), orders=result.read, status=window.status
        )
    # Reports show each order as it was when generated: changes after ``until`` come from
    # the incremental sync. An existing earlier bookmark stays (it catches up from there).
    if cursor is None:
        _set_cursor(ctx, store_key, STREAM, until.isoformat(), {"pacing": client.pacer.state()})
        return until.isoformat()
    return cursor
