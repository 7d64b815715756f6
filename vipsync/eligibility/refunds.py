"""Which units of a SKU a refund takes away.

A refund with line quantities (any restock type) takes units of that SKU in that order,
highest unit ordinal first, and never a unit with a recorded claim. A refund of money alone
(no line quantities) takes none.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["allocate_refunds"]


def allocate_refunds(
    ordinals: Iterable[int], refunded_quantity: int, claimed: Iterable[int] = ()
) -> frozenset[int]:
    """The ordinals refunded among the live ``ordinals`` of one SKU in one order."""
    if refunded_quantity <= 0:
        return frozenset()
    blocked = set(claimed)
    taken: list[int] = []
    for ordinal in sorted(set(ordinals), reverse=True):
        if len(taken) >= refunded_quantity:
            break
        if ordinal in blocked:
            continue
        taken.append(ordinal)
    return frozenset(taken)
