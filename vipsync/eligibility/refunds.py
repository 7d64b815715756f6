"""Which units of a SKU a refund takes away.

A refund with line quantities (any restock type) takes units of that SKU in that order,
highest unit ordinal first, unclaimed units before claimed ones; when only claimed units are
left, a claimed unit is taken too (its claim is kept). A refund of money alone
(no line quantities) takes none, unless the order's money refunds add up to at least what
was paid for it: then it takes every unit (:func:`refunds_whole_order`).

Amazon refund events (POLICY.md, "After the sale"): per ``OrderItemId`` the units taken are
the largest ``QuantityShipped`` among its refund events whose principal refund covers the
price of that quantity (within one minor currency unit per unit), never the sum over events;
an event that refunds less principal is money alone (:func:`amazon_refunded_quantity`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "AfterSale",
    "FactRow",
    "LineRow",
    "RefundEvent",
    "after_sale",
    "allocate_refunds",
    "amazon_refunded_quantity",
    "refunds_whole_order",
]

_MINOR_UNIT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class RefundEvent:
    """One refund event's line: the quantity it names and the principal it refunds."""

    quantity: int
    principal: Decimal | None


def amazon_refunded_quantity(
    events: Iterable[RefundEvent], unit_price: Decimal | None, *, ordered: int | None = None
) -> int:
    """Units of one order item taken by its refund events. Without a known unit price, an
    event's quantity counts when it refunds any principal at all."""
    taken = 0
    for event in events:
        qty = max(event.quantity, 0)
        if qty == 0 or event.principal is None:
            continue
        principal = abs(event.principal)
        if unit_price is None:
            covers = principal > 0
        else:
            covers = principal >= unit_price * qty - _MINOR_UNIT * qty
        if covers:
            taken = max(taken, qty)
    return min(taken, ordered) if ordered is not None else taken


def refunds_whole_order(refunded: Decimal, paid: Decimal | None) -> bool:
    """True when the order's money refunds add up to at least what was paid for it."""
    return paid is not None and paid > 0 and abs(refunded) >= paid


def allocate_refunds(
    ordinals: Iterable[int], refunded_quantity: int, claimed: Iterable[int] = ()
) -> frozenset[int]:
    """The ordinals refunded among the live ``ordinals`` of one SKU in one order: the
    highest unclaimed ones first; when only claimed units are left, the highest claimed
    ones too (POLICY.md: the claim is kept, the unit is flagged for ops)."""
    if refunded_quantity <= 0:
        return frozenset()
    blocked = set(claimed)
    live = sorted(set(ordinals), reverse=True)
    order = [o for o in live if o not in blocked] + [o for o in live if o in blocked]
    return frozenset(order[:refunded_quantity])


@dataclass(frozen=True, slots=True)
class FactRow:
    """One stored fact after the sale, as the tagger reads it (see ``OrderFact``)."""

    kind: str  # refund | return | deleted
    line_key: str | None
    sku: str | None
    quantity: int
    principal: Decimal | None
    amount: Decimal | None


@dataclass(frozen=True, slots=True)
class LineRow:
    """One order line as the tagger reads it."""

    line_key: str
    sku: str
    quantity: int
    unit_price: Decimal | None


@dataclass(frozen=True)
class AfterSale:
    """What an order's facts after the sale decide: deleted at the source (judged as
    cancelled), refunded quantity per SKU, or every unit refunded (money refunds that add up
    to what was paid)."""

    deleted: bool = False
    refunded_by_sku: dict[str, int] | None = None
    whole_order: bool = False


def after_sale(facts: Iterable[FactRow], lines: Iterable[LineRow], paid: Decimal | None) -> AfterSale:
    """Apply POLICY.md's "After the sale" rules to one order's facts. The result depends on
    the set of facts only, never on the order they arrived in."""
    by_line = {line.line_key: line for line in lines}
    by_sku: dict[str, LineRow] = {}
    ordered: dict[str, int] = {}
    for row in by_line.values():
        by_sku.setdefault(row.sku, row)
        ordered[row.sku] = ordered.get(row.sku, 0) + row.quantity
    deleted = False
    item_events: dict[str, list[RefundEvent]] = {}
    item_sku: dict[str, str] = {}
    return_events: dict[str, list[RefundEvent]] = {}
    refunded_money = Decimal(0)
    for fact in facts:
        if fact.kind == "deleted":
            deleted = True
            continue
        money = fact.amount if fact.amount is not None else fact.principal
        if fact.kind == "refund":
            refunded_money += abs(money) if money is not None else Decimal(0)
            known = by_line.get(fact.line_key or "")
            sku = known.sku if known is not None else fact.sku
            if not sku:
                continue
            key = fact.line_key or f"sku:{sku}"
            item_sku[key] = sku
            item_events.setdefault(key, []).append(RefundEvent(fact.quantity, fact.principal))
        elif fact.kind == "return" and money:  # a return that records a refund
            refunded_money += abs(money)
            if fact.sku:
                return_events.setdefault(fact.sku, []).append(
                    RefundEvent(fact.quantity, fact.principal or money)
                )
    per_sku: dict[str, int] = {}
    for key, events in item_events.items():
        sku = item_sku[key]
        item = by_line.get(key)
        price = item.unit_price if item is not None else (by_sku[sku].unit_price if sku in by_sku else None)
        qty = amazon_refunded_quantity(events, price, ordered=item.quantity if item is not None else None)
        per_sku[sku] = per_sku.get(sku, 0) + qty
    for sku, events in return_events.items():
        price = by_sku[sku].unit_price if sku in by_sku else None
        per_sku[sku] = max(per_sku.get(sku, 0), amazon_refunded_quantity(events, price))
    refunded = {sku: min(q, ordered.get(sku, q)) for sku, q in per_sku.items() if q > 0}
    return AfterSale(
        deleted=deleted,
        refunded_by_sku=refunded or None,
        whole_order=refunds_whole_order(refunded_money, paid),
    )
