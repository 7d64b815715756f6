"""On-demand fetch of an order a proof names but the store does not hold yet.

Shopify: the order by name in each official shop with credentials
(``streams.find_order_by_name``); Amazon: ``getOrder`` and ``getOrderItems`` in each
official seller account with credentials. Each call is bounded by
``VIPSYNC_PROOF_FETCH_TIMEOUT_MS`` and tried once (a proof answers now or says "try again
later"); each store has a budget of fetches per minute (``VIPSYNC_PROOF_FETCH_BUDGET_PER_MIN``),
shared by every process through Redis. A source that is down, or a store whose budget is
spent, raises TransientSourceError.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

import redis

from vipsync.connectors.amazon.client import SpApiClient
from vipsync.connectors.amazon.mapping import try_map_order_v0
from vipsync.connectors.records import OrderRecord
from vipsync.connectors.shopify.streams import find_order_by_name
from vipsync.eligibility.proof import OrderReference, shopify_names
from vipsync.errors import SourceError, TransientSourceError
from vipsync.workers.proofs import Fetcher
from vipsync.workers.ratelimit import SlidingWindow
from vipsync.workers.shopify_jobs import make_client

__all__ = ["FetchBudget", "fetch_on_demand"]

log = logging.getLogger(__name__)


class FetchBudget:
    """At most ``per_min`` fetches per store in any 60 seconds. With a Redis client the
    budget is shared by every process (each uvicorn worker, the CLI) through one sliding
    window per store; while Redis cannot be reached, each process counts its own."""

    def __init__(self, per_min: int, *, window: SlidingWindow | None = None) -> None:
        self.per_min = per_min
        self.window = window
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, store_key: str) -> bool:
        if self.per_min <= 0:
            return False
        if self.window is not None:
            try:
                return self.window.take("fetch-budget", store_key, self.per_min)
            except redis.RedisError as exc:
                log.warning("shared fetch budget unavailable", extra={"error": type(exc).__name__})
        return self._take_here(store_key)

    def _take_here(self, store_key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            calls = self._calls.setdefault(store_key, deque())
            while calls and calls[0] <= now - 60:
                calls.popleft()
            if len(calls) >= self.per_min:
                return False
            calls.append(now)
            return True


_budgets: dict[int, FetchBudget] = {}


def _budget(ctx) -> FetchBudget:
    key = id(ctx)
    if key not in _budgets:
        s = ctx.settings
        client = redis.Redis.from_url(s.redis_url, socket_timeout=2, socket_connect_timeout=2)
        window = SlidingWindow(client, namespace=f"{s.broker_namespace}:proofs", window_s=60)
        _budgets[key] = FetchBudget(s.proof_fetch_budget_per_min, window=window)
    return _budgets[key]


def _shopify(ctx, ref: OrderReference, store_key: str, timeout_s: float) -> list[OrderRecord]:
    shop = ctx.stores.shopify(store_key)
    client = make_client(shop, timeout_s=timeout_s, max_attempts=1)
    found = []
    for name in shopify_names(ref.value, [(shop.order_name_prefix, shop.order_name_suffix)]):
        rec = find_order_by_name(client, shop, name)
        if isinstance(rec, OrderRecord):
            found.append(rec)
    return found


def _amazon(ctx, ref: OrderReference, store_key: str, timeout_s: float) -> list[OrderRecord]:
    account = ctx.stores.amazon(store_key)
    client = SpApiClient.for_account(account, timeout_s=timeout_s, max_attempts=1)
    try:
        order = client.get_order(ref.value)
        if order is None:
            return []
        items = client.get_order_items(ref.value)
    finally:
        client.close()
    rec = try_map_order_v0(order, items, account)
    return [rec] if isinstance(rec, OrderRecord) else []


def fetch_on_demand(ctx) -> Fetcher:
    """The fetcher :func:`vipsync.workers.proofs.verify_proof` calls for an unknown order."""
    timeout_s = ctx.settings.proof_fetch_timeout_ms / 1000

    def fetch(ref: OrderReference, store_keys: Sequence[str]) -> list[OrderRecord]:
        deadline = time.monotonic() + timeout_s
        found: list[OrderRecord] = []
        down: list[str] = []
        for key in store_keys:
            store = ctx.stores.get(key)
            if not store.has_credentials():
                continue
            left = deadline - time.monotonic()
            if left <= 0.05 or not _budget(ctx).take(key):
                down.append(key)
                continue
            try:
                if ref.kind == "amazon_order_id":
                    found += _amazon(ctx, ref, key, left)
                else:
                    found += _shopify(ctx, ref, key, left)
            except SourceError as exc:
                log.warning("on-demand fetch failed", extra={"store": key, "error": type(exc).__name__})
                down.append(key)
        if not found and down:
            raise TransientSourceError(f"could not reach {', '.join(down)}")
        return found

    return fetch
