"""A fake Shopify Admin API on 127.0.0.1, for tests, the demo and benchmarks.

It answers the GraphQL documents the connector sends the way the real API answers them
(``data``, ``extensions.cost`` with ``throttleStatus``, ``errors`` with
``extensions.code: THROTTLED``, ``pageInfo``), applies cost-based throttling like a
standard-plan shop, runs bulk operations with a JSONL download, signs webhook
deliveries, and injects faults on request.

Use in a test::

    with FakeShopify(orders=500, seed=7) as fake:      # serves 500 generated orders
        fake.url                                       # http://127.0.0.1:PORT (the stores file's `endpoint`)
        fake.add_orders(10)                            # -> the new order ids
        fake.update_order(order_id, cancelled=True)    # updatedAt becomes now
        fake.update_order(order_id, refund={line_id: 1}, email="x@example.com")
        fake.fail_next(2, status=503)                  # next 2 GraphQL calls answer 503
        fake.throttle_next(1)                          # next call: THROTTLED, bucket emptied
        fake.http429_next(1)                           # next call: HTTP 429 with Retry-After
        fake.slow_next(1, delay_s=2.0)                 # next call answers after 2 s
        fake.truncate_next(1)                          # next call's body is cut in half
        fake.bulk_outcome = "FAILED"                   # or CANCELED, EXPIRED, EMPTY, COMPLETED
        fake.start_foreign_bulk(duration_s=0.5)        # another bulk query is already running
        fake.scopes = {"read_orders"}                  # no read_all_orders
        fake.stores_toml()                             # a stores file with one shop pointed here
        fake.counters                                  # requests, graphql, empty_bucket, throttled, ...
                                                       # (also served at GET /_fake/counters)
        fake.rest_order(order_id)                      # the order in the REST/webhook shape
        fake.deliver_webhook(url, "orders/updated", payload, secret=...)  # signed POST

Counters: ``empty_bucket`` counts every GraphQL query that arrived when the bucket could
not cover its requested cost (a client that honours ``throttleStatus`` never causes one;
throttles injected by ``throttle_next`` are counted apart, in ``forced_throttles``).

Standard plan: restore 100 points/s (Shopify's published figure). The bucket size is
what ``maximumAvailable`` reports; 2,000 points is assumed here (``bucket_size``).

Run it alone: ``python -m vipsync.devtools.fake_shopify --port 8765 --orders 2000``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import random
import re
import tempfile
import threading
import time
import urllib.request
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vipsync.devtools.bulk_rules import BulkQueryRefused, check_bulk_query
from vipsync.devtools.query_cost import actual_cost, requested_cost

__all__ = ["KVM_CATALOG", "FakeOrder", "FakeShopify", "sign_webhook"]

API_VERSION = "2025-10"
KVM_CATALOG: list[tuple[str, str, str]] = [
    ("HKS0401A3U", "TESmart 4-Port HDMI KVM Switch 4K60", "329.99"),
    ("HKS0201A2U", "TESmart 2-Port HDMI KVM Switch 4K60", "189.99"),
    ("HKS0802A1U", "TESmart 8x2 HDMI Dual Monitor KVM Switch", "749.99"),
    ("HMA0808A10", "TESmart 8x8 HDMI Matrix Switch 4K", "1199.99"),
    ("DKS0401A1U", "TESmart 4-Port DisplayPort KVM Switch", "399.99"),
    ("HKE0101A1U", "TESmart HDMI KVM Extender over Cat6", "159.99"),
    ("CAB-HDMI-5FT", "TESmart HDMI 2.0 Cable 5ft", "12.99"),
    ("CAB-USB-AB-5FT", "TESmart USB 2.0 A-B Cable 5ft", "8.99"),
    ("", "Gift wrapping", "4.99"),
]
COUNTRIES = ["US", "US", "US", "DE", "FR", "JP", "GB", "CA", "IT", "ES", "NL"]
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)


def sign_webhook(secret: str, body: bytes) -> str:
    """Shopify's webhook signature: base64 HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeLine:
    id: int
    sku: str
    title: str
    quantity: int
    current: int
    price: str
    discount: str = "0.00"  # allocated to the line (its share of the order's discount code)


@dataclass
class FakeOrder:
    """One order as the fake keeps it."""

    id: int
    number: int
    processed_at: datetime
    created_at: datetime
    updated_at: datetime
    email: str | None
    country: str | None
    zip: str | None
    billing_country: str | None
    financial: str = "PAID"
    test: bool = False
    cancelled_at: datetime | None = None
    codes: list[str] = field(default_factory=list)
    lines: list[FakeLine] = field(default_factory=list)
    refunds: list[tuple[int, datetime, list[tuple[int, int, int]]]] = field(
        default_factory=list
    )  # id, at, (rli id, line id, qty)
    currency: str = "USD"
    # The buyer's contact details (keys: first_name, last_name, street, city, phone, ip,
    # note), sent in Shopify's own fields when set: what the store must never keep.
    personal: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    zero_total: bool = False  # a free order (a replacement): total 0 whatever the lines
    # Returns with an exchange: (return id, at, returned line id, added line id), one unit each.
    returns: list[tuple[int, datetime, int, int]] = field(default_factory=list)

    @property
    def gid(self) -> str:
        return f"gid://shopify/Order/{self.id}"

    def total(self) -> str:
        if self.zero_total:
            return "0.00"
        gross = sum(float(line.price) * line.quantity - float(line.discount) for line in self.lines)
        return f"{gross:.2f}"


