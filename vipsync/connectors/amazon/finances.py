"""Amazon refunds from the Finances API v0, and returns from the returns report (pure
mappers plus the paging loop; the job writes what comes out and moves the bookmark).

- :func:`iter_refund_pages`: ``listFinancialEvents`` by ``PostedAfter``/``PostedBefore``
  with ``NextToken`` paging (loop detection). Amazon says events of the last 48 hours may
  be missing, so the caller's window overlaps the previous one by :data:`OVERLAP`; facts
  are keyed, so reading an event twice changes nothing.
- :func:`map_refund_events`: each ``RefundEventList`` entry is a ``ShipmentEvent``
  (``AmazonOrderId``, ``PostedDate``, ``ShipmentItemAdjustmentList``); each adjustment
  item (``SellerSKU``, ``OrderItemId``, ``QuantityShipped`` = the refunded quantity,
  ``ItemChargeAdjustmentList``) becomes one :class:`OrderFact` of kind ``refund`` with the
  principal refunded and everything refunded, both positive. No personal data is kept.
- :func:`read_returns_report`: ``GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE`` (tab-separated,
  columns by header name): each row becomes a fact of kind ``return``; a row that records a
  refunded amount counts as a refund, a return without a refund takes nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from vipsync.config.stores import AmazonAccount
from vipsync.connectors.amazon.client import SpApiClient
from vipsync.connectors.amazon.flatfile import parse_amazon_timestamp
from vipsync.connectors.records import OrderFact, Rejected
from vipsync.errors import PermanentSourceError, RecordError

__all__ = [
    "OVERLAP",
    "RETURNS_REPORT",
    "FactsPage",
    "iter_refund_pages",
    "map_refund_event",
    "map_refund_events",
    "read_returns_report",
    "replay_record",
]

OVERLAP = timedelta(hours=48)  # "Orders from the last 48 hours might not be included"
RETURNS_REPORT = "GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE"
_PRINCIPAL = "principal"


@dataclass
class FactsPage:
    """One verified listFinancialEvents page, mapped."""

    number: int
    facts: list[OrderFact | Rejected]
    last: bool


def _money(value: Any, *, record_id: str, field: str) -> tuple[Decimal, str | None]:
    if not isinstance(value, Mapping):
        raise RecordError("not a currency amount", record_id=record_id, field=field)
    try:
        amount = Decimal(str(value.get("CurrencyAmount")))
    except (InvalidOperation, TypeError):
        raise RecordError("not an amount", record_id=record_id, field=f"{field}.CurrencyAmount") from None
    if not amount.is_finite():
        raise RecordError("not a finite amount", record_id=record_id, field=f"{field}.CurrencyAmount")
    code = value.get("CurrencyCode")
    return amount, str(code) if code else None


def map_refund_event(event: Any, account: AmazonAccount, *, where: str) -> list[OrderFact]:
    """The facts of one ``ShipmentEvent`` of ``RefundEventList``; raises RecordError naming
    the event and the field."""
    if not isinstance(event, Mapping):
        raise RecordError("a refund event must be an object", record_id=where, field=None)
    order_id = str(event.get("AmazonOrderId") or "").strip()
    if not order_id:
        raise RecordError("missing", record_id=where, field="AmazonOrderId")
    try:
        posted = parse_amazon_timestamp(str(event.get("PostedDate") or ""))
    except ValueError:
        raise RecordError(
            "not a timestamp with a UTC offset", record_id=order_id, field="PostedDate"
        ) from None
    items = event.get("ShipmentItemAdjustmentList")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise RecordError("not a list", record_id=order_id, field="ShipmentItemAdjustmentList")
    facts: list[OrderFact] = []
    for n, item in enumerate(items):
        field = f"ShipmentItemAdjustmentList[{n}]"
        if not isinstance(item, Mapping):
            raise RecordError("not an object", record_id=order_id, field=field)
        qty = item.get("QuantityShipped", 0)
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise RecordError("not a whole number", record_id=order_id, field=f"{field}.QuantityShipped")
        principal = Decimal(0)
        total = Decimal(0)
        currency: str | None = None
        charges = item.get("ItemChargeAdjustmentList") or []
        if not isinstance(charges, list):
            raise RecordError("not a list", record_id=order_id, field=f"{field}.ItemChargeAdjustmentList")
        for c, charge in enumerate(charges):
            cfield = f"{field}.ItemChargeAdjustmentList[{c}]"
            if not isinstance(charge, Mapping):
                raise RecordError("not an object", record_id=order_id, field=cfield)
            amount, code = _money(
                charge.get("ChargeAmount"), record_id=order_id, field=f"{cfield}.ChargeAmount"
            )
            currency = currency or code
            total += amount
            if str(charge.get("ChargeType") or "").lower() == _PRINCIPAL:
                principal += amount
        item_id = str(item.get("OrderItemId") or "").strip() or None
        adjustment = str(item.get("OrderAdjustmentItemId") or "").strip()
        sku = str(item.get("SellerSKU") or "").strip() or None
        key_parts = (order_id, adjustment or item_id or sku or str(n), posted.isoformat())
        facts.append(
            OrderFact(
                source="amazon",
                store_key=account.key,
                order_external_id=order_id,
                kind="refund",
                fact_key="|".join(key_parts)[:200],
                posted_at=posted,
                line_key=item_id,
                sku=sku,
                quantity=qty,
                principal=abs(principal),
                amount=abs(total),
                currency=currency,
                raw={
                    "format": "refund_event_v0",
                    "AmazonOrderId": order_id,
                    "PostedDate": event.get("PostedDate"),
                    "MarketplaceName": event.get("MarketplaceName"),
                    "item": {
                        k: item.get(k)
                        for k in (
                            "SellerSKU",
                            "OrderItemId",
                            "OrderAdjustmentItemId",
                            "QuantityShipped",
                            "ItemChargeAdjustmentList",
                        )
                        if k in item
                    },
                },
            )
        )
    if not facts:  # a refund event without items: money alone, kept for the whole-order sum
        facts.append(
            OrderFact(
                source="amazon",
                store_key=account.key,
                order_external_id=order_id,
                kind="refund",
                fact_key=f"{order_id}|order|{posted.isoformat()}",
                posted_at=posted,
                raw={
                    "format": "refund_event_v0",
                    "AmazonOrderId": order_id,
                    "PostedDate": event.get("PostedDate"),
                },
            )
        )
    return facts


def map_refund_events(events: list, account: AmazonAccount, *, page: int = 0) -> list[OrderFact | Rejected]:
    """Every ``RefundEventList`` entry of a page; a malformed one becomes a Rejected."""
    out: list[OrderFact | Rejected] = []
    for n, event in enumerate(events):
        where = f"refund event {page}:{n}"
        try:
            out.extend(map_refund_event(event, account, where=where))
        except RecordError as exc:
            out.append(Rejected(exc.record_id or where, exc.field, exc.reason, {"refund_event": event}))
    return out


def iter_refund_pages(
    client: SpApiClient,
    account: AmazonAccount,
    *,
    posted_after: datetime,
    posted_before: datetime,
    page_size: int = 100,
) -> Iterator[FactsPage]:
    """Every refund event posted in ``[posted_after, posted_before)``, page by page."""
    token: str | None = None
    seen: set[str] = set()
    number = 0
    while True:
        page = client.list_financial_events_page(
            posted_after=posted_after, posted_before=posted_before, next_token=token, page_size=page_size
        )
        number += 1
        facts = map_refund_events(page.events.get("RefundEventList") or [], account, page=number)
        last = not page.next_token
        yield FactsPage(number=number, facts=facts, last=last)
        if last:
            return
        if page.next_token in seen:
            raise PermanentSourceError(
                "listFinancialEvents: NextToken repeats (paging loop); bookmark not advanced"
            )
        token = page.next_token
        assert token is not None  # no token means the last page, handled above
        seen.add(token)


# Returns report --------------------------------------------------------------------------

_COLUMNS: dict[str, tuple[str, ...]] = {
    "order_id": ("order id", "order-id", "amazon-order-id"),
    "sku": ("merchant sku", "sku", "seller-sku", "merchant-sku"),
    "quantity": ("return quantity", "quantity", "return-quantity"),
    "date": ("return request date", "return-date", "return date", "return-request-date"),
    "refunded": ("refunded amount", "refund amount", "refunded-amount"),
    "currency": ("currency code", "currency", "currency-code"),
    "rma": ("amazon rma id", "amazon-rma-id", "rma id"),
    "status": ("return request status", "status", "return-request-status"),
}


def _column_index(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    found: dict[str, int] = {}
    for key, aliases in _COLUMNS.items():
        for alias in aliases:
            if alias in names:
                found[key] = names.index(alias)
                break
    return found


def _returns_date(text: str, *, record_id: str) -> datetime:
    value = text.strip()
    try:
        return parse_amazon_timestamp(value)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise RecordError("not a date", record_id=record_id, field="return request date")


def read_returns_report(
    fh: IO[bytes], account: AmazonAccount, *, encoding: str | None = None
) -> Iterator[OrderFact | Rejected]:
    """Stream the facts of a returns report file (tab-separated, a header row)."""
    text = io.TextIOWrapper(fh, encoding=encoding or "utf-8-sig", errors="replace", newline="")
    reader = csv.reader(text, delimiter="\t")
    header = next(reader, None)
    if header is None:
        return
    cols = _column_index(header)
    missing = [k for k in ("order_id", "sku", "quantity", "date") if k not in cols]
    if missing:
        raise ValueError(
            "not a returns report: no column for "
            + ", ".join(missing)
            + f" (header: {', '.join(header)[:200]})"
        )
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        kept = {key: (row[i].strip() if i < len(row) else "") for key, i in cols.items()}
        yield _returns_fact(kept, account, where=f"line {number}")


def _returns_fact(kept: Mapping[str, str], account: AmazonAccount, *, where: str) -> OrderFact | Rejected:
    """One returns-report row (its columns by our names) as a fact, or a Rejected naming
    the row and the column."""
    cell = lambda key: str(kept.get(key) or "").strip()  # noqa: E731
    try:
        order_id = cell("order_id")
        if not order_id:
            raise RecordError("missing", record_id=where, field="order id")
        sku = cell("sku")
        if not sku:
            raise RecordError("missing", record_id=order_id, field="merchant sku")
        try:
            qty = int(cell("quantity"))
        except ValueError:
            raise RecordError("not a whole number", record_id=order_id, field="return quantity") from None
        if qty < 0:
            raise RecordError("negative", record_id=order_id, field="return quantity")
        posted = _returns_date(cell("date"), record_id=order_id)
        refunded: Decimal | None = None
        if cell("refunded"):
            try:
                refunded = abs(Decimal(cell("refunded").replace(",", "")))
            except InvalidOperation:
                raise RecordError("not an amount", record_id=order_id, field="refunded amount") from None
            if not refunded.is_finite():
                raise RecordError("not a finite amount", record_id=order_id, field="refunded amount")
        key = "|".join((order_id, cell("rma") or "-", sku, posted.date().isoformat(), str(qty)))
        return OrderFact(
            source="amazon",
            store_key=account.key,
            order_external_id=order_id[:64],
            kind="return",
            fact_key=key[:200],
            posted_at=posted,
            sku=sku[:128],
            quantity=qty,
            principal=refunded or None,
            amount=refunded or None,
            currency=cell("currency")[:3] or None,
            raw={"format": "returns_report", "row": dict(kept)},
        )
    except RecordError as exc:
        return Rejected(
            exc.record_id or where, exc.field, exc.reason, {"format": "returns_report", "row": dict(kept)}
        )


def replay_record(raw: Any, account: AmazonAccount | None) -> Iterator[OrderFact | Rejected]:
    """Map a stored rejected refund event or returns-report row again."""
    if account is None or not isinstance(raw, dict):
        yield Rejected("replay", None, "replay needs the Amazon store and a stored record", raw)
    elif raw.get("format") == "returns_report" and isinstance(raw.get("row"), dict):
        yield _returns_fact(raw["row"], account, where="replay")
    elif "refund_event" in raw:
        yield from map_refund_events([raw["refund_event"]], account)
    else:
        yield Rejected("replay", None, "not a refund event or returns row this version can replay", raw)
