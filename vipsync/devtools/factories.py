"""Builders of normalized records for tests, the demo and benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from vipsync.connectors.records import OrderLine, OrderRecord, email_digest

__all__ = ["order_record"]

_T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def order_record(
    n: int = 1,
    *,
    store_key: str = "shopify-us",
    source: str = "shopify",
    lines: tuple[tuple[str, int], ...] = (("HKS0401A3U", 1),),
    updated_at: datetime | None = None,
    purchased_at: datetime | None = None,
    refunded: dict[str, int] | None = None,
    country: str = "US",
    email: str | None = None,
    cancelled: bool = False,
    raw_extra: dict | None = None,
) -> OrderRecord:
    """An order record with sensible defaults; ``n`` makes ids unique."""
    purchased_at = purchased_at or (_T0 + timedelta(minutes=n))
    updated_at = updated_at or purchased_at
    refunded = refunded or {}
    order_lines = tuple(
        OrderLine(
            line_key=f"{n}-{i}",
            sku=sku,
            title=f"TESmart {sku}",
            quantity=qty,
            refunded_quantity=refunded.get(sku, 0),
            unit_price=Decimal("199.99"),
        )
        for i, (sku, qty) in enumerate(lines)
    )
    external_id = str(1_000_000 + n) if source == "shopify" else f"111-{n:07d}-0000001"
    raw = {"id": external_id, "updated_at": updated_at.isoformat(), "lines": [[s, q] for s, q in lines]}
    raw.update(raw_extra or {})
    return OrderRecord(
        source=source,  # type: ignore[arg-type]
        store_key=store_key,
        external_id=external_id,
        name=f"#{1000 + n}" if source == "shopify" else external_id,
        purchased_at=purchased_at,
        purchase_date=purchased_at.date(),
        updated_at=updated_at,
        lines=order_lines,
        raw=raw,
        currency="USD",
        total_amount=Decimal("199.99") * sum(q for _, q in lines),
        financial_status="paid",
        is_cancelled=cancelled,
        email_hash=email_digest(email or f"buyer{n}@example.com"),
        country=country,
        country_source="shipping",
        shipping_postal_code="40202",
    )
