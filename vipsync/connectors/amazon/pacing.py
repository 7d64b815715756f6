"""Pacing for SP-API: the documented usage plans, a token bucket per operation, clocks.

SP-API limits each operation with a token bucket per selling partner and application: a
``burst`` of requests may go at once, then tokens come back at ``rate`` per second. A
response's ``x-amzn-RateLimit-Limit`` header tells the rate actually applied; the bucket
adopts it. Everything here is pure: the clock is injected, so a simulated clock drives the
benchmarks and the tests, and the same objects pace real calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = [
    "USAGE_PLANS",
    "Clock",
    "Estimate",
    "Pacer",
    "RealClock",
    "SimClock",
    "TokenBucket",
    "UsagePlan",
    "backoff_s",
    "estimate",
    "parse_rate_limit_header",
]


@dataclass(frozen=True)
class UsagePlan:
    """Documented default rate (requests per second) and burst of one operation."""

    rate_per_s: float
    burst: int


# The documented defaults (Orders API v0 and Reports API 2021-06-30 references).
USAGE_PLANS: dict[str, UsagePlan] = {
    "getOrders": UsagePlan(0.0167, 20),
    "getOrder": UsagePlan(0.5, 30),
    "getOrderItems": UsagePlan(0.5, 30),
    "getOrderAddress": UsagePlan(0.5, 30),
    "getOrderBuyerInfo": UsagePlan(0.5, 30),
    "createReport": UsagePlan(0.0167, 15),
    "getReport": UsagePlan(2.0, 15),
    "getReportDocument": UsagePlan(0.0167, 15),
    "listFinancialEvents": UsagePlan(0.5, 30),  # Finances API v0
    # v2026-01-01 searchOrders: no plan in the model; assume getOrders' until a response's
    # x-amzn-RateLimit-Limit header says otherwise.
    "searchOrders": UsagePlan(0.0167, 20),
}


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
    def now(self) -> datetime: ...


class RealClock:
    """The process's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimClock:
    """A simulated clock: ``sleep`` advances it instantly; ``now`` moves with it."""

    def __init__(self, *, start: datetime | None = None) -> None:
        self._t = 0.0
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.slept_s = 0.0

    def monotonic(self) -> float:
        return self._t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._t += seconds
            self.slept_s += seconds

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)


class TokenBucket:
    """A token bucket on an injected monotonic clock. ``reserve`` takes one token and
    returns how long to wait before using it (0 when one is there)."""

    def __init__(self, *, rate_per_s: float, burst: int, now_s: float, tokens: float | None = None) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst if tokens is None else min(tokens, burst))
        self.updated_s = now_s

    def _refill(self, now_s: float) -> None:
        if now_s > self.updated_s:
            self.tokens = min(float(self.burst), self.tokens + (now_s - self.updated_s) * self.rate_per_s)
            self.updated_s = now_s

    def reserve(self, now_s: float) -> float:
        self._refill(now_s)
        self.tokens -= 1.0
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate_per_s

    def drain(self, now_s: float) -> None:
        """The server said no (429): assume the bucket is empty now."""
        self._refill(now_s)
        self.tokens = min(self.tokens, 0.0)

    def set_rate(self, rate_per_s: float, now_s: float) -> None:
        self._refill(now_s)
        self.rate_per_s = rate_per_s


def parse_rate_limit_header(value: str | None) -> float | None:
    """The ``x-amzn-RateLimit-Limit`` value as a rate, or None when absent or not a number."""
    if not value:
        return None
    try:
        rate = float(value)
    except ValueError:
        return None
    return rate if rate > 0 and math.isfinite(rate) else None


def backoff_s(attempt: int, *, base_s: float, cap_s: float = 300.0) -> float:
    """Exponential backoff without jitter (deterministic, testable): base * 2^(attempt-1)."""
    return min(cap_s, base_s * (2 ** max(attempt - 1, 0)))


