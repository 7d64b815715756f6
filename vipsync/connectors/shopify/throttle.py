"""Pure helpers for Shopify's cost-based rate limit and for retry backoff (no I/O).

Every GraphQL response carries ``extensions.cost.throttleStatus`` (``maximumAvailable``,
``currentlyAvailable``, ``restoreRate``). :class:`CostBucket` remembers the last status and
when it was seen, models the refill, and says how long to wait before a query of a given
requested cost can run without hitting an empty bucket.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["CostBucket", "backoff_s"]


@dataclass
class CostBucket:
    """Our picture of the shop's leaky bucket, from the last response's throttle status."""

    maximum: float | None = None
    available: float | None = None
    restore_per_s: float | None = None
    seen_at_s: float | None = None  # monotonic clock of the last status
    safety_points: float = 2.0  # keep a little in hand: restore is continuous, clocks are not

    def update(self, cost: dict | None, *, now_s: float) -> None:
        """Record ``extensions.cost`` of a response (missing or partial data is ignored)."""
        status = (cost or {}).get("throttleStatus") or {}
        try:
            available = float(status["currentlyAvailable"])
            restore = float(status["restoreRate"])
            maximum = float(status["maximumAvailable"])
        except (KeyError, TypeError, ValueError):
            return
        self.available, self.restore_per_s, self.maximum, self.seen_at_s = available, restore, maximum, now_s

    def estimate(self, *, now_s: float) -> float | None:
        """Points available now, by the refill since the last status; None if unknown."""
        if self.available is None or self.seen_at_s is None or not self.restore_per_s:
            return None
        refilled = self.available + self.restore_per_s * max(0.0, now_s - self.seen_at_s)
        return min(self.maximum or refilled, refilled)

    def wait_for(self, cost: float, *, now_s: float) -> float:
        """Seconds to wait before a query of requested ``cost`` can run (0 when it can now)."""
        available = self.estimate(now_s=now_s)
        if available is None:
            return 0.0
        needed = min(cost, self.maximum or cost) + self.safety_points
        if available >= needed:
            return 0.0
        return (needed - available) / self.restore_per_s  # type: ignore[operator]

    def spend(self, cost: float, *, now_s: float) -> None:
        """Count a query we are about to send (until its own status arrives)."""
        available = self.estimate(now_s=now_s)
        if available is not None:
            self.available, self.seen_at_s = available - cost, now_s


def backoff_s(
    attempt: int,
    *,
    base_s: float = 0.5,
    cap_s: float = 30.0,
    jitter: float = 0.25,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff for retry number ``attempt`` (1-based), with +/- ``jitter``."""
    delay = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    spread = (rng or random).uniform(-jitter, jitter)
    return max(0.0, delay * (1 + spread))
