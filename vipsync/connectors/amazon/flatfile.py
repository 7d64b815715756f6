"""Amazon's All Orders flat-file report (tab-separated), streamed into order records.

Covers ``GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL`` and
``GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL`` (the Reports API backfill) and the
same report downloaded from Seller Central (the file import). One row is one order item;
an order spans several rows.

- Columns are mapped by header name, never by position: real files carry extra columns
  (``url``, ``number-of-items``, ...) and Seller Central uses locale variants of some names
  (``quantity-purchased``, ``merchant order-id``). See :data:`ALIASES`.
- Streaming in constant memory: rows are grouped by order in a bounded window of pending
  orders (``window_rows``). Rows of one order are normally adjacent; an order whose rows are
  further apart than the window is emitted again, complete, after a second pass over a
  seekable file (so its later version, which the store takes, has every row). On a
  non-seekable stream such rows are rejected with a clear message instead.
- Duplicate SKU rows inside one order add up: units are keyed by (store, order id, SKU,
  ordinal), the lines by ``sku#n`` (reports have no order-item id).
- The marketplace comes from each row's ``sales-channel``; its zone gives the purchase
  date, its country is only the fallback: the unit's country is ``ship-country``.
- ``Non-Amazon`` rows (Multi-Channel Fulfillment of orders sold elsewhere, e.g. the web
  store, which is synced from Shopify) are not Amazon orders: they are skipped and counted,
  never stored. An Amazon channel the account does not list is rejected (replayable once
  the stores file lists it).
- Buyer data: only ``ship-postal-code`` and ``ship-country`` are kept (proof of purchase and
  region). The raw rows stored with each order keep only the allow-listed columns.
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from vipsync.config.stores import AmazonAccount, Marketplace
from vipsync.connectors.limits import MAX_AMOUNT, MAX_YEAR, MIN_YEAR, map_or_reject
from vipsync.connectors.records import OrderLine, OrderRecord, Rejected, normalize_country

__all__ = [
    "ALIASES",
    "CANCELLED_STATUSES",
    "KEPT_COLUMNS",
    "NON_AMAZON_CHANNELS",
    "PENDING_STATUSES",
    "RAW_FORMAT",
    "REQUIRED",
    "ReportStats",
    "amazon_order_record",
    "canonical_header",
    "canonicalize_row",
    "map_report_order",
    "map_report_rows",
    "normalize_status",
    "parse_amazon_timestamp",
    "read_all_orders_report",
    "replay_record",
]

log = logging.getLogger(__name__)

RAW_FORMAT = "amazon_all_orders_report"

# Canonical column name -> variants seen in Seller Central exports and other locales
# (compared after lower-casing and writing spaces and underscores as hyphens).
ALIASES: dict[str, tuple[str, ...]] = {
    "amazon-order-id": ("order-id", "amazon-order-number"),
    "merchant-order-id": ("merchant-order-number",),
    "quantity": ("quantity-purchased", "quantity-ordered"),
    "purchase-date": ("order-date",),
    "last-updated-date": ("last-update-date",),
    "product-name": ("title", "item-name"),
    "sku": ("seller-sku", "merchant-sku"),
    "ship-postal-code": ("ship-zip", "ship-postcode"),
    "ship-country": ("ship-country-code",),
}

REQUIRED = ("amazon-order-id", "purchase-date", "order-status", "sales-channel", "sku", "quantity")

# Columns kept in the raw rows stored with each order: everything a tag or a proof may be
# traced back to, and no buyer name, e-mail, phone, street, city or tax id.
KEPT_COLUMNS = frozenset(
    [
        "amazon-order-id",
        "merchant-order-id",
        "purchase-date",
        "last-updated-date",
        "order-status",
        "fulfillment-channel",
        "sales-channel",
        "order-channel",
        "ship-service-level",
        "product-name",
        "sku",
        "asin",
        "item-status",
        "quantity",
        "currency",
        "item-price",
        "item-tax",
        "shipping-price",
        "shipping-tax",
        "gift-wrap-price",
        "gift-wrap-tax",
        "item-promotion-discount",
        "ship-promotion-discount",
        "ship-postal-code",
        "ship-country",
        "promotion-ids",
        "is-business-order",
        "price-designation",
        "number-of-items",
    ]
)

NON_AMAZON_CHANNELS = frozenset({"non-amazon"})
PENDING_STATUSES = frozenset({"pending", "pendingavailability", "pending-availability"})
CANCELLED_STATUSES = frozenset({"canceled", "cancelled"})

_VARIANTS = {v: canon for canon, variants in ALIASES.items() for v in variants}


def canonical_header(name: str) -> str:
    """The canonical name of a header cell (``merchant order-id`` -> ``merchant-order-id``)."""
    key = name.strip().strip("\ufeff").strip('"').lower().replace("_", "-").replace(" ", "-")
    while "--" in key:
        key = key.replace("--", "-")
    return _VARIANTS.get(key, key)


def normalize_status(value: str | None) -> str:
    """Order status in lower case, with one spelling for cancelled (the API's ``canceled``)."""
    status = (value or "").strip().lower().replace(" ", "")
    return "canceled" if status in CANCELLED_STATUSES else status


def parse_amazon_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp with its UTC offset, as Amazon writes it (also the spaced
    ``2003-07-14T18:53:56+ 00 :00`` of Seller Central's help page). Naive values are refused:
    the purchase date depends on the offset."""
    text = "".join((value or "").split())
    if not text:
        raise ValueError("empty")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit() and text[-6] != ":":
        text = text[:-2] + ":" + text[-2:]  # +0000 -> +00:00
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("no UTC offset")
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"year outside {MIN_YEAR}..{MAX_YEAR}")
    return parsed


def _decimal(value: str | None) -> Decimal | None:
    text = (value or "").strip().replace(",", ".") if value else ""
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text[:20]!r}") from None
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:
        raise ValueError(f"not a finite amount below 10^12: {text[:20]!r}")
    return amount


@dataclass
class ReportStats:
    """What a read skipped or merged (for the caller's summary; no personal data)."""

    rows: int = 0
    orders: int = 0
    skipped_non_amazon_rows: int = 0
    late_rows: int = 0
    extra_columns: list[str] = field(default_factory=list)


def _iter_lines(fh: IO[bytes], encoding: str | None) -> Iterator[str]:
    """Decode line by line: the document's charset when known, else UTF-8 with a
    Windows-1252 fallback for a line that is not UTF-8 (older EU exports)."""
    first = True
    for raw in fh:
        if first:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
            first = False
        if encoding:
            line = raw.decode(encoding, errors="replace")
        else:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("cp1252", errors="replace")
        yield line.rstrip("\r\n")


def _rows(lines: Iterator[str], stats: ReportStats) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        header_line = next(lines)
    except StopIteration:
        raise ValueError("empty report: no header line") from None
    header = [canonical_header(h) for h in header_line.split("\t")]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(
            "not an All Orders report: missing column(s) "
            + ", ".join(missing)
            + f" (found: {', '.join(header[:12]) or 'none'})"
        )
    stats.extra_columns = [h for h in header if h not in KEPT_COLUMNS and h]
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        row = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header) if name}
        if len(cells) < len(header):
            # A cut line (a truncated download) is never padded into a different version.
            row[_PROBLEM] = f"{len(cells)} fields where the header has {len(header)}: a cut line"
        elif any(cell.strip() for cell in cells[len(header) :]):
            row[_PROBLEM] = f"{len(cells)} fields where the header has {len(header)}: cells out of place"
        yield number, row


# The key under which _rows marks a row whose cell count differs from the header's.
_PROBLEM = "\x00problem"


def _kept(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if k in KEPT_COLUMNS}


def _marketplace(channel: str, account: AmazonAccount) -> Marketplace | None:
    return account.marketplace_by_channel(channel) if channel else None


def map_report_rows(
    order_id: str, rows: list[dict[str, str]], account: AmazonAccount
) -> OrderRecord | Rejected:
    """:func:`map_report_order` within the limits: never raises, whatever the rows hold."""
    raw = {"format": RAW_FORMAT, "store_key": account.key, "rows": rows}
    return map_or_reject(map_report_order, order_id, rows, account, record_id=order_id or "?", raw=raw)


def map_report_order(
    order_id: str, rows: list[dict[str, str]], account: AmazonAccount
) -> OrderRecord | Rejected:
    """Map the rows of one order (allow-listed, canonical names) to an OrderRecord."""
    raw = {"format": RAW_FORMAT, "store_key": account.key, "rows": rows}
    first = rows[0]
    channel = first.get("sales-channel", "")
    market = _marketplace(channel, account)
    if market is None:
        known = ", ".join(m.sales_channel for m in account.marketplaces)
        return Rejected(
            order_id,
            "sales-channel",
            f"sales channel {channel!r} is not a marketplace of store {account.key} (listed: {known}); "
            "add it to the stores file and replay",
            raw,
        )
    try:
        purchased_at = parse_amazon_timestamp(first.get("purchase-date", ""))
    except ValueError as exc:
        return Rejected(order_id, "purchase-date", f"not a timestamp with a UTC offset ({exc})", raw)
    updated_at = purchased_at
    for row in rows:
        text = row.get("last-updated-date", "")
        if text:
            try:
                ts = parse_amazon_timestamp(text)
            except ValueError as exc:
                return Rejected(
                    order_id, "last-updated-date", f"not a timestamp with a UTC offset ({exc})", raw
                )
            updated_at = max(updated_at, ts)
    status = normalize_status(first.get("order-status"))
    if not status:
        return Rejected(order_id, "order-status", "empty", raw)

    lines: list[OrderLine] = []
    seen: dict[str, int] = {}
    total = Decimal(0)
    has_money = False
    currency = None
    for row in rows:
        sku = row.get("sku", "")
        if not sku:
            return Rejected(order_id, "sku", "empty", raw)
        qty_text = row.get("quantity", "")
        try:
            quantity = int(qty_text or "0")
        except ValueError:
            return Rejected(order_id, "quantity", f"not a whole number: {qty_text[:12]!r}", raw)
        if quantity < 0:
            return Rejected(order_id, "quantity", "negative", raw)
        try:
            price = _decimal(row.get("item-price"))
            discount = _decimal(row.get("item-promotion-discount"))
            extras = [
                _decimal(row.get(c))
                for c in ("item-tax", "shipping-price", "shipping-tax", "gift-wrap-price", "gift-wrap-tax")
            ]
            ship_discount = _decimal(row.get("ship-promotion-discount"))
        except ValueError as exc:
            return Rejected(order_id, "item-price", str(exc), raw)
        currency = currency or (row.get("currency") or None)
        for amount in [price, *extras]:
            if amount is not None:
                total += amount
                has_money = True
        for amount in (discount, ship_discount):
            if amount is not None:
                total -= abs(amount)
        seen[sku] = seen.get(sku, 0) + 1
        lines.append(
            OrderLine(
                line_key=f"{sku}#{seen[sku]}",
                sku=sku,
                title=row.get("product-name", "") or sku,
                quantity=quantity,
                unit_price=(price / quantity).quantize(Decimal("0.01"))
                if price is not None and quantity
                else None,
                discount=abs(discount) if discount is not None else None,
            )
        )
    return amazon_order_record(
        account=account,
        market=market,
        order_id=order_id,
        purchased_at=purchased_at,
        updated_at=updated_at,
        lines=lines,
        raw=raw,
        raw_kind="report_rows",
        status=status,
        ship_country=first.get("ship-country"),
        postal_code=first.get("ship-postal-code"),
        currency=currency,
        total=total if has_money else None,
    )


def amazon_order_record(
    *,
    account: AmazonAccount,
    market: Marketplace,
    order_id: str,
    purchased_at: datetime,
    updated_at: datetime,
    lines: Iterable[OrderLine],
    raw: dict,
    raw_kind: str,
    status: str,
    ship_country: str | None,
    postal_code: str | None,
    currency: str | None,
    total: Decimal | None,
    pending: bool | None = None,
    cancelled: bool | None = None,
    replacement: bool = False,
    replaced_order_id: str | None = None,
) -> OrderRecord:
    """The one place every Amazon source builds its record: the purchase date in the
    marketplace's zone, the shipping country else the marketplace's, the status flags. A
    replacement order (POLICY.md replacement_order) with a total above zero, or without the
    id of the order it replaces, is flagged for ops."""
    country = normalize_country(ship_country)
    flags: list[str] = []
    if replacement and total is not None and total != 0:
        flags.append("replacement_with_total")
    if replacement and not replaced_order_id:
        flags.append("replaced_order_unknown")
    return OrderRecord(
        source="amazon",
        store_key=account.key,
        external_id=order_id,
        name=order_id,
        purchased_at=purchased_at.astimezone(UTC),
        purchase_date=purchased_at.astimezone(market.tz).date(),
        updated_at=updated_at.astimezone(UTC),
        lines=tuple(lines),
        raw=raw,
        raw_kind=raw_kind,
        marketplace_id=market.id,
        currency=currency,
        total_amount=total,
        financial_status=None,
        order_status=status,
        payment_pending=status in PENDING_STATUSES if pending is None else pending,
        is_cancelled=status in CANCELLED_STATUSES if cancelled is None else cancelled,
        country=country or market.country,
        country_source="shipping" if country else "store",
        shipping_postal_code=(str(postal_code or "").strip() or None),
        is_replacement=replacement,
        replaced_order_id=replaced_order_id if replacement else None,
        ops_flags=tuple(flags),
    )


def read_all_orders_report(
    fh: IO[bytes],
    account: AmazonAccount,
    *,
    encoding: str | None = None,
    window_rows: int = 5000,
    stats: ReportStats | None = None,
) -> Iterator[OrderRecord | Rejected]:
    """Stream the report in ``fh`` (binary) and yield one OrderRecord per order (or a
    Rejected naming the order and the field). Raises ValueError when the file is not an
    All Orders report at all (no header, required columns missing)."""
    stats = stats if stats is not None else ReportStats()
    pending: OrderedDict[str, tuple[int, list[dict[str, str]]]] = OrderedDict()
    emitted: set[str] = set()
    late: set[str] = set()
    start = fh.tell() if _seekable(fh) else None

    broken: dict[str, tuple[int, str]] = {}  # order id -> (line, what is wrong with it)

    def emit(order_id: str, rows: list[dict[str, str]]) -> OrderRecord | Rejected:
        stats.orders += 1
        if order_id in broken:
            line, problem = broken[order_id]
            raw = {"format": RAW_FORMAT, "store_key": account.key, "rows": rows}
            return Rejected(order_id, f"line {line}", problem, raw)
        return map_report_rows(order_id, rows, account)

    for number, row in _rows(_iter_lines(fh, encoding), stats):
        stats.rows += 1
        order_id = row.get("amazon-order-id", "")
        problem = row.pop(_PROBLEM, None)
        if problem is not None and order_id:
            broken.setdefault(order_id, (number, problem))
        elif problem is not None:
            yield Rejected(f"line {number}", None, problem, {"format": RAW_FORMAT, "rows": [_kept(row)]})
            continue
        if not order_id:
            yield Rejected(
                f"line {number}", "amazon-order-id", "empty", {"format": RAW_FORMAT, "rows": [_kept(row)]}
            )
            continue
        if row.get("sales-channel", "").strip().lower() in NON_AMAZON_CHANNELS:
            stats.skipped_non_amazon_rows += 1
            continue
        if order_id in emitted:
            late.add(order_id)
            stats.late_rows += 1
            continue
        entry = pending.get(order_id)
        if entry is None:
            pending[order_id] = (number, [_kept(row)])
        else:
            entry[1].append(_kept(row))
            pending[order_id] = (number, entry[1])
            pending.move_to_end(order_id)
        while pending:
            oldest_id, (last_seen, rows) = next(iter(pending.items()))
            if number - last_seen < window_rows:
                break
            pending.popitem(last=False)
            emitted.add(oldest_id)
            yield emit(oldest_id, rows)
    for order_id, (_, rows) in pending.items():
        emitted.add(order_id)
        yield emit(order_id, rows)
    pending.clear()

    if late:
        if start is None:
            for order_id in sorted(late):
                yield Rejected(
                    order_id,
                    "amazon-order-id",
                    f"rows of this order are more than {window_rows} rows apart in a stream that cannot be "
                    "re-read; import the report from a file",
                    {"format": RAW_FORMAT, "rows": []},
                )
            return
        # Second pass: gather every row of the scattered orders and emit them complete.
        fh.seek(start)
        gathered: dict[str, list[dict[str, str]]] = {}
        for _, row in _rows(_iter_lines(fh, encoding), ReportStats()):
            row.pop(_PROBLEM, None)
            oid = row.get("amazon-order-id", "")
            if oid in late:
                gathered.setdefault(oid, []).append(_kept(row))
        for order_id in sorted(gathered):
            yield emit(order_id, gathered[order_id])
    if stats.skipped_non_amazon_rows:
        log.info(
            "skipped rows of non-Amazon sales channels",
            extra={"rows": stats.skipped_non_amazon_rows, "store": account.key},
        )


def _seekable(fh: Any) -> bool:
    try:
        return bool(fh.seekable())
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


def replay_record(raw: Any, account: AmazonAccount | None) -> Iterator[OrderRecord | Rejected]:
    """Map a stored rejected record again (after the stores file or the data was fixed).
    Handles report rows and, through :mod:`vipsync.connectors.amazon.mapping`, Orders API
    payloads."""
    if account is None:
        yield Rejected("replay", None, "replay needs the Amazon store", raw)
        return
    if isinstance(raw, dict) and raw.get("format") == RAW_FORMAT:
        rows = [canonicalize_row(r) for r in raw.get("rows") or []]
        if not rows:
            yield Rejected("replay", "amazon-order-id", "no rows to replay", raw)
            return
        order_id = rows[0].get("amazon-order-id", "replay")
        yield map_report_rows(order_id, rows, account)
        return
    from vipsync.connectors.amazon.mapping import replay_record as replay_api

    yield from replay_api(raw, account)


def canonicalize_row(row: dict[str, Any]) -> dict[str, str]:
    """A row with canonical column names (for replays of edited rows)."""
    return {canonical_header(k): ("" if v is None else str(v)) for k, v in row.items()}
