"""A fake SP-API on 127.0.0.1: LWA, Orders API v0, Reports API 2021-06-30, documents.

Used by the demo, the integration tests and the benchmarks. The Finances API v0's
``listFinancialEvents`` serves refund events (``RefundEventList`` of ``ShipmentEvent``s, as
the model defines them) added with :meth:`SpApiSimulator.refund`; an event becomes visible
only ``finance_delay_s`` after it was posted (Amazon: events of the last 48 hours may be
missing), so a client that does not overlap its windows misses it. It enforces the documented
rate and burst of every operation with a token bucket (scaled by ``rate_scale`` so tests
need not wait a minute per getOrders call) and counts every request beyond them as a
*violation*: a well-behaved client causes none. It checks SP-API's own rules (the
LastUpdatedBefore 2-minute rule, at most 50 marketplace ids, a decodable NextToken) and
counts breaches as ``rule_violations``. Faults can be injected per operation: ``429``
(with an ``errors`` body), ``429_empty`` (no body: python-amazon-sp-api does not raise on
it), ``500``, ``503_html``, ``200_empty`` (a 2xx with no payload), ``expired_token``,
``bad_next_token`` and ``slow``.

Responses are shaped like the official sandbox examples in ``tests/fixtures/amazon/``.

- In-process: ``SpApiSimulator`` (pure, injectable clock) and ``simulator.transport()`` (an
  ``httpx.MockTransport``) for the simulated-clock benchmark.
- Over HTTP: ``with FakeSpApi(orders=...) as fake: fake.url``; or standalone:
  ``python -m vipsync.devtools.fake_spapi --port 8765 --orders 500``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from vipsync.devtools.amazon_data import (
    FakeOrder,
    generate_orders,
    order_address_v0,
    order_items_v0,
    order_v0,
    report_text,
)

__all__ = ["FakeSpApi", "Fault", "ShiftedClock", "SpApiSimulator", "main", "write_fake_stores"]

TOLERANCE_TOKENS = 0.02  # jitter allowance: a request counts as a violation below -0.02 tokens

# Amazon's documented usage plans (rate per second, burst), kept apart from the client's own
# table on purpose: the fake is the referee and shares no pacing code with the client.
SERVER_PLANS: dict[str, tuple[float, int]] = {
    "getOrders": (0.0167, 20),
    "getOrder": (0.5, 30),
    "getOrderItems": (0.5, 30),
    "getOrderAddress": (0.5, 30),
    "createReport": (0.0167, 15),
    "getReport": (2.0, 15),
    "getReportDocument": (0.0167, 15),
    "listFinancialEvents": (0.5, 30),
}


class _WallClock:
    """The process's clocks (the fake's default)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


