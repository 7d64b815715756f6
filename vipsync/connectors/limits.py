"""What a mapped record may hold: sizes, characters, numbers and dates within the sources'
own limits and the store's columns.

Every reader maps through :func:`map_or_reject`: the mapper runs, the record is checked
with :func:`check_order`, and any failure, an expected :class:`RecordError` or a surprise
(a ``TypeError`` on a list where an object belongs, a year the calendar cannot shift), comes
back as a :class:`Rejected` naming the record and the field. A reader therefore never stops
on one record, and a record that passes here fits the store.

The limits:

- text fields fit their columns, which are as wide as the sources allow (a Shopify SKU or
  line id up to 255 characters, an order id or name up to 64, a postal code up to 32);
  a NUL character is refused in every mapped field (PostgreSQL cannot store it) and is
  replaced by U+FFFD in the kept raw payload;
- amounts are finite and below 10^12 in absolute value (the ``Numeric(14, 2)`` columns);
- timestamps fall in the years 1970 to 2100;
- a line's quantity is at most ``VIPSYNC_MAX_LINE_QUANTITY`` (each unit becomes a row),
  and an order has at most :data:`MAX_LINES` lines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from vipsync.connectors.records import OrderFact, OrderRecord, Rejected
from vipsync.errors import RecordError

__all__ = [
    "DEFAULT_MAX_LINE_QUANTITY",
    "MAX_LINES",
    "WIDTHS",
    "Limits",
    "check_fact",
    "check_order",
    "current_limits",
    "map_or_reject",
    "scrub_nul",
]

DEFAULT_MAX_LINE_QUANTITY = 10_000
MAX_LINES = 5_000
MAX_AMOUNT = Decimal(10) ** 12
MIN_YEAR, MAX_YEAR = 1970, 2100  # 1970: the sandbox of the Orders API dates its orders there
MAX_TITLE = 4_000  # characters of a line title kept (a Shopify product title is at most 255)
MAX_DISCOUNT_CODES = 250

# Column widths (characters) of the mapped fields; the store's columns are exactly these.
WIDTHS: Mapping[str, int] = {
    "store_key": 64,
    "external_id": 64,
    "name": 64,
    "marketplace_id": 32,
    "currency": 3,
    "financial_status": 32,
    "order_status": 32,
    "email_hash": 64,
    "country": 2,
    "shipping_postal_code": 32,
    "sku": 255,
    "line_key": 255,
    "title": MAX_TITLE,
    "discount_code": 255,
    "replaced_order_id": 64,
    # order_facts
    "order_external_id": 64,
    "fact_key": 200,
    "fact_line_key": 255,
    "fact_sku": 255,
}


@dataclass(frozen=True)
class Limits:
    """The limits that are settings (``VIPSYNC_MAX_LINE_QUANTITY``)."""

    max_line_quantity: int = DEFAULT_MAX_LINE_QUANTITY


def current_limits() -> Limits:
    """The limits of this process's settings."""
    from vipsync.config.settings import get_settings

    return Limits(max_line_quantity=get_settings().max_line_quantity)


def _text(value: str | None, *, record_id: str, field: str, width_key: str | None = None) -> None:
    if value is None:
        return
    if "\x00" in value:
        raise RecordError("contains a NUL character", record_id=record_id, field=field)
    width = WIDTHS[width_key or field]
    if len(value) > width:
        raise RecordError(f"longer than {width} characters ({len(value)})", record_id=record_id, field=field)


def _amount(value: Decimal | None, *, record_id: str, field: str) -> None:
    if value is None:
        return
    if not value.is_finite():
        raise RecordError("not a finite amount", record_id=record_id, field=field)
    if abs(value) >= MAX_AMOUNT:
        raise RecordError(
            "amount out of range (at most 12 digits before the point)", record_id=record_id, field=field
        )


def _when(value: datetime | None, *, record_id: str, field: str) -> None:
    if value is None:
        return
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise RecordError(f"year outside {MIN_YEAR}..{MAX_YEAR}", record_id=record_id, field=field)


def check_fact(fact: OrderFact) -> OrderFact:
    """Raise RecordError naming the first field of a fact after the sale that the store's
    columns cannot hold; else return it."""
    rid = fact.order_external_id.replace("\x00", "\ufffd")[:128]
    _text(fact.order_external_id, record_id=rid, field="order_external_id")
    _text(fact.fact_key, record_id=rid, field="fact_key")
    _text(fact.line_key, record_id=rid, field="line_key", width_key="fact_line_key")
    _text(fact.returned_line_key, record_id=rid, field="returned_line_key", width_key="fact_line_key")
    _text(fact.sku, record_id=rid, field="sku", width_key="fact_sku")
    _text(fact.currency, record_id=rid, field="currency")
    _when(fact.posted_at, record_id=rid, field="posted_at")
    _amount(fact.principal, record_id=rid, field="principal")
    _amount(fact.amount, record_id=rid, field="amount")
    if not 0 <= fact.quantity <= DEFAULT_MAX_LINE_QUANTITY:
        raise RecordError(f"quantity outside 0..{DEFAULT_MAX_LINE_QUANTITY}", record_id=rid, field="quantity")
    return fact