class Pacer:
    """One bucket per operation. Buckets start full unless a saved state says otherwise.
    ``safety`` slows the client a little below the server's rate so that network jitter
    never makes a paced request arrive early."""

    def __init__(
        self,
        clock: Clock,
        *,
        plans: Mapping[str, UsagePlan] = USAGE_PLANS,
        safety: float = 0.97,
        state: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self.clock = clock
        self.plans = dict(plans)
        self.safety = safety
        self.buckets: dict[str, TokenBucket] = {}
        self.waited_s = 0.0
        self._saved = dict(state or {})

    def bucket(self, op: str) -> TokenBucket:
        bucket = self.buckets.get(op)
        if bucket is None:
            plan = self.plans.get(op, UsagePlan(0.5, 1))
            now = self.clock.monotonic()
            saved = self._saved.get(op)
            tokens = None
            rate = plan.rate_per_s
            if saved:
                # Saved as wall-clock seconds: tokens regained since then are added back.
                age = max(0.0, self.clock.now().timestamp() - float(saved.get("at", 0)))
                rate = float(saved.get("rate", rate))
                tokens = float(saved.get("tokens", plan.burst)) + age * rate * self.safety
            bucket = TokenBucket(rate_per_s=rate * self.safety, burst=plan.burst, now_s=now, tokens=tokens)
            self.buckets[op] = bucket
        return bucket

    def acquire(self, op: str) -> float:
        """Wait (on the clock) until ``op`` may be called; returns the seconds waited."""
        bucket = self.bucket(op)
        wait = bucket.reserve(self.clock.monotonic())
        if wait > 0:
            self.clock.sleep(wait)
            self.waited_s += wait
            bucket._refill(self.clock.monotonic())  # the debt is paid at send time
        return wait

    def settle(self, op: str) -> None:
        """After a response: forget the refill of the request's flight time. The server may
        have counted the request as late as now; while its bucket was full the refill we
        would credit for that time did not exist."""
        bucket = self.bucket(op)
        bucket.updated_s = max(bucket.updated_s, self.clock.monotonic())

    def observe_rate(self, op: str, header_value: str | None) -> None:
        rate = parse_rate_limit_header(header_value)
        if rate is not None:
            self.bucket(op).set_rate(rate * self.safety, self.clock.monotonic())

    def throttled(self, op: str) -> float:
        """A 429: empty the bucket; returns the wait until the next token."""
        bucket = self.bucket(op)
        bucket.drain(self.clock.monotonic())
        return 1.0 / bucket.rate_per_s

    def state(self) -> dict[str, dict[str, float]]:
        """Bucket levels to save with the bookmark, so the next run does not start with
        a full burst the server has not given back yet."""
        now_s = self.clock.monotonic()
        at = self.clock.now().timestamp()
        out = {}
        for op, b in self.buckets.items():
            b._refill(now_s)
            out[op] = {"tokens": round(b.tokens, 4), "rate": b.rate_per_s / self.safety, "at": at}
        return out


@dataclass(frozen=True)
class Estimate:
    """API calls and the minimum time the documented limits impose on them."""

    calls: dict[str, int]
    seconds: float

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def _time_for(n: int, plan: UsagePlan) -> float:
    """Seconds the bucket imposes on ``n`` back-to-back calls starting with a full burst."""
    return max(0, n - plan.burst) / plan.rate_per_s


def estimate(
    *,
    orders: int,
    mode: str,
    items_fetched: int | None = None,
    page_size: int = 100,
    report_windows: int = 1,
    report_wait_s: float = 0.0,
) -> Estimate:
    """Lower bound of calls and time for ``orders`` orders. ``mode``: ``orders_api``
    (getOrders pages + getOrderItems for ``items_fetched`` orders, default all) or
    ``report`` (createReport, getReport polls, getReportDocument per window). Operations run
    one after another in one job; their buckets are independent, so the longest imposed
    chain dominates when calls interleave."""
    if mode == "orders_api":
        pages = max(1, math.ceil(orders / page_size))
        items = orders if items_fetched is None else items_fetched
        calls = {"getOrders": pages, "getOrderItems": items}
        seconds = max(
            _time_for(pages, USAGE_PLANS["getOrders"]), _time_for(items, USAGE_PLANS["getOrderItems"])
        )
        return Estimate(calls, seconds)
    if mode == "report":
        polls = report_windows * 2
        calls = {"createReport": report_windows, "getReport": polls, "getReportDocument": report_windows}
        seconds = (
            max(
                _time_for(report_windows, USAGE_PLANS["createReport"]),
                _time_for(report_windows, USAGE_PLANS["getReportDocument"]),
            )
            + report_wait_s
        )
        return Estimate(calls, seconds)
    raise ValueError(f"unknown mode {mode!r}")