class _Bucket:
    """The server side of a usage plan: tokens refill at ``rate`` up to ``burst``."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0 - TOLERANCE_TOKENS:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class Fault:
    op: str
    kind: str
    remaining: int = 1
    skip: int = 0  # let this many matching requests through first
    delay_s: float = 0.3


def _parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _err(code: str, message: str, details: str = "") -> dict:
    return {"errors": [{"code": code, "message": message, "details": details}]}


class SpApiSimulator:
    """The fake's state and rules, without any networking."""

    def __init__(
        self,
        *,
        orders: list[FakeOrder] | None = None,
        clock=None,
        rate_scale: float = 1.0,
        token_ttl_s: float = 3600.0,
        report_polls_until_done: int = 2,
        gzip_documents: bool = True,
        finance_delay_s: float = 0.0,
    ) -> None:
        self.clock = clock or _WallClock()
        self.rate_scale = rate_scale
        self.token_ttl_s = token_ttl_s
        self.report_polls_until_done = report_polls_until_done
        self.gzip_documents = gzip_documents
        self.orders: dict[str, FakeOrder] = {o.order_id: o for o in (orders or [])}
        self.tokens: dict[str, float] = {}
        self.buckets: dict[str, _Bucket] = {}
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.violations: Counter[str] = Counter()
        self.rule_violations: list[str] = []
        self.faults_served: Counter[str] = Counter()
        self.reports: dict[str, dict] = {}
        self.finance_delay_s = finance_delay_s
        self.refund_events: list[dict] = []  # ShipmentEvent bodies, each with its posted time
        self.documents: dict[str, bytes] = {}
        self.base_url = "http://fake-spapi.local"
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ control
    def inject(
        self, kind: str, *, op: str = "getOrders", times: int = 1, skip: int = 0, delay_s: float = 0.3
    ) -> None:
        with self.lock:
            self.faults.append(Fault(op=op, kind=kind, remaining=times, skip=skip, delay_s=delay_s))

    def expire_tokens(self) -> None:
        """Every access token handed out so far expires now."""
        with self.lock:
            self.tokens.clear()

    def upsert(self, order: FakeOrder) -> None:
        with self.lock:
            self.orders[order.order_id] = order

    def touch(self, order_id: str, **changes) -> FakeOrder:
        """Update an order now (its LastUpdateDate moves to the current time)."""
        with self.lock:
            order = self.orders[order_id].touched(self.clock.now().replace(microsecond=0), **changes)
            self.orders[order_id] = order
            return order

    def refund(
        self,
        order_id: str,
        quantities: dict[str, int] | None = None,
        *,
        posted_at: datetime | None = None,
        principal: dict[str, Decimal] | None = None,
    ) -> dict:
        """Post a refund event for ``order_id``: ``quantities`` per OrderItemId (default:
        every item in full); ``principal`` per OrderItemId overrides the refunded price
        (default: the item's price times the quantity)."""
        with self.lock:
            order = self.orders[order_id]
            posted = (posted_at or self.clock.now()).astimezone(UTC).replace(microsecond=0)
            wanted = quantities or {i.item_id: i.quantity for i in order.items}
            items = []
            for item in order.items:
                if item.item_id not in wanted:
                    continue
                qty = wanted[item.item_id]
                amount = (principal or {}).get(item.item_id, item.unit_price * qty)
                items.append(
                    {
                        "SellerSKU": item.sku,
                        "OrderItemId": item.item_id,
                        "OrderAdjustmentItemId": f"{len(self.refund_events) + 1}{item.item_id[-6:]}",
                        "QuantityShipped": qty,
                        "ItemChargeAdjustmentList": [
                            {
                                "ChargeType": "Principal",
                                "ChargeAmount": {
                                    "CurrencyCode": order.currency,
                                    "CurrencyAmount": float(-amount),
                                },
                            },
                            {
                                "ChargeType": "Tax",
                                "ChargeAmount": {"CurrencyCode": order.currency, "CurrencyAmount": 0.0},
                            },
                        ],
                    }
                )
            event = {
                "AmazonOrderId": order_id,
                "SellerOrderId": order_id,
                "MarketplaceName": order.sales_channel,
                "PostedDate": posted.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ShipmentItemAdjustmentList": items,
            }
            self.refund_events.append(event)
            return event

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    # ------------------------------------------------------------------ helpers
    def _rate(self, op: str) -> float:
        return SERVER_PLANS[op][0] * self.rate_scale

    def _take(self, op: str) -> bool:
        now = self.clock.monotonic()
        bucket = self.buckets.get(op)
        if bucket is None:
            bucket = self.buckets[op] = _Bucket(self._rate(op), SERVER_PLANS[op][1], now)
        return bucket.take(now)

    def _fault(self, op: str, query: dict | None = None) -> Fault | None:
        for fault in self.faults:
            if fault.kind == "bad_next_token" and "NextToken" not in (query or {}):
                continue
            if fault.op == op and fault.remaining > 0:
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.remaining -= 1
                self.faults_served[fault.kind] += 1
                return fault
        return None

    def _json(self, status: int, body: Any, op: str | None = None) -> tuple[int, dict, bytes]:
        headers = {"content-type": "application/json"}
        if op:
            headers["x-amzn-RateLimit-Limit"] = f"{self._rate(op):g}"
            headers["x-amzn-RequestId"] = uuid.uuid4().hex
        return status, headers, json.dumps(body).encode("utf-8")

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, list[str]]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "POST" and parts == ["auth", "o2", "token"]:
            return "lwa", []
        if parts[:3] == ["orders", "v0", "orders"]:
            if len(parts) == 3:
                return "getOrders", []
            if len(parts) == 4:
                return "getOrder", [parts[3]]
            if len(parts) == 5 and parts[4] == "orderItems":
                return "getOrderItems", [parts[3]]
            if len(parts) == 5 and parts[4] == "address":
                return "getOrderAddress", [parts[3]]
        if parts == ["finances", "v0", "financialEvents"] and method == "GET":
            return "listFinancialEvents", []
        if parts[:2] == ["reports", "2021-06-30"]:
            if parts[2:] == ["reports"] and method == "POST":
                return "createReport", []
            if len(parts) == 4 and parts[2] == "reports":
                return "getReport", [parts[3]]
            if len(parts) == 4 and parts[2] == "documents":
                return "getReportDocument", [parts[3]]
        if parts and parts[0] == "download" and len(parts) == 2:
            return "download", [parts[1]]
        return "unknown", []

    # ------------------------------------------------------------------ dispatch
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, headers: dict[str, str]
    ):
        """One request; returns (status, headers, body)."""
        with self.lock:
            op, args = self._route(method, path)
            self.calls[op] += 1
            if op == "lwa":
                return self._lwa(body)
            if op == "download":
                data = self.documents.get(args[0])
                if data is None:
                    return 404, {}, b"NoSuchKey"
                return 200, {"content-type": "text/plain; charset=UTF-8"}, data
            if op == "unknown":
                return self._json(404, _err("NotFound", "Resource not found."))
            fault = self._fault(op, query)
            if fault is not None:
                out = self._serve_fault(fault, op)
                if out is not None:
                    return out
            token = headers.get("x-amz-access-token", "")
            expires = self.tokens.get(token)
            if expires is None or self.clock.monotonic() >= expires:
                return self._json(
                    403,
                    _err(
                        "Unauthorized",
                        "Access to requested resource is denied.",
                        "The access token you provided has expired.",
                    ),
                )
            if not self._take(op):
                self.violations[op] += 1
                return self._json(
                    429, _err("QuotaExceeded", "You exceeded your quota for the requested resource."), op
                )
            handler = getattr(self, f"_op_{op}")
            return handler(args, query, body)

    def _serve_fault(self, fault: Fault, op: str):
        kind = fault.kind
        if kind == "429":
            return self._json(
                429, _err("QuotaExceeded", "You exceeded your quota for the requested resource."), op
            )
        if kind == "429_empty":
            return 429, {"x-amzn-RateLimit-Limit": f"{self._rate(op):g}"}, b""
        if kind == "500":
            return self._json(
                500, _err("InternalFailure", "We encountered an internal error. Please try again."), op
            )
        if kind == "503_html":
            return 503, {"content-type": "text/html"}, b"<html><body>Service Unavailable</body></html>"
        if kind == "200_empty":
            return self._json(200, {}, op)
        if kind == "expired_token":
            self.tokens.clear()
            return None  # the normal path now answers 403 (expired token)
        if kind == "slow":
            self.lock.release()
            try:
                time.sleep(fault.delay_s)
            finally:
                self.lock.acquire()
            return None
        if kind == "bad_next_token":
            return self._json(
                400, _err("InvalidInput", "Invalid Input", "NextToken could not be decoded"), op
            )
        raise ValueError(f"unknown fault {kind!r}")

    def _lwa(self, body: bytes):
        form = parse_qs(body.decode("utf-8"))
        if not form.get("refresh_token") or not form.get("client_id") or not form.get("client_secret"):
            return self._json(400, {"error": "invalid_request", "error_description": "missing parameter"})
        token = "Atza|fake-" + uuid.uuid4().hex
        self.tokens[token] = self.clock.monotonic() + self.token_ttl_s
        return self._json(
            200,
            {
                "access_token": token,
                "refresh_token": form["refresh_token"][0],
                "token_type": "bearer",
                "expires_in": int(self.token_ttl_s),
            },
        )

    # ------------------------------------------------------------------ Orders API v0
    def _encode_token(self, offset: int, query_key: str) -> str:
        raw = json.dumps({"o": offset, "q": query_key}).encode()
        return (
            base64.urlsafe_b64encode(raw).decode().rstrip("=") + "+/="[offset % 3]
        )  # opaque, with URL-unsafe chars

    def _decode_token(self, token: str, query_key: str) -> int | None:
        try:
            text = token[:-1]
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if data["q"] != query_key:
                return None
            return int(data["o"])
        except (ValueError, KeyError, TypeError):
            return None

    def _op_getOrders(self, args, query, body):
        q = {k: v[0] for k, v in query.items()}
        markets = [m for m in q.get("MarketplaceIds", "").split(",") if m]
        if not markets:
            return self._json(400, _err("InvalidInput", "Missing required MarketplaceIds"), "getOrders")
        if len(markets) > 50:
            self.rule_violations.append("more than 50 MarketplaceIds")
            return self._json(400, _err("InvalidInput", "Too many MarketplaceIds"), "getOrders")
        now = self.clock.now()
        for name in ("LastUpdatedBefore", "CreatedBefore"):
            if name in q and _parse_ts(q[name]) > now - timedelta(minutes=2):
                self.rule_violations.append(f"{name} less than 2 minutes before the request")
                return self._json(
                    400,
                    _err("InvalidInput", f"{name} must be at least 2 minutes before the request time"),
                    "getOrders",
                )
        if "LastUpdatedAfter" in q:
            field, lo = "updated_at", _parse_ts(q["LastUpdatedAfter"])
            hi = _parse_ts(q["LastUpdatedBefore"]) if "LastUpdatedBefore" in q else now - timedelta(minutes=2)
        elif "CreatedAfter" in q:
            field, lo = "purchased_at", _parse_ts(q["CreatedAfter"])
            hi = _parse_ts(q["CreatedBefore"]) if "CreatedBefore" in q else now - timedelta(minutes=2)
        else:
            return self._json(
                400, _err("InvalidInput", "CreatedAfter or LastUpdatedAfter is required"), "getOrders"
            )
        size = max(1, min(100, int(q.get("MaxResultsPerPage", "100"))))
        key_src = "|".join(f"{k}={q[k]}" for k in sorted(q) if k != "NextToken")
        query_key = hashlib.sha1(key_src.encode()).hexdigest()[:12]
        offset = 0
        if "NextToken" in q:
            decoded = self._decode_token(q["NextToken"], query_key)
            if decoded is None:
                return self._json(
                    400, _err("InvalidInput", "Invalid Input", "NextToken could not be decoded"), "getOrders"
                )
            offset = decoded
        marketset = set(markets)
        matching = sorted(
            (
                o
                for o in self.orders.values()
                if o.marketplace_id in marketset and lo <= getattr(o, field) <= hi
            ),
            key=lambda o: (getattr(o, field), o.order_id),
        )
        page = matching[offset : offset + size]
        payload: dict[str, Any] = {"Orders": [order_v0(o) for o in page]}
        if field == "updated_at":
            payload["LastUpdatedBefore"] = hi.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            payload["CreatedBefore"] = hi.strftime("%Y-%m-%dT%H:%M:%SZ")
        if offset + size < len(matching):
            payload["NextToken"] = self._encode_token(offset + size, query_key)
        return self._json(200, {"payload": payload}, "getOrders")

    def _op_listFinancialEvents(self, args, query, body):
        op = "listFinancialEvents"
        q = {k: v[0] for k, v in query.items()}
        now = self.clock.now()
        if "PostedAfter" not in q:
            return self._json(400, _err("InvalidInput", "PostedAfter is required in this fake"), op)
        lo = _parse_ts(q["PostedAfter"])
        hi = _parse_ts(q["PostedBefore"]) if "PostedBefore" in q else now - timedelta(minutes=2)
        if hi > now - timedelta(minutes=2):
            self.rule_violations.append("PostedBefore less than 2 minutes before the request")
            return self._json(
                400,
                _err("InvalidInput", "PostedBefore must be at least 2 minutes before the request time"),
                op,
            )
        if lo >= hi:
            return self._json(400, _err("InvalidInput", "PostedAfter must be before PostedBefore"), op)
        size = int(q.get("MaxResultsPerPage", "100"))
        if not 1 <= size <= 100:
            self.rule_violations.append("MaxResultsPerPage outside 1..100")
            return self._json(400, _err("InvalidInput", "MaxResultsPerPage must be 1 to 100"), op)
        key_src = "|".join(f"{k}={q[k]}" for k in sorted(q) if k != "NextToken")
        query_key = hashlib.sha1(key_src.encode()).hexdigest()[:12]
        offset = 0
        if "NextToken" in q:
            decoded = self._decode_token(q["NextToken"], query_key)
            if decoded is None:
                return self._json(
                    400, _err("InvalidInput", "Invalid Input", "NextToken could not be decoded"), op
                )
            offset = decoded
        visible_until = now - timedelta(seconds=self.finance_delay_s)
        matching = sorted(
            (
                e
                for e in self.refund_events
                if lo <= _parse_ts(e["PostedDate"]) < hi and _parse_ts(e["PostedDate"]) <= visible_until
            ),
            key=lambda e: (e["PostedDate"], e["AmazonOrderId"]),
        )
        page = matching[offset : offset + size]
        payload: dict[str, Any] = {
            "FinancialEvents": {
                "ShipmentEventList": [],
                "RefundEventList": page,
                "GuaranteeClaimEventList": [],
                "ChargebackEventList": [],
            }
        }
        if offset + size < len(matching):
            payload["NextToken"] = self._encode_token(offset + size, query_key)
        return self._json(200, {"payload": payload}, op)

    def _order_or_404(self, order_id: str, op: str):
        order = self.orders.get(order_id)
        if order is None:
            return None, self._json(404, _err("NotFound", "Invalid AmazonOrderId"), op)
        return order, None

    def _op_getOrder(self, args, query, body):
        order, missing = self._order_or_404(args[0], "getOrder")
        return missing or self._json(200, {"payload": order_v0(order)}, "getOrder")

    def _op_getOrderItems(self, args, query, body):
        order, missing = self._order_or_404(args[0], "getOrderItems")
        if missing:
            return missing
        return self._json(
            200,
            {"payload": {"AmazonOrderId": order.order_id, "OrderItems": order_items_v0(order)}},
            "getOrderItems",
        )

    def _op_getOrderAddress(self, args, query, body):
        order, missing = self._order_or_404(args[0], "getOrderAddress")
        return missing or self._json(200, {"payload": order_address_v0(order)}, "getOrderAddress")

    # ------------------------------------------------------------------ Reports API
    def _op_createReport(self, args, query, body):
        spec = json.loads(body or b"{}")
        if spec.get("reportType") != "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL":
            return self._json(
                400, _err("InvalidInput", "Unsupported reportType in this fake"), "createReport"
            )
        report_id = str(50000 + len(self.reports))
        outcome = "DONE"
        fault = self._fault("report")
        if fault is not None:
            outcome = {"report_cancelled": "CANCELLED", "report_fatal": "FATAL"}.get(fault.kind, "DONE")
        self.reports[report_id] = {
            "spec": spec,
            "polls": 0,
            "outcome": outcome,
            "created": self.clock.now(),
            "markets": set(spec.get("marketplaceIds") or []),
        }
        return self._json(202, {"reportId": report_id}, "createReport")

    def _op_getReport(self, args, query, body):
        rep = self.reports.get(args[0])
        if rep is None:
            return self._json(404, _err("NotFound", "Report not found"), "getReport")
        rep["polls"] += 1
        spec = rep["spec"]
        status = "IN_QUEUE" if rep["polls"] == 1 else "IN_PROGRESS"
        if rep["polls"] > self.report_polls_until_done:
            status = rep["outcome"]
        out = {
            "reportId": args[0],
            "reportType": spec["reportType"],
            "dataStartTime": spec.get("dataStartTime"),
            "dataEndTime": spec.get("dataEndTime"),
            "marketplaceIds": sorted(rep["markets"]),
            "createdTime": rep["created"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "processingStatus": status,
        }
        if status in ("DONE", "FATAL"):
            doc_id = f"amzn1.spdoc.1.4.na.{args[0]}"
            out["reportDocumentId"] = doc_id
            out["processingEndTime"] = self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")
            if doc_id not in self.documents:
                self.documents[doc_id] = self._render_document(rep) if status == "DONE" else b"Fatal error"
        return self._json(200, out, "getReport")

    def _render_document(self, rep: dict) -> bytes:
        spec = rep["spec"]
        lo = (
            _parse_ts(spec["dataStartTime"])
            if spec.get("dataStartTime")
            else datetime(1970, 1, 1, tzinfo=UTC)
        )
        hi = _parse_ts(spec["dataEndTime"]) if spec.get("dataEndTime") else rep["created"]
        chosen = sorted(
            (
                o
                for o in self.orders.values()
                if o.marketplace_id in rep["markets"] and lo <= o.purchased_at <= hi
            ),
            key=lambda o: (o.purchased_at, o.order_id),
        )
        data = report_text(chosen)
        return gzip.compress(data) if self.gzip_documents else data

    def _op_getReportDocument(self, args, query, body):
        doc_id = args[0]
        if doc_id not in self.documents:
            return self._json(404, _err("NotFound", "Document not found"), "getReportDocument")
        out = {"reportDocumentId": doc_id, "url": f"{self.base_url}/download/{doc_id}"}
        if self.gzip_documents:
            out["compressionAlgorithm"] = "GZIP"
        return self._json(200, out, "getReportDocument")

    # ------------------------------------------------------------------ in-process transport
    def transport(self) -> httpx.MockTransport:
        """An httpx transport that answers from this simulator (no sockets)."""

        def handler(request: httpx.Request) -> httpx.Response:
            url = request.url
            query = parse_qs(url.query.decode("ascii"), keep_blank_values=True)
            status, headers, body = self.handle(
                request.method,
                url.path,
                query,
                request.content,
                {k.lower(): v for k, v in request.headers.items()},
            )
            return httpx.Response(status, headers=headers, content=body)

        return httpx.MockTransport(handler)


class FakeSpApi:
    """The simulator served over HTTP on 127.0.0.1 (a context manager)."""

    def __init__(
        self,
        *,
        orders: list[FakeOrder] | None = None,
        n_orders: int = 0,
        markets: tuple[str, ...] = ("US",),
        port: int = 0,
        seed: int = 7,
        **sim_kwargs: Any,
    ) -> None:
        if orders is None:
            orders = generate_orders(n_orders, markets=markets, seed=seed) if n_orders else []
        self.sim = SpApiSimulator(orders=orders, **sim_kwargs)
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __getattr__(self, name: str):  # counters and controls of the simulator
        return getattr(self.sim, name)

    def start(self) -> FakeSpApi:
        sim = self.sim

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms stalls

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = sim.handle(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    body,
                    {k.lower(): v for k, v in self.headers.items()},
                )
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        sim.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-spapi", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSpApi:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake SP-API on 127.0.0.1 (LWA, Orders v0, Reports).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--orders", type=int, default=200, help="generated orders to serve")
    parser.add_argument("--markets", default="US,DE,UK,JP", help="marketplace codes of the generated orders")
    parser.add_argument(
        "--rate-scale", type=float, default=1.0, help="multiply the documented rates (1 = real limits)"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    markets = tuple(m.strip().upper() for m in args.markets.split(",") if m.strip())
    fake = FakeSpApi(
        n_orders=args.orders, markets=markets, port=args.port, seed=args.seed, rate_scale=args.rate_scale
    )
    fake.start()
    print(
        f"fake SP-API at {fake.url} with {args.orders} orders ({','.join(markets)}); Ctrl-C stops it",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":  # pragma: no cover
    main()


def write_fake_stores(
    path,
    *,
    url: str,
    key: str = "amazon-test",
    region: str = "EU",
    markets: tuple[str, ...] = ("DE", "UK", "FR"),
    env_prefix: str = "VIPSYNC_FAKE_AMAZON",
    environ=None,
) -> str:
    """Write a stores file with one Amazon account pointed at a fake at ``url`` and put
    dummy credentials in ``environ`` (default: ``os.environ``). Returns the store key."""
    import os

    env = os.environ if environ is None else environ
    names = {c: f"{env_prefix}_{c.upper()}" for c in ("refresh_token", "lwa_app_id", "lwa_client_secret")}
    for cred, var in names.items():
        env[var] = f"fake-{cred}"
    creds = ", ".join(f'{c} = "{v}"' for c, v in names.items())
    market_list = ", ".join(f'"{m}"' for m in markets)
    text = (
        f'[stores.{key}]\nkind = "amazon"\nname = "fake"\nregion = "{region}"\n'
        f'marketplaces = [{market_list}]\ncredentials = {{ {creds} }}\nendpoint = "{url}"\n'
    )
    from pathlib import Path

    Path(path).write_text(text, encoding="utf-8")
    return key


class ShiftedClock:
    """Real monotonic time and sleeps, with a wall clock that tests can move forward
    (share one between the fake and the client: "five minutes later" in no time)."""

    def __init__(self) -> None:
        self.shift = timedelta(0)
        self._real = _WallClock()

    def monotonic(self) -> float:
        return self._real.monotonic()

    def sleep(self, seconds: float) -> None:
        self._real.sleep(seconds)

    def now(self) -> datetime:
        return self._real.now() + self.shift

    def jump(self, **delta: float) -> None:
        self.shift += timedelta(**delta)
