"""The Amazon streams as iterators of mapped pages: the connector side of a sync.

The connector never touches the store (ARCHITECTURE): the job passes in what the store
knows (:class:`KnownOrder` per order id) and writes what comes out; it advances its
bookmark only after a page sequence is complete and committed.

- :func:`iter_order_pages`: getOrders by ``LastUpdatedAfter``/``LastUpdatedBefore`` for all
  the account's marketplaces at once, ``NextToken`` paging with loop detection, and
  getOrderItems only for orders that are new or whose item count changed (a plain status
  change, a cancellation or a pending order reuses the stored lines).
- :func:`run_report` / :func:`open_report_records`: the Reports API backfill with
  ``GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL``, parsed by the flat-file reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vipsync.config.stores import AmazonAccount
from vipsync.connectors.amazon.client import SpApiClient
from vipsync.connectors.amazon.flatfile import (
    CANCELLED_STATUSES,
    PENDING_STATUSES,
    ReportStats,
    normalize_status,
    read_all_orders_report,
)
from vipsync.connectors.amazon.mapping import item_count_v0, try_map_order_v0
from vipsync.connectors.records import OrderLine, OrderRecord, Rejected
from vipsync.errors import PermanentSourceError, TransientSourceError

__all__ = [
    "MAX_REPORT_DAYS",
    "ORDER_REPORT",
    "KnownOrder",
    "MappedPage",
    "ReportWindow",
    "iter_order_pages",
    "needs_items",
    "open_report_records",
    "report_windows",
    "run_report",
    "safe_until",
]

ORDER_REPORT = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL"
MAX_REPORT_DAYS = 30
MIN_AGE = timedelta(minutes=2, seconds=30)  # LastUpdatedBefore: at least 2 minutes before now, plus slack


@dataclass(frozen=True)
class KnownOrder:
    """What the store holds for an order: its unit count and lines."""

    item_count: int
    lines: tuple[OrderLine, ...]


KnownLookup = Callable[[Sequence[str]], Mapping[str, KnownOrder]]


@dataclass
class MappedPage:
    """One verified getOrders page, mapped."""

    number: int
    records: list[OrderRecord | Rejected]
    items_fetched: int
    last: bool


def safe_until(now: datetime) -> datetime:
    """The latest ``LastUpdatedBefore`` allowed when sending at ``now`` (with slack)."""
    return (now - MIN_AGE).replace(microsecond=0)


def needs_items(order: Mapping, known: KnownOrder | None) -> bool:
    """getOrderItems only for new orders or changed item counts, never a plain status change."""
    if known is None:
        return True
    status = normalize_status(order.get("OrderStatus"))
    if status in CANCELLED_STATUSES or status in PENDING_STATUSES:
        return False  # their item counts read 0: a status change, the stored lines stand
    count = item_count_v0(order)
    return count is not None and count != known.item_count


def iter_order_pages(
    client: SpApiClient,
    account: AmazonAccount,
    *,
    updated_after: datetime,
    updated_before: datetime,
    known: KnownLookup,
    page_size: int = 100,
) -> Iterator[MappedPage]:
    """Every order updated in ``[updated_after, updated_before)``, page by page."""
    marketplace_ids = [m.id for m in account.marketplaces]
    for start in range(0, len(marketplace_ids), 50):
        ids = marketplace_ids[start : start + 50]
        token: str | None = None
        seen: set[str] = set()
        number = 0
        while True:
            page = client.get_orders_page(
                marketplace_ids=ids,
                updated_after=updated_after,
                updated_before=updated_before,
                next_token=token,
                page_size=page_size,
            )
            number += 1
            records: list[OrderRecord | Rejected] = [
                Rejected(f"page {number} [{i}]", None, "an order must be a JSON object", None)
                for i, o in enumerate(page.orders)
                if not isinstance(o, dict)
            ]
            orders = [o for o in page.orders if isinstance(o, dict)]
            order_ids = [str(o.get("AmazonOrderId") or "") for o in orders]
            facts = known([i for i in order_ids if i])
            fetched = 0
            for order in orders:
                oid = str(order.get("AmazonOrderId") or "")
                fact = facts.get(oid)
                try:
                    listed = account.marketplace_by_id(
                        str(order.get("MarketplaceId") or "")
                    ) is not None or bool(
                        order.get("SalesChannel")
                        and account.marketplace_by_channel(str(order["SalesChannel"]))
                    )
                    wants_items = listed and needs_items(order, fact)
                except (TypeError, ValueError, AttributeError, KeyError):  # a field of an unexpected shape
                    listed, wants_items = True, False
                if not listed:
                    records.append(try_map_order_v0(order, None, account))
                    continue
                if wants_items:
                    items = client.get_order_items(oid)
                    fetched += 1
                    records.append(try_map_order_v0(order, items, account))
                else:
                    records.append(
                        try_map_order_v0(order, None, account, known_lines=fact.lines if fact else None)
                    )
            last = not page.next_token
            yield MappedPage(number=number, records=records, items_fetched=fetched, last=last)
            if last:
                break
            if page.next_token in seen:
                raise PermanentSourceError(
                    "getOrders: NextToken repeats (paging loop); bookmark not advanced"
                )
            token = page.next_token
            assert token is not None  # no token means the last page, handled above
            seen.add(token)


def report_windows(
    start: datetime, end: datetime, *, days: int = MAX_REPORT_DAYS
) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into windows of at most ``days``."""
    out = []
    cur = start
    while cur < end:
        nxt = min(end, cur + timedelta(days=days))
        out.append((cur, nxt))
        cur = nxt
    return out