def check_order(rec: OrderRecord, limits: Limits | None = None) -> OrderRecord:
    """Raise RecordError naming the first field of ``rec`` out of limits; else return the
    record, its raw payload freed of NUL characters."""
    limits = limits or current_limits()
    rid = rec.external_id if "\x00" not in rec.external_id else rec.external_id.replace("\x00", "\ufffd")
    rid = rid[:128]
    for name in (
        "store_key",
        "external_id",
        "name",
        "marketplace_id",
        "currency",
        "financial_status",
        "order_status",
        "email_hash",
        "country",
        "shipping_postal_code",
        "replaced_order_id",
    ):
        _text(getattr(rec, name), record_id=rid, field=name)
    for name in ("purchased_at", "updated_at", "cancelled_at"):
        _when(getattr(rec, name), record_id=rid, field=name)
    _amount(rec.total_amount, record_id=rid, field="total_amount")
    if len(rec.lines) > MAX_LINES:
        raise RecordError(f"more than {MAX_LINES} lines", record_id=rid, field="lines")
    for i, line in enumerate(rec.lines):
        where = f"lines[{i}]"
        _text(line.sku, record_id=rid, field=f"{where}.sku", width_key="sku")
        _text(line.line_key, record_id=rid, field=f"{where}.line_key", width_key="line_key")
        _text(line.title, record_id=rid, field=f"{where}.title", width_key="title")
        if not 0 <= line.quantity <= limits.max_line_quantity:
            raise RecordError(
                f"quantity outside 0..{limits.max_line_quantity} (VIPSYNC_MAX_LINE_QUANTITY)",
                record_id=rid,
                field=f"{where}.quantity",
            )
        if not 0 <= line.refunded_quantity <= line.quantity:
            raise RecordError(
                "refunded quantity outside 0..quantity", record_id=rid, field=f"{where}.refunded_quantity"
            )
        _amount(line.unit_price, record_id=rid, field=f"{where}.unit_price")
        _amount(line.discount, record_id=rid, field=f"{where}.discount")
    if len(rec.discount_codes) > MAX_DISCOUNT_CODES:
        raise RecordError(f"more than {MAX_DISCOUNT_CODES} codes", record_id=rid, field="discount_codes")
    for i, code in enumerate(rec.discount_codes):
        _text(code, record_id=rid, field=f"discount_codes[{i}]", width_key="discount_code")
    raw = scrub_nul(rec.raw)
    return rec if raw is rec.raw else dataclasses.replace(rec, raw=raw)


def scrub_nul(value: Any, _depth: int = 0) -> Any:
    """``value`` with every NUL character in its strings (keys included) replaced by
    U+FFFD; the same object when it has none."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if _depth > 200:
        raise RecordError("nested more than 200 levels deep", field=None)
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            k2 = scrub_nul(k, _depth + 1) if isinstance(k, str) else k
            v2 = scrub_nul(v, _depth + 1)
            changed = changed or k2 is not k or v2 is not v
            out[k2] = v2
        return out if changed else value
    if isinstance(value, list):
        items = [scrub_nul(v, _depth + 1) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def _guess_id(payload: Any) -> str | None:
    if isinstance(payload, Mapping):
        for key in ("legacyResourceId", "id", "AmazonOrderId", "orderId", "amazon-order-id", "order_id"):
            value = payload.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                text = str(value).replace("\x00", "\ufffd")
                return text.rsplit("/", 1)[-1][:128] if text.startswith("gid://") else text[:128]
    return None


def map_or_reject(
    mapper: Callable[..., OrderRecord | Rejected],
    payload: Any,
    *args: Any,
    record_id: str = "?",
    raw: Any = None,
    limits: Limits | None = None,
    **kwargs: Any,
) -> OrderRecord | Rejected:
    """``mapper(payload, *args, **kwargs)`` checked by :func:`check_order` (a mapper may also
    return its own Rejected, passed on as it is); any failure is a
    Rejected naming the record and the field, keeping ``raw`` (default: the payload) for
    replay. ``record_id`` names the record when neither the error nor the payload does."""
    try:
        mapped = mapper(payload, *args, **kwargs)
        return mapped if isinstance(mapped, Rejected) else check_order(mapped, limits)
    except RecordError as exc:
        rid = exc.record_id if exc.record_id not in (None, "?") else None
        return Rejected(rid or _guess_id(payload) or record_id, exc.field, exc.reason, _kept(payload, raw))
    except Exception as exc:  # a shape the mapper did not foresee: still one record's fault
        return Rejected(
            _guess_id(payload) or record_id,
            None,
            f"unreadable record ({type(exc).__name__})",
            _kept(payload, raw),
        )


def _kept(payload: Any, raw: Any) -> Any:
    value = payload if raw is None else raw
    try:
        return scrub_nul(value)
    except RecordError:
        return {"unkept": "nested too deeply to keep"}