class _Bucket:
    def __init__(self, size: float, restore: float) -> None:
        self.size, self.restore = size, restore
        self.available = size
        self.at = time.monotonic()

    def refill(self) -> float:
        now = time.monotonic()
        self.available = min(self.size, self.available + (now - self.at) * self.restore)
        self.at = now
        return self.available

    def status(self) -> dict:
        return {
            "maximumAvailable": float(self.size),
            "currentlyAvailable": round(self.available, 1),
            "restoreRate": float(self.restore),
        }


_FIRST = re.compile(r"(\w+)\(first:\s*(\d+)")
_COUNTED = re.compile(r"\bordersCount\(")
_NAME_TERM = re.compile(r"name:'?(#\d+)'?")
_SEARCH_TERM = re.compile(r"(updated_at|created_at|processed_at):(>=|<=|>|<)'?([0-9T:\-Z+.]+)'?")


class FakeShopify:
    """The fake Admin API (see the module docstring for the whole interface)."""

    def __init__(
        self,
        *,
        orders: int = 0,
        seed: int = 1,
        bucket_size: float = 2000.0,
        restore_rate: float = 100.0,
        access_token: str = "fake-access-token",
        webhook_secret: str = "fake-webhook-secret",
        scopes: set[str] | None = None,
        bulk_delay_s: float = 0.2,
        bulk_interleave: bool = True,
        port: int = 0,
    ) -> None:
        self.seed = seed
        self.access_token = access_token
        self.webhook_secret = webhook_secret
        self.scopes = set(scopes) if scopes is not None else {"read_orders", "read_all_orders"}
        self.bulk_delay_s = bulk_delay_s
        self.bulk_interleave = bulk_interleave
        self.bulk_outcome = "COMPLETED"
        self.retry_after_s = 0.2
        self.bucket = _Bucket(bucket_size, restore_rate)
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "requests",
                "graphql",
                "empty_bucket",
                "throttled",
                "forced_throttles",
                "errors_5xx",
                "http429",
                "slow",
                "truncated",
                "bulk_runs",
                "bulk_refused",
                "bulk_downloads",
                "orders_served",
                "unauthorized",
            ),
            0,
        )
        self._faults: list[tuple[str, dict]] = []
        self._orders: dict[int, FakeOrder] = {}
        self._sorted: list[tuple[datetime, int]] | None = None
        self._lock = threading.RLock()
        self._next_id = 5_000_000_000
        self._next_number = 1001
        self._next_child = 9_000_000_000
        self._bulk: dict[str, Any] | None = None
        self._bulk_seq = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-shopify-")
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.on_orders_page = None  # optional callback(page_number) run before a page is answered
        # Product variants by SKU: (price, compareAtPrice or None), as strings; the shop's currency.
        self.variants: dict[str, tuple[str, str | None]] = {}
        self.currency = "USD"
        if orders:
            self.add_orders(orders)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FakeShopify:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-shopify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._tmp.cleanup()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def graphql_path(self) -> str:
        return f"/admin/api/{API_VERSION}/graphql.json"

    # ------------------------------------------------------------------ data
    def _generate(self, index: int) -> FakeOrder:
        rng = random.Random(self.seed * 1_000_003 + index)
        processed = EPOCH + timedelta(minutes=37 * index + rng.randint(0, 30))
        country = rng.choice(COUNTRIES)
        lines = []
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            sku, title, price = rng.choice(KVM_CATALOG)
            self._next_child += 1
            qty = rng.choice([1, 1, 1, 2])
            lines.append(FakeLine(self._next_child, sku, title, qty, qty, price))
        self._next_id += 1
        self._next_number += 1
        order = FakeOrder(
            id=self._next_id,
            number=self._next_number,
            processed_at=processed,
            created_at=processed + timedelta(seconds=rng.randint(0, 5)),
            updated_at=processed + timedelta(minutes=rng.randint(1, 600)),
            email=f"buyer{index}@example.com" if rng.random() > 0.05 else None,
            country=country if rng.random() > 0.03 else None,
            zip=f"{rng.randint(10000, 99999)}",
            billing_country=country,
            financial=rng.choice(["PAID"] * 8 + ["PENDING", "AUTHORIZED"]),
            test=rng.random() < 0.01,
            codes=["WELCOME10"] if rng.random() < 0.1 else [],
            lines=lines,
            currency="EUR"
            if country in ("DE", "FR", "IT", "ES", "NL")
            else ("JPY" if country == "JP" else "USD"),
        )
        if order.codes:  # the code takes 10% of every line (no extra draws: same orders per seed)
            for line in order.lines:
                line.discount = f"{float(line.price) * line.quantity * 0.1:.2f}"
        return order

    def add_orders(self, n: int) -> list[int]:
        """Add ``n`` generated orders (deterministic for the seed); returns their ids."""
        with self._lock:
            start = len(self._orders)
            new = [self._generate(start + i) for i in range(n)]
            for order in new:
                self._orders[order.id] = order
            self._sorted = None
            return [o.id for o in new]

    def order(self, order_id: int) -> FakeOrder:
        return self._orders[order_id]

    @property
    def order_ids(self) -> list[int]:
        return list(self._orders)

    def update_order(
        self,
        order_id: int,
        *,
        at: datetime | None = None,
        cancelled: bool | None = None,
        refund: dict[int, int] | None = None,
        remove: dict[int, int] | None = None,
        email: str | None = None,
        financial: str | None = None,
        personal: dict[str, str] | None = None,
        tags: list[str] | None = None,
        zero_total: bool | None = None,
        exchange: tuple[int, str] | None = None,
        add: list[str] | None = None,
    ) -> FakeOrder:
        """Change an order; its ``updatedAt`` becomes ``at`` (default: now). ``exchange``
        (line id, new SKU): a return of one unit of that line with an exchange for one unit
        of the new SKU, added to the order as a new line, as Shopify's returns do. ``add``:
        new lines of one unit of each SKU (an order edit)."""
        with self._lock:
            order = self._orders[order_id]
            now = at or datetime.now(UTC).replace(microsecond=0)
            if cancelled is not None:
                order.cancelled_at = now if cancelled else None
            if refund:
                self._next_child += 1
                rid = self._next_child
                items = []
                for line_id, qty in refund.items():
                    self._next_child += 1
                    items.append((self._next_child, line_id, qty))
                    line = next(candidate for candidate in order.lines if candidate.id == line_id)
                    line.current = max(0, line.current - qty)
                order.refunds.append((rid, now, items))
                order.financial = "PARTIALLY_REFUNDED"
            if remove:
                for line_id, qty in remove.items():
                    line = next(candidate for candidate in order.lines if candidate.id == line_id)
                    line.current = max(0, line.current - qty)
            if email is not None:
                order.email = email
            if financial is not None:
                order.financial = financial
            if personal is not None:
                order.personal = dict(personal)
            if tags is not None:
                order.tags = list(tags)
            if zero_total is not None:
                order.zero_total = zero_total
            for sku in add or ():
                self._next_child += 1
                price = order.lines[0].price if order.lines else "100.00"
                order.lines.append(FakeLine(self._next_child, sku, f"TESmart {sku}", 1, 1, price))
            if exchange is not None:
                line_id, new_sku = exchange
                line = next(candidate for candidate in order.lines if candidate.id == line_id)
                line.current = max(0, line.current - 1)
                self._next_child += 2
                added = FakeLine(self._next_child, new_sku, f"TESmart {new_sku}", 1, 1, line.price)
                order.lines.append(added)
                order.returns.append((self._next_child - 1, now, line_id, added.id))
            order.updated_at = now
            self._sorted = None
            return order

    # ------------------------------------------------------------------ faults
    def _push(self, kind: str, n: int, **kw) -> None:
        with self._lock:
            self._faults.extend((kind, kw) for _ in range(n))

    def fail_next(self, n: int = 1, *, status: int = 503) -> None:
        self._push("status", n, status=status)

    def throttle_next(self, n: int = 1) -> None:
        self._push("throttle", n)

    def http429_next(self, n: int = 1) -> None:
        self._push("429", n)

    def slow_next(self, n: int = 1, *, delay_s: float = 2.0) -> None:
        self._push("slow", n, delay_s=delay_s)

    def truncate_next(self, n: int = 1) -> None:
        self._push("truncate", n)

    def _take_fault(self) -> tuple[str, dict] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    # ------------------------------------------------------------------ shapes
    def graphql_node(
        self,
        o: FakeOrder,
        *,
        line_first: int | None,
        refund_first: int | None,
        rli_first: int | None,
        refund_lines: bool = True,
    ) -> dict:
        """The order as ``ORDERS_PAGE_QUERY`` / ``ORDER_FULL_QUERY`` select it (each refund
        without its ``refundLineItems`` when ``refund_lines`` is False: not selected)."""
        node = self._scalars(o)
        lines = o.lines if line_first is None else o.lines[:line_first]
        node["lineItems"] = {
            "pageInfo": {"hasNextPage": line_first is not None and len(o.lines) > line_first},
            "nodes": [self._line(line) for line in lines],
        }
        refunds = o.refunds if refund_first is None else o.refunds[:refund_first]
        node["refunds"] = [
            {"id": f"gid://shopify/Refund/{rid}"}
            | (
                {
                    "refundLineItems": {
                        "pageInfo": {"hasNextPage": rli_first is not None and len(items) > rli_first},
                        "nodes": [
                            {"quantity": q, "lineItem": {"id": f"gid://shopify/LineItem/{lid}"}}
                            for _, lid, q in (items if rli_first is None else items[:rli_first])
                        ],
                    }
                }
                if refund_lines
                else {}
            )
            for rid, _, items in refunds
        ]
        return node

    def _scalars(self, o: FakeOrder) -> dict:
        node = self._scalars_base(o)
        p = o.personal
        if p:
            node["customer"] = {
                "id": f"gid://shopify/Customer/{o.id}",
                "firstName": p.get("first_name"),
                "lastName": p.get("last_name"),
                "email": o.email,
                "phone": p.get("phone"),
            }
            node["phone"] = p.get("phone")
            node["clientIp"] = p.get("ip")
            node["note"] = p.get("note")
            for key in ("shippingAddress", "billingAddress"):
                node[key] = dict(
                    node.get(key) or {},
                    name=f"{p.get('first_name')} {p.get('last_name')}",
                    firstName=p.get("first_name"),
                    lastName=p.get("last_name"),
                    address1=p.get("street"),
                    city=p.get("city"),
                    phone=p.get("phone"),
                )
        return node

    def _scalars_base(self, o: FakeOrder) -> dict:
        return {
            "id": o.gid,
            "legacyResourceId": str(o.id),
            "name": f"#{o.number}",
            "processedAt": _iso(o.processed_at),
            "createdAt": _iso(o.created_at),
            "updatedAt": _iso(o.updated_at),
            "cancelledAt": _iso(o.cancelled_at),
            "test": o.test,
            "displayFinancialStatus": o.financial,
            "displayFulfillmentStatus": "UNFULFILLED",
            "returnStatus": "RETURNED" if o.returns else "NO_RETURN",
            "email": o.email,
            "currencyCode": o.currency,
            "discountCodes": list(o.codes),
            "tags": list(o.tags),
            "totalPriceSet": {"shopMoney": {"amount": o.total(), "currencyCode": o.currency}},
            "shippingAddress": {"countryCodeV2": o.country, "zip": o.zip} if o.country else None,
            "billingAddress": {"countryCodeV2": o.billing_country} if o.billing_country else None,
        }

    @staticmethod
    def _line(line: FakeLine) -> dict:
        return {
            "id": f"gid://shopify/LineItem/{line.id}",
            "sku": line.sku or None,
            "title": line.title,
            "quantity": line.quantity,
            "currentQuantity": line.current,
            "originalUnitPriceSet": {"shopMoney": {"amount": line.price}},
            "discountAllocations": [{"allocatedAmountSet": {"shopMoney": {"amount": line.discount}}}]
            if line.discount != "0.00"
            else [],
        }

    def rest_order(self, order_id: int) -> dict:
        """The order in the REST / webhook shape (as ``orders/updated`` delivers it)."""
        o = self._orders[order_id]
        offset = lambda ts: None if ts is None else ts.astimezone(UTC).isoformat()  # noqa: E731
        return {
            "id": o.id,
            "admin_graphql_api_id": o.gid,
            "name": f"#{o.number}",
            "order_number": o.number,
            "email": o.email,
            "contact_email": o.email,
            "created_at": offset(o.created_at),
            "processed_at": offset(o.processed_at),
            "updated_at": offset(o.updated_at),
            "cancelled_at": offset(o.cancelled_at),
            "test": o.test,
            "financial_status": o.financial.lower(),
            "fulfillment_status": None,
            "currency": o.currency,
            "total_price": o.total(),
            "discount_codes": [{"code": c, "amount": "10.00", "type": "percentage"} for c in o.codes],
            "discount_applications": [
                {
                    "target_type": "line_item",
                    "type": "discount_code",
                    "value": "10.0",
                    "value_type": "percentage",
                    "allocation_method": "across",
                    "target_selection": "all",
                    "code": c,
                }
                for c in o.codes
            ],
            "tags": ", ".join(o.tags),
            "shipping_address": {"country_code": o.country, "zip": o.zip} if o.country else None,
            "billing_address": {"country_code": o.billing_country} if o.billing_country else None,
            "line_items": [
                {
                    "id": line.id,
                    "sku": line.sku,
                    "title": line.title,
                    "name": line.title,
                    "quantity": line.quantity,
                    "current_quantity": line.current,
                    "price": line.price,
                    "total_discount": "0.00",
                    "discount_allocations": [
                        {
                            "amount": line.discount,
                            "discount_application_index": 0,
                            "amount_set": {
                                "shop_money": {"amount": line.discount, "currency_code": o.currency},
                                "presentment_money": {"amount": line.discount, "currency_code": o.currency},
                            },
                        }
                    ]
                    if line.discount != "0.00"
                    else [],
                }
                for line in o.lines
            ],
            "refunds": [
                {
                    "id": rid,
                    "order_id": o.id,
                    "created_at": offset(at),
                    "refund_line_items": [
                        {"id": rli, "line_item_id": lid, "quantity": q} for rli, lid, q in items
                    ],
                }
                for rid, at, items in o.refunds
            ],
        } | self._rest_personal(o)

    @staticmethod
    def _rest_personal(o: FakeOrder) -> dict:
        p = o.personal
        if not p:
            return {}
        address = {
            "name": f"{p.get('first_name')} {p.get('last_name')}",
            "first_name": p.get("first_name"),
            "last_name": p.get("last_name"),
            "address1": p.get("street"),
            "city": p.get("city"),
            "phone": p.get("phone"),
        }
        return {
            "phone": p.get("phone"),
            "browser_ip": p.get("ip"),
            "note": p.get("note"),
            "client_details": {"browser_ip": p.get("ip"), "user_agent": "Mozilla/5.0"},
            "customer": {
                "id": o.id,
                "email": o.email,
                "first_name": p.get("first_name"),
                "last_name": p.get("last_name"),
                "phone": p.get("phone"),
            },
            "shipping_address": {"country_code": o.country, "zip": o.zip} | address,
            "billing_address": {"country_code": o.billing_country} | address,
        }

    def stores_toml(
        self,
        *,
        key: str = "shopify-us",
        shop_domain: str = "tesmart-us.myshopify.com",
        timezone_name: str = "America/Los_Angeles",
        country: str = "US",
        token_env: str = "VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN",
        secret_env: str = "VIPSYNC_FAKE_SHOPIFY_API_SECRET",
    ) -> str:
        """A stores file (TOML text) with one shop pointed at this fake. Set ``token_env``
        to :attr:`access_token` and ``secret_env`` to :attr:`webhook_secret`."""
        return (
            f'[stores.{key}]\nkind = "shopify"\nshop_domain = "{shop_domain}"\n'
            f'timezone = "{timezone_name}"\ncountry = "{country}"\napi_version = "{API_VERSION}"\n'
            f'endpoint = "{self.url}"\n'
            f'credentials = {{ access_token = "{token_env}", api_secret = "{secret_env}" }}\n'
        )

    # ------------------------------------------------------------------ webhooks
    def deliver_webhook(
        self,
        target_url: str,
        topic: str,
        payload: dict,
        *,
        secret: str | None = None,
        webhook_id: str | None = None,
        shop_domain: str = "tesmart-us.myshopify.com",
        timeout_s: float = 10.0,
    ) -> int:
        """POST a signed delivery the way Shopify does; returns the HTTP status."""
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign_webhook(secret or self.webhook_secret, body),
            "X-Shopify-Shop-Domain": shop_domain,
            "X-Shopify-Webhook-Id": webhook_id or f"wh-{random.getrandbits(48):012x}",
            "X-Shopify-API-Version": API_VERSION,
        }
        req = urllib.request.Request(target_url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code

    # ------------------------------------------------------------------ queries
    def _sorted_keys(self) -> list[tuple[datetime, int]]:
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted((o.updated_at, o.id) for o in self._orders.values())
            return self._sorted

    @staticmethod
    def _terms(search: str) -> list[tuple[str, str, Any]]:
        terms: list[tuple[str, str, Any]] = [
            (f, op, datetime.fromisoformat(v.replace("Z", "+00:00")))
            for f, op, v in _SEARCH_TERM.findall(search or "")
        ]
        terms += [("name", "=", m) for m in _NAME_TERM.findall(search or "")]
        return terms

    def _window(self, search: str) -> tuple[list[tuple[datetime, int]], int, int, list]:
        """Sorted (updatedAt, id) keys, the slice [lo, hi) the updated_at terms allow, and
        the remaining terms."""
        keys = self._sorted_keys()
        lo, hi, rest = 0, len(keys), []
        for fld, op, ts in self._terms(search):
            if fld != "updated_at":
                rest.append((fld, op, ts))
            elif op == ">=":
                lo = max(lo, bisect_left(keys, (ts, -1)))
            elif op == ">":
                lo = max(lo, bisect_right(keys, (ts, 1 << 62)))
            elif op == "<=":
                hi = min(hi, bisect_right(keys, (ts, 1 << 62)))
            else:
                hi = min(hi, bisect_left(keys, (ts, -1)))
        return keys, lo, hi, rest

    def _passes(self, o: FakeOrder, rest: list) -> bool:
        for fld, op, ts in rest:
            if fld == "name":
                if f"#{o.number}" != ts:
                    return False
                continue
            have = {"created_at": o.created_at, "processed_at": o.processed_at}[fld]
            if not {">=": have >= ts, "<=": have <= ts, ">": have > ts, "<": have < ts}[op]:
                return False
        return True

    def _matching(self, search: str):
        """The orders matching ``search``, oldest update first (a generator)."""
        keys, lo, hi, rest = self._window(search)
        for i in range(lo, hi):
            o = self._orders[keys[i][1]]
            if self._passes(o, rest):
                yield o

    def _page_sizes(self, query: str, variables: dict) -> tuple[int, int, int, int]:
        firsts = dict(_FIRST.findall(query))
        first = int(variables.get("first") or firsts.get("orders") or firsts.get("order") or 50)
        return (
            first,
            int(firsts.get("lineItems", 250)),
            int(firsts.get("refunds", 250)),
            int(firsts.get("refundLineItems", 250)),
        )

    def _node_for(self, o: FakeOrder, query: str, variables: dict) -> dict:
        _, line_first, refund_first, rli_first = self._page_sizes(query, variables)
        return self.graphql_node(
            o,
            line_first=line_first,
            refund_first=refund_first,
            rli_first=rli_first,
            refund_lines="refundLineItems" in query,
        )

    def _orders_page(self, query: str, variables: dict) -> dict:
        first = self._page_sizes(query, variables)[0]
        keys, lo, hi, rest = self._window(variables.get("query") or "")
        after = variables.get("after")
        if after:
            ts_text, oid = base64.b64decode(after).decode().split("|")
            lo = max(lo, bisect_right(keys, (datetime.fromisoformat(ts_text), int(oid))))
        page: list[FakeOrder] = []
        more = False
        for i in range(lo, hi):
            o = self._orders[keys[i][1]]
            if not self._passes(o, rest):
                continue
            if len(page) == first:
                more = True
                break
            page.append(o)
        nodes = [self._node_for(o, query, variables) for o in page]
        end = None
        if page:
            last = page[-1]
            end = base64.b64encode(f"{last.updated_at.isoformat()}|{last.id}".encode()).decode()
        self.counters["orders_served"] += len(nodes)
        data: dict[str, Any] = {
            "orders": {"pageInfo": {"hasNextPage": more, "endCursor": end}, "nodes": nodes}
        }
        if _COUNTED.search(query):
            data["ordersCount"] = self._count(variables.get("query") or "")
        return data

    def _count(self, search: str) -> dict:
        """``ordersCount(query:)``: a ``Count`` (exact up to Shopify's default limit of 10,000)."""
        n = sum(1 for _ in self._matching(search))
        return {"count": min(n, 10_000), "precision": "EXACT" if n <= 10_000 else "AT_LEAST"}

    def _one_order(self, query: str, variables: dict) -> dict:
        oid = int(str(variables.get("id", "")).rsplit("/", 1)[-1] or 0)
        o = self._orders.get(oid)
        return {"order": None if o is None else self._node_for(o, query, variables)}

    def _order_returns(self, variables: dict) -> dict:
        """``Order.returns`` as ``ORDER_RETURNS_QUERY`` selects them."""
        oid = int(str(variables.get("id", "")).rsplit("/", 1)[-1] or 0)
        o = self._orders.get(oid)
        if o is None:
            return {"order": None}
        return {
            "order": {
                "id": o.gid,
                "returns": {
                    "nodes": [
                        {
                            "id": f"gid://shopify/Return/{rid}",
                            "createdAt": _iso(at),
                            "returnLineItems": {
                                "nodes": [
                                    {
                                        "quantity": 1,
                                        "fulfillmentLineItem": {
                                            "lineItem": {"id": f"gid://shopify/LineItem/{returned}"}
                                        },
                                    }
                                ]
                            },
                            "exchangeLineItems": {
                                "nodes": [
                                    {"quantity": 1, "lineItems": [{"id": f"gid://shopify/LineItem/{added}"}]}
                                ]
                            },
                        }
                        for rid, at, returned, added in o.returns
                    ]
                },
            }
        }

    # ------------------------------------------------------------------ bulk
    def start_foreign_bulk(self, *, duration_s: float = 0.5) -> None:
        """Pretend another process started a bulk query that runs ``duration_s``."""
        with self._lock:
            self._bulk_seq += 1
            self._bulk = {
                "id": f"gid://shopify/BulkOperation/{self._bulk_seq}",
                "search": None,
                "started": time.monotonic(),
                "delay": duration_s,
                "outcome": "COMPLETED",
                "path": None,
                "foreign": True,
                "createdAt": _iso(datetime.now(UTC)),
            }

    def _bulk_run(self, variables: dict) -> dict:
        inner = str(variables.get("query") or "")
        with self._lock:
            if self._bulk and self._bulk_state(self._bulk)["status"] in ("CREATED", "RUNNING"):
                return {
                    "bulkOperationRunQuery": {
                        "bulkOperation": None,
                        "userErrors": [
                            {
                                "field": None,
                                "code": "OPERATION_IN_PROGRESS",
                                "message": f"A bulk query operation for this app and shop is already in progress: {self._bulk['id']}.",
                            }
                        ],
                    }
                }
            try:
                check_bulk_query(inner)
            except BulkQueryRefused as exc:
                self.counters["bulk_refused"] += 1
                return {
                    "bulkOperationRunQuery": {
                        "bulkOperation": None,
                        "userErrors": [{"field": ["query"], "code": "INVALID", "message": str(exc)}],
                    }
                }
            m = re.search(r'orders\(query:\s*("(?:[^"\\]|\\.)*")', inner)
            search = json.loads(m.group(1)) if m else ""
            self._bulk_seq += 1
            self.counters["bulk_runs"] += 1
            self._bulk = {
                "id": f"gid://shopify/BulkOperation/{self._bulk_seq}",
                "search": search,
                "started": time.monotonic(),
                "delay": self.bulk_delay_s,
                "outcome": self.bulk_outcome,
                "path": None,
                "foreign": False,
                "createdAt": _iso(datetime.now(UTC)),
            }
            return {
                "bulkOperationRunQuery": {
                    "bulkOperation": {"id": self._bulk["id"], "status": "CREATED"},
                    "userErrors": [],
                }
            }

    def _bulk_state(self, op: dict) -> dict:
        done = time.monotonic() - op["started"] >= op["delay"]
        state = {
            "id": op["id"],
            "status": "RUNNING",
            "errorCode": None,
            "createdAt": op["createdAt"],
            "completedAt": None,
            "objectCount": "0",
            "fileSize": None,
            "url": None,
            "partialDataUrl": None,
            "query": "{ orders { edges { node { id } } } }",
        }
        if not done:
            return state
        outcome = op["outcome"]
        if outcome in ("FAILED", "CANCELED", "EXPIRED"):
            state.update(status=outcome, errorCode="INTERNAL_SERVER_ERROR" if outcome == "FAILED" else None)
            return state
        state["status"] = "COMPLETED"
        state["completedAt"] = _iso(datetime.now(UTC))
        if outcome == "EMPTY" or op["foreign"]:
            return state
        if op["path"] is None:
            op["path"], op["count"] = self._write_bulk_file(op)
        if op["count"] == 0:
            return state
        state.update(
            objectCount=str(op["count"]),
            fileSize=str(op["path"].stat().st_size),
            url=f"{self.url}/bulk/{op['id'].rsplit('/', 1)[-1]}.jsonl",
        )
        return state

    def _write_bulk_file(self, op: dict) -> tuple[Path, int]:
        path = Path(self._tmp.name) / f"bulk-{op['id'].rsplit('/', 1)[-1]}.jsonl"
        count = 0
        pending: list[str] = []  # children held back one order when interleaving
        with open(path, "w", encoding="utf-8") as out:
            for o in self._matching(op["search"]):
                node = self._scalars(o)
                node["refunds"] = [{"id": f"gid://shopify/Refund/{rid}"} for rid, _, _ in o.refunds]
                out.write(json.dumps(node, separators=(",", ":")) + "\n")
                count += 1
                for line in pending:
                    out.write(line)
                    count += 1
                pending = []
                children = []
                for fake_line in o.lines:
                    child = {"__typename": "LineItem"} | self._line(fake_line) | {"__parentId": o.gid}
                    children.append(json.dumps(child, separators=(",", ":")) + "\n")
                if self.bulk_interleave:
                    pending = children
                else:
                    for line in children:
                        out.write(line)
                        count += 1
            for line in pending:
                out.write(line)
                count += 1
        return path, count

    # ------------------------------------------------------------------ dispatch
    def _variants(self, variables: dict) -> dict:
        """``productVariants(first:, query: "sku:...")`` and ``shop { currencyCode }``: the
        shape of the Admin API (Money scalars are decimal strings)."""
        m = re.search(r"sku:(\S+)", str(variables.get("query") or ""))
        sku = m.group(1).strip("'\"") if m else ""
        nodes = []
        if sku in self.variants:
            price, compare = self.variants[sku]
            nodes.append({"sku": sku, "price": price, "compareAtPrice": compare})
        return {"productVariants": {"nodes": nodes}, "shop": {"currencyCode": self.currency}}

    def handle_graphql(self, doc: dict) -> tuple[int, dict, dict]:
        """Answer one GraphQL request: (status, headers, body)."""
        query = str(doc.get("query") or "")
        variables = doc.get("variables") or {}
        with self._lock:
            available = self.bucket.refill()
        if "bulkOperationRunQuery" in query:
            kind = "bulk_run"
        elif "currentBulkOperation" in query:
            kind = "bulk_status"
        elif "currentAppInstallation" in query:
            kind = "scopes"
        elif re.search(r"\bproductVariants\(", query):
            kind = "variants"
        elif re.search(r"\breturns\(", query) and re.search(r"\border\(id:", query):
            kind = "order_returns"
        elif re.search(r"\border\(id:", query):
            kind = "order"
        elif re.search(r"\borders\(", query):
            kind = "orders"
        else:
            return (
                200,
                {},
                {
                    "errors": [
                        {
                            "message": "the fake does not know this query",
                            "extensions": {"code": "BAD_REQUEST"},
                        }
                    ]
                },
            )
        # Shopify's documented calculated query cost of whatever the query selects.
        requested = requested_cost(query, variables)
        if requested > 1000:
            return (
                200,
                {},
                {
                    "errors": [
                        {
                            "message": f"Query cost is {requested}, which exceeds the single query max cost limit (1000).",
                            "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": 1000},
                        }
                    ]
                },
            )
        with self._lock:
            if requested > available:
                self.counters["empty_bucket"] += 1
                self.counters["throttled"] += 1
                return 200, {}, self._throttled_body(requested)
            self.bucket.available -= requested  # held while the query runs, as Shopify does
        actual = requested
        if kind == "orders":
            data = self._orders_page(query, variables)
            actual = actual_cost(query, variables, data)
        elif kind == "order":
            data = self._one_order(query, variables)
            actual = actual_cost(query, variables, data)
        elif kind == "order_returns":
            data = self._order_returns(variables)
            actual = actual_cost(query, variables, data)
        elif kind == "bulk_run":
            data = self._bulk_run(variables)
        elif kind == "bulk_status":
            with self._lock:
                data = {"currentBulkOperation": self._bulk_state(self._bulk) if self._bulk else None}
        elif kind == "variants":
            data = self._variants(variables)
        elif kind == "scopes":
            data = {"currentAppInstallation": {"accessScopes": [{"handle": h} for h in sorted(self.scopes)]}}
        with self._lock:
            self.bucket.refill()
            self.bucket.available = min(
                self.bucket.size, self.bucket.available + requested - actual
            )  # the refund
        cost = {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": self.bucket.status(),
        }
        return 200, {}, {"data": data, "extensions": {"cost": cost}}

    def _throttled_body(self, requested: int) -> dict:
        return {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
            ],
            "extensions": {
                "cost": {
                    "requestedQueryCost": requested,
                    "actualQueryCost": None,
                    "throttleStatus": self.bucket.status(),
                }
            },
        }


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeShopify
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None, *, truncate: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncate else body)
        if truncate:
            self.close_connection = True

    def do_GET(self) -> None:
        fake = self.server_fake
        fake.counters["requests"] += 1
        if self.path == "/_fake/counters":  # for benchmarks running the fake in another process
            self._send(200, json.dumps(fake.counters).encode())
            return
        m = re.fullmatch(r"/bulk/(\d+)\.jsonl", self.path)
        op = fake._bulk
        if not m or not op or op.get("path") is None or op["id"].rsplit("/", 1)[-1] != m.group(1):
            self._send(404, b'{"errors":"Not Found"}')
            return
        fake.counters["bulk_downloads"] += 1
        path: Path = op["path"]
        self.send_response(200)
        self.send_header("Content-Type", "application/jsonl")
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 16):
                self.wfile.write(chunk)

    def do_POST(self) -> None:
        fake = self.server_fake
        fake.counters["requests"] += 1
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path != fake.graphql_path:
            self._send(404, b'{"errors":"Not Found"}')
            return
        fake.counters["graphql"] += 1
        if self.headers.get("X-Shopify-Access-Token") != fake.access_token:
            fake.counters["unauthorized"] += 1
            self._send(
                401,
                b'{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}',
            )
            return
        fault = fake._take_fault()
        if fault:
            kind, kw = fault
            if kind == "status":
                fake.counters["errors_5xx"] += 1
                self._send(kw["status"], b'{"errors":"Internal Server Error"}')
                return
            if kind == "429":
                fake.counters["http429"] += 1
                self._send(
                    429,
                    b'{"errors":"Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}',
                    {"Retry-After": str(fake.retry_after_s)},
                )
                return
            if kind == "throttle":
                fake.counters["forced_throttles"] += 1
                fake.counters["throttled"] += 1
                with fake._lock:
                    fake.bucket.refill()
                    fake.bucket.available = 0.0
                self._send(200, json.dumps(fake._throttled_body(100)).encode())
                return
            if kind == "slow":
                fake.counters["slow"] += 1
                time.sleep(kw["delay_s"])
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, b'{"errors":"invalid JSON"}')
            return
        if fake.on_orders_page is not None and re.search(r"\borders\(", str(doc.get("query"))):
            fake.on_orders_page(doc.get("variables") or {})
        status, headers, body = fake.handle_graphql(doc)
        truncate = bool(fault and fault[0] == "truncate")
        if truncate:
            fake.counters["truncated"] += 1
        self._send(status, json.dumps(body).encode(), headers, truncate=truncate)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Shopify Admin API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--restore-rate", type=float, default=100.0, help="points per second (standard plan: 100)"
    )
    parser.add_argument("--bucket-size", type=float, default=2000.0)
    args = parser.parse_args(argv)
    fake = FakeShopify(
        orders=args.orders,
        seed=args.seed,
        port=args.port,
        restore_rate=args.restore_rate,
        bucket_size=args.bucket_size,
    )
    fake.start()
    print(
        f"fake Shopify at {fake.url} ({args.orders} orders); access token {fake.access_token!r}, "
        f"webhook secret {fake.webhook_secret!r}. Ctrl-C stops it.",
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