@dataclass
class ReportWindow:
    """One report request and its outcome."""

    start: datetime
    end: datetime
    report_id: str = ""
    status: str = ""
    document_id: str | None = None
    polls: int = 0
    stats: ReportStats = field(default_factory=ReportStats)


def run_report(
    client: SpApiClient,
    account: AmazonAccount,
    *,
    start: datetime,
    end: datetime,
    report_type: str = ORDER_REPORT,
    poll_interval_s: float = 30.0,
    max_wait_s: float = 4 * 3600.0,
) -> ReportWindow:
    """createReport, then getReport until DONE, CANCELLED or FATAL. FATAL raises a plain
    PermanentSourceError for ops; CANCELLED means Amazon had no data for the window."""
    window = ReportWindow(start=start, end=end)
    window.report_id = client.create_report(
        report_type=report_type, start=start, end=end, marketplace_ids=[m.id for m in account.marketplaces]
    )
    waited = 0.0
    while True:
        report = client.get_report(window.report_id)
        window.polls += 1
        window.status = str(report.get("processingStatus"))
        if window.status == "DONE":
            window.document_id = report.get("reportDocumentId")
            if not window.document_id:
                raise TransientSourceError(f"report {window.report_id}: DONE without a reportDocumentId")
            return window
        if window.status == "CANCELLED":
            return window
        if window.status == "FATAL":
            raise PermanentSourceError(
                f"Amazon could not produce report {window.report_id} ({report_type}, "
                f"{start:%Y-%m-%d}..{end:%Y-%m-%d}): status FATAL. Request it again later or import the "
                "report downloaded from Seller Central with `vipsync import amazon-report`."
            )
        if waited >= max_wait_s:
            raise TransientSourceError(
                f"report {window.report_id} still {window.status} after {int(waited)} s"
            )
        client.clock.sleep(poll_interval_s)
        waited += poll_interval_s


@contextmanager
def open_report_records(
    client: SpApiClient, account: AmazonAccount, window: ReportWindow
) -> Iterator[Iterator[OrderRecord | Rejected]]:
    """The records of a DONE report, streamed from its (possibly gzip) document."""
    if window.status != "DONE" or not window.document_id:
        yield iter(())
        return
    document = client.get_report_document(window.document_id)
    with client.open_document(document) as (fh, charset):
        yield read_all_orders_report(fh, account, encoding=charset, stats=window.stats)
