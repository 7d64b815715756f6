"""Which unit an exchange or an edit added in place of which returned unit (POLICY.md,
"Shopify exchanges and edits").

An ``exchange`` fact says: ``quantity`` units of the added line took the place of as many
units of the returned line (none: a new purchase, dated by the fact). Units are numbered
per SKU in line order (``OrderRecord.unit_keys``), so a line's units are known from the
order's lines. The added units are the highest ordinals of the added line not taken by an
earlier fact; the returned units are the units of the returned line's SKU the order no
longer counts (taken by a refund, or by an edit or return that lowered the quantity),
highest ordinal first. Facts are applied by time, then key, so the result depends on the
set of facts, never on the order they arrived in. A fact whose added line the stored
order does not carry yet waits for the order's next version (which flags its units).

The order itself says which units it no longer counts: Shopify lowers the returned line's
current quantity, or refunds it, when the return is processed. When the exchanged unit
has the returned unit's SKU, the units are numbered again and the claimed unit may simply
stay live in the added line's place; the verdict is the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from vipsync.eligibility.refunds import LineRow

__all__ = ["ExchangeRow", "Takeover", "UnitRow", "line_units", "takeovers"]


@dataclass(frozen=True, slots=True)
class ExchangeRow:
    """One stored ``exchange`` fact as the tagger reads it."""

    line_key: str | None
    returned_line_key: str | None
    quantity: int
    posted_at: datetime
    fact_key: str


@dataclass(frozen=True, slots=True)
class UnitRow:
    """One unit of an order with exchanges."""

    unit_id: int
    sku: str
    ordinal: int


@dataclass(frozen=True, slots=True)
class Takeover:
    """An added unit: the unit it took the place of (None when it returned nothing, or the
    returned unit is not known), whether it returned one, and when."""

    returned_unit: int | None
    returned: bool
    at: datetime


def line_units(lines: Sequence[LineRow]) -> dict[str, tuple[str, list[int]]]:
    """line key -> (SKU, the ordinals of its units), numbered like ``OrderRecord.unit_keys``."""
    counts: dict[str, int] = {}
    out: dict[str, tuple[str, list[int]]] = {}
    for line in lines:
        start = counts.get(line.sku, 0)
        n = max(line.quantity, 0)
        counts[line.sku] = start + n
        out.setdefault(line.line_key, (line.sku, list(range(start + 1, start + n + 1))))
    return out


def takeovers(
    exchanges: Iterable[ExchangeRow],
    lines: Sequence[LineRow],
    units: Iterable[UnitRow],
    taken: set[int],
) -> dict[int, Takeover]:
    """added unit id -> its :class:`Takeover`, for one order. ``taken``: the ids of the
    order's units no longer counted (refunded or removed)."""
    by_line = line_units(lines)
    unit_of: dict[tuple[str, int], int] = {}
    taken_by_sku: dict[str, list[tuple[int, int]]] = {}
    for u in units:
        unit_of[(u.sku, u.ordinal)] = u.unit_id
        if u.unit_id in taken:
            taken_by_sku.setdefault(u.sku, []).append((u.ordinal, u.unit_id))
    for pool in taken_by_sku.values():
        pool.sort(reverse=True)
    used_added: set[int] = set()
    used_returned: set[int] = set()
    out: dict[int, Takeover] = {}
    for ex in sorted(exchanges, key=lambda e: (e.posted_at, e.fact_key)):
        line = by_line.get(ex.line_key or "")
        if line is None:
            continue  # the added line is not in the stored version of the order yet
        sku, ordinals = line
        added = [
            unit_of[(sku, o)]
            for o in sorted(ordinals, reverse=True)
            if (sku, o) in unit_of and unit_of[(sku, o)] not in used_added
        ]
        returned_line = by_line.get(ex.returned_line_key or "")
        for uid in added[: max(ex.quantity, 0)]:
            used_added.add(uid)
            returned_uid = None
            if returned_line is not None:
                for _, candidate in taken_by_sku.get(returned_line[0], []):
                    if candidate not in used_returned and candidate != uid:
                        returned_uid = candidate
                        used_returned.add(candidate)
                        break
            out[uid] = Takeover(returned_uid, ex.returned_line_key is not None, ex.posted_at)
    return out
