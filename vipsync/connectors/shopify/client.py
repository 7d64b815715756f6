"""The GraphQL Admin API client: ShopifyAPI's ``GraphQL`` with cost-based throttling,
retries with backoff, and timeouts.

ShopifyAPI keeps its session in thread-local state, so the client activates the shop's
session only while it builds its ``shopify.GraphQL`` object (``Session.temp``) and keeps its
own copy of the endpoint and headers: one client may then be used from any thread.

Before each query the client waits until the bucket (as last reported in
``extensions.cost.throttleStatus``, refilled at ``restoreRate``) holds the query's
requested cost, so it does not send queries into an empty bucket. A ``THROTTLED`` error,
HTTP 429, a 5xx, a timeout, a dropped connection or a body that is not complete JSON is
retried with backoff; bad credentials or a bad query fail at once.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import shopify

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.shopify.throttle import CostBucket, backoff_s
from vipsync.errors import PermanentSourceError, RateLimited, TransientSourceError

__all__ = ["ShopifyClient", "graphql_endpoint"]

log = logging.getLogger(__name__)


def graphql_endpoint(shop: ShopifyShop, session_site: str) -> str:
    """The shop's GraphQL URL: its ``endpoint`` (a sandbox or the local fake) when the
    stores file sets one, else the site of the ShopifyAPI session."""
    if shop.endpoint:
        return f"{shop.endpoint.rstrip('/')}/admin/api/{shop.api_version}/graphql.json"
    return session_site + "/graphql.json"


class _GraphQL(shopify.GraphQL):
    """``shopify.GraphQL`` with a timeout, our endpoint, and the HTTP status handed back
    (the stock ``execute`` prints error bodies and raises on any non-2xx)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.headers: dict[str, str] = dict(self.headers)  # a copy: the session's headers are thread-local

    def send(self, query: str, variables: dict | None, *, timeout_s: float) -> tuple[int, dict, bytes]:
        headers = self.merge_headers(
            {"Accept": "application/json", "Content-Type": "application/json"}, self.headers
        )
        body = json.dumps({"query": query, "variables": variables}).encode("utf-8")
        req = urllib.request.Request(self.endpoint, body, headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, dict(err.headers or {}), err.read() or b""


class ShopifyClient:
    """One shop's GraphQL Admin API. Counts calls and the seconds spent waiting."""

    def __init__(
        self,
        shop: ShopifyShop,
        *,
        access_token: str,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        backoff: Callable[[int], float] = backoff_s,
    ) -> None:
        self.shop = shop
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._clock = clock
        self._backoff = backoff
        self.bucket = CostBucket()
        self.calls = 0
        self.retries = 0
        self.wait_s = 0.0
        with shopify.Session.temp(shop.shop_domain, shop.api_version, access_token):
            self._gql = _GraphQL(graphql_endpoint(shop, shopify.ShopifyResource.get_site()))

    @property
    def endpoint(self) -> str:
        return self._gql.endpoint

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.wait_s += seconds
            self._sleep(seconds)

    def execute(self, query: str, variables: dict | None = None, *, cost: float = 10) -> dict[str, Any]:
        """Run one query or mutation; returns the whole response (``data``, ``extensions``).
        ``cost`` is the query's requested cost, used to wait for the bucket beforehand."""
        problem = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            self._wait(self.bucket.wait_for(cost, now_s=self._clock()))
            self.bucket.spend(cost, now_s=self._clock())
            self.calls += 1
            try:
                status, headers, body = self._gql.send(query, variables, timeout_s=self.timeout_s)
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                http.client.HTTPException,
                OSError,
            ) as exc:
                problem = f"connection failed ({type(exc).__name__})"
                self._retry(attempt, problem)
                continue
            if status == 429:
                problem = "HTTP 429"
                retry_after = _retry_after_s(headers)
                self._retry(attempt, problem, wait_s=retry_after)
                continue
            if status >= 500:
                problem = f"HTTP {status}"
                self._retry(attempt, problem)
                continue
            if status in (401, 403):
                raise PermanentSourceError(
                    f"shop {self.shop.key}: HTTP {status}: access token refused or lacks a scope"
                )
            if status >= 400:
                raise PermanentSourceError(f"shop {self.shop.key}: HTTP {status} from the GraphQL endpoint")
            try:
                doc = json.loads(body)
                if not isinstance(doc, dict):
                    raise ValueError("not an object")
            except ValueError:
                problem = "incomplete or invalid JSON body"
                self._retry(attempt, problem)
                continue
            self.bucket.update((doc.get("extensions") or {}).get("cost"), now_s=self._clock())
            errors = doc.get("errors")
            if errors:
                codes = {
                    ((e or {}).get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)
                }
                if "THROTTLED" in codes:
                    problem = "THROTTLED"
                    self.retries += 1
                    if attempt == self.max_attempts:
                        break
                    wait = self.bucket.wait_for(cost, now_s=self._clock()) or self._backoff(attempt)
                    log.info("shopify throttled", extra={"store": self.shop.key, "wait_s": round(wait, 2)})
                    self._wait(wait)
                    continue
                if "INTERNAL_SERVER_ERROR" in codes:
                    problem = "INTERNAL_SERVER_ERROR"
                    self._retry(attempt, problem)
                    continue
                if doc.get("data") is None or any(c in codes for c in ("ACCESS_DENIED", "MAX_COST_EXCEEDED")):
                    first = errors[0] if isinstance(errors[0], dict) else {}
                    code = (first.get("extensions") or {}).get("code") or "error"
                    message = str(first.get("message") or "")[:200]
                    raise PermanentSourceError(f"shop {self.shop.key}: GraphQL {code}: {message}")
            return doc
        if problem in ("THROTTLED", "HTTP 429"):
            raise RateLimited(f"shop {self.shop.key}: still throttled after {self.max_attempts} attempts")
        raise TransientSourceError(f"shop {self.shop.key}: {problem} after {self.max_attempts} attempts")

    def _retry(self, attempt: int, problem: str, *, wait_s: float | None = None) -> None:
        self.retries += 1
        if attempt == self.max_attempts:
            return
        wait = wait_s if wait_s is not None else self._backoff(attempt)
        log.info(
            "shopify request retried",
            extra={"store": self.shop.key, "problem": problem, "wait_s": round(wait, 2)},
        )
        self._wait(wait)


def _retry_after_s(headers: dict) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None
