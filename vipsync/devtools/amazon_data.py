"""Generated Amazon orders for the fake SP-API, tests, the demo sample and benchmarks.

One neutral order shape (:class:`FakeOrder`) rendered three ways, each shaped like the
official examples: an Orders API v0 ``getOrders`` order (``tests/fixtures/amazon/
sandbox_getOrders_200.json``), its ``getOrderItems`` items, and All Orders flat-file report
rows (the documented columns, plus the ``url`` column real downloads carry). The same order
rendered as API payloads and as report rows must yield the same units.
"""

from __future__ import annotations

import io
import random
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import IO

from vipsync.config.stores import MARKETPLACES

__all__ = [
    "PRODUCTS",
    "REPORT_COLUMNS",
    "FakeItem",
    "FakeOrder",
    "generate_orders",
    "order_address_v0",
    "order_items_v0",
    "order_v0",
    "report_rows",
    "report_text",
    "sample_orders",
    "write_report",
]

# (SKU, title, unit price in USD-ish units)
PRODUCTS: tuple[tuple[str, str, Decimal], ...] = (
    ("HKS0401A3U", "TESmart 4 Port HDMI KVM Switch 4K60Hz with USB 3.0", Decimal("189.99")),
    ("DKS0401A30", "TESmart 4x1 Dual Monitor DisplayPort KVM Switch", Decimal("329.99")),
    ("HKS0201A2U", "TESmart 2 Port HDMI KVM Switch 4K60", Decimal("119.99")),
    ("HMA0808A10", "TESmart 8x8 HDMI Matrix Switch 4K", Decimal("899.99")),
    ("HSP0104A1U", "TESmart 1x4 HDMI Splitter 4K60", Decimal("59.99")),
    ("HKE0150A1U", "TESmart HDMI KVM Extender over Cat6 150m", Decimal("249.99")),
    ("CAB-HDMI-KVM-5FT", "TESmart HDMI + USB KVM Cable 5ft", Decimal("14.99")),
)

# The documented BY_ORDER_DATE columns, in the docs' order, with ``url`` where real files have it.
REPORT_COLUMNS: tuple[str, ...] = (
    "amazon-order-id",
    "merchant-order-id",
    "purchase-date",
    "last-updated-date",
    "order-status",
    "fulfillment-channel",
    "sales-channel",
    "order-channel",
    "url",
    "ship-service-level",
    "product-name",
    "sku",
    "asin",
    "item-status",
    "quantity",
    "currency",
    "item-price",
    "item-tax",
    "shipping-price",
    "shipping-tax",
    "gift-wrap-price",
    "gift-wrap-tax",
    "item-promotion-discount",
    "ship-promotion-discount",
    "ship-city",
    "ship-state",
    "ship-postal-code",
    "ship-country",
    "promotion-ids",
    "cpf",
    "is-business-order",
    "purchase-order-number",
    "price-designation",
)

_CURRENCY = {"US": "USD", "CA": "CAD", "MX": "MXN", "UK": "GBP", "JP": "JPY", "SE": "SEK", "PL": "PLN"}
_FX = {
    "USD": Decimal(1),
    "CAD": Decimal("1.35"),
    "MXN": Decimal(18),
    "GBP": Decimal("0.8"),
    "JPY": Decimal(150),
    "SEK": Decimal(11),
    "PLN": Decimal(4),
    "EUR": Decimal("0.93"),
}
_POSTAL = {
    "US": "98121",
    "CA": "M5V 2T6",
    "MX": "06600",
    "DE": "10115",
    "AT": "1010",
    "FR": "75001",
    "IT": "00184",
    "ES": "28013",
    "NL": "1012 AB",
    "SE": "111 52",
    "PL": "00-001",
    "BE": "1000",
    "IE": "D02 X285",
    "GB": "SW1A 1AA",
    "JP": "150-0002",
    "CH": "8001",
}
_COUNTRY_OF_CODE = {"UK": "GB"}


@dataclass
class FakeItem:
    item_id: str
    sku: str
    title: str
    asin: str
    quantity: int
    unit_price: Decimal


@dataclass
class FakeOrder:
    order_id: str
    market: str  # marketplace code (US, DE, ...)
    purchased_at: datetime  # UTC
    updated_at: datetime  # UTC
    status: str  # Orders API word: Pending, Unshipped, Shipped, Canceled, ...
    ship_country: str
    postal_code: str
    fulfillment: str = "AFN"
    items: list[FakeItem] = field(default_factory=list)
    replaced_order_id: str | None = None  # set: a free replacement of that order (total 0)

    @property
    def marketplace_id(self) -> str:
        return MARKETPLACES[self.market]["id"]

    @property
    def sales_channel(self) -> str:
        return MARKETPLACES[self.market]["sales_channel"]

    @property
    def currency(self) -> str:
        return _CURRENCY.get(self.market, "EUR")

    @property
    def item_count(self) -> int:
        return sum(i.quantity for i in self.items)

    def touched(self, when: datetime, **changes) -> FakeOrder:
        return replace(self, updated_at=when, **changes)


def _money(amount: Decimal, currency: str) -> str:
    return str(amount.quantize(Decimal(1))) if currency == "JPY" else str(amount.quantize(Decimal("0.01")))


def generate_orders(
    n: int,
    *,
    markets: tuple[str, ...] = ("US",),
    seed: int = 7,
    end: datetime | None = None,
    span_days: float = 30.0,
    start_index: int = 0,
) -> list[FakeOrder]:
    """``n`` orders spread over ``span_days`` before ``end`` (UTC), sorted by purchase time.
    About 3% are pending, 3% cancelled; EU marketplaces ship some orders abroad (a DE order
    to AT, a UK order to IE); some orders repeat a SKU on two items."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC) - timedelta(minutes=10)
    out: list[FakeOrder] = []
    for k in range(n):
        i = start_index + k
        market = markets[i % len(markets)]
        purchased = end - timedelta(seconds=rng.uniform(0, span_days * 86400))
        purchased = purchased.replace(microsecond=0)
        roll = rng.random()
        status = (
            "Pending"
            if roll < 0.03
            else "Canceled"
            if roll < 0.06
            else "Shipped"
            if roll < 0.9
            else "Unshipped"
        )
        home = _COUNTRY_OF_CODE.get(market, market)
        ship = home
        if market == "DE" and rng.random() < 0.2:
            ship = "AT"
        elif market == "UK" and rng.random() < 0.1:
            ship = "IE"
        n_items = 1 if rng.random() < 0.8 else 2
        items: list[FakeItem] = []
        currency = _CURRENCY.get(market, "EUR")
        for j in range(n_items):
            sku, title, usd = (
                PRODUCTS[rng.randrange(len(PRODUCTS))] if j == 0 or rng.random() < 0.7 else PRODUCTS[0]
            )
            if j == 1 and rng.random() < 0.15:
                sku, title, usd = items[0].sku, items[0].title, PRODUCTS[0][2]  # same SKU on a second item
            qty = 1 if rng.random() < 0.85 else rng.randint(2, 3)
            price = (usd * _FX[currency]).quantize(Decimal(1) if currency == "JPY" else Decimal("0.01"))
            items.append(
                FakeItem(
                    item_id=f"{(i * 7 + j) % 10**14:014d}",
                    sku=sku,
                    title=title,
                    asin=f"B0{zlib.crc32(sku.encode()) % 10**8:08d}",
                    quantity=qty,
                    unit_price=price,
                )
            )
        prefix = {"US": "111", "CA": "701", "MX": "701", "JP": "503"}.get(
            market, "302" if market != "UK" else "203"
        )
        order_id = f"{prefix}-{1000000 + i % 9000000:07d}-{(i * 7919) % 10000000:07d}"
        updated = min(end, purchased + timedelta(hours=rng.uniform(0, 48))).replace(microsecond=0)
        out.append(
            FakeOrder(
                order_id=order_id,
                market=market,
                purchased_at=purchased,
                updated_at=updated,
                status=status,
                ship_country=ship,
                postal_code=_POSTAL.get(ship, "00000"),
                fulfillment="AFN" if rng.random() < 0.7 else "MFN",
                items=items,
            )
        )
    out.sort(key=lambda o: o.purchased_at)
    return out


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _item_counts(order: FakeOrder) -> tuple[int, int]:
    if order.status in ("Pending", "Canceled"):
        return 0, 0
    if order.status == "Shipped":
        return order.item_count, 0
    return 0, order.item_count


def order_v0(order: FakeOrder) -> dict:
    """The order as ``getOrders``/``getOrder`` return it (no RDT: the shipping address
    carries only city, state, postal code and country)."""
    shipped, unshipped = _item_counts(order)
    total = sum((i.unit_price * i.quantity for i in order.items), Decimal(0))
    if order.replaced_order_id:
        total = Decimal(0)
    body: dict = {
        "AmazonOrderId": order.order_id,
        "PurchaseDate": _iso(order.purchased_at),
        "LastUpdateDate": _iso(order.updated_at),
        "OrderStatus": order.status,
        "FulfillmentChannel": order.fulfillment,
        "SalesChannel": order.sales_channel,
        "ShipServiceLevel": "Std Dom",
        "NumberOfItemsShipped": shipped,
        "NumberOfItemsUnshipped": unshipped,
        "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"],
        "IsReplacementOrder": bool(order.replaced_order_id),
        "MarketplaceId": order.marketplace_id,
        "ShipmentServiceLevelCategory": "Standard",
        "OrderType": "StandardOrder",
        "IsBusinessOrder": False,
        "IsPrime": order.fulfillment == "AFN",
        "IsGlobalExpressEnabled": False,
        "IsPremiumOrder": False,
        "IsSoldByAB": False,
        "IsIBA": False,
        "IsISPU": False,
        "IsAccessPointOrder": False,
    }
    if order.replaced_order_id:
        body["ReplacedOrderId"] = order.replaced_order_id
    if order.status != "Pending":
        body["OrderTotal"] = {"CurrencyCode": order.currency, "Amount": _money(total, order.currency)}
        body["ShippingAddress"] = {
            "City": "CITY",
            "StateOrRegion": "ST",
            "PostalCode": order.postal_code,
            "CountryCode": order.ship_country,
        }
    return body


def order_items_v0(order: FakeOrder) -> list[dict]:
    """The items as ``getOrderItems`` returns them (pending orders carry no prices)."""
    out = []
    for item in order.items:
        body = {
            "ASIN": item.asin,
            "OrderItemId": item.item_id,
            "SellerSKU": item.sku,
            "Title": item.title,
            "QuantityOrdered": item.quantity,
            "QuantityShipped": item.quantity if order.status == "Shipped" else 0,
            "ProductInfo": {"NumberOfItems": "1"},
            "IsGift": "false",
            "ConditionId": "New",
            "ConditionSubtypeId": "New",
            "IsTransparency": False,
            "SerialNumberRequired": False,
        }
        if order.status != "Pending":
            body["ItemPrice"] = {
                "CurrencyCode": order.currency,
                "Amount": _money(item.unit_price * item.quantity, order.currency),
            }
            body["ItemTax"] = {"CurrencyCode": order.currency, "Amount": "0.00"}
            body["PromotionDiscount"] = {"CurrencyCode": order.currency, "Amount": "0.00"}
        out.append(body)
    return out


def order_address_v0(order: FakeOrder) -> dict:
    return {
        "AmazonOrderId": order.order_id,
        "ShippingAddress": {
            "PostalCode": order.postal_code,
            "CountryCode": order.ship_country,
            "City": "CITY",
        },
    }


def report_rows(order: FakeOrder) -> list[dict[str, str]]:
    """The order's rows of the All Orders report (one per item)."""
    status = {"Canceled": "Cancelled"}.get(order.status, order.status)
    rows = []
    for item in order.items:
        priced = order.status != "Pending"
        rows.append(
            {
                "amazon-order-id": order.order_id,
                "merchant-order-id": "",
                "purchase-date": order.purchased_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                "last-updated-date": order.updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                "order-status": status,
                "fulfillment-channel": "Amazon" if order.fulfillment == "AFN" else "Merchant",
                "sales-channel": order.sales_channel,
                "order-channel": "",
                "url": "",
                "ship-service-level": "Standard",
                "product-name": item.title,
                "sku": item.sku,
                "asin": item.asin,
                "item-status": {"Canceled": "Cancelled", "Pending": "Unshipped"}.get(
                    order.status, order.status
                ),
                "quantity": str(item.quantity),
                "currency": order.currency if priced else "",
                "item-price": _money(item.unit_price * item.quantity, order.currency) if priced else "",
                "item-tax": "0.00" if priced else "",
                "shipping-price": "",
                "shipping-tax": "",
                "gift-wrap-price": "",
                "gift-wrap-tax": "",
                "item-promotion-discount": "",
                "ship-promotion-discount": "",
                "ship-city": "CITY",
                "ship-state": "ST",
                "ship-postal-code": order.postal_code,
                "ship-country": order.ship_country,
                "promotion-ids": "",
                "cpf": "",
                "is-business-order": "false",
                "purchase-order-number": "",
                "price-designation": "",
            }
        )
    return rows


def write_report(
    orders: list[FakeOrder],
    fh: IO[bytes],
    *,
    columns: tuple[str, ...] = REPORT_COLUMNS,
    header_names: dict[str, str] | None = None,
    extra_rows: list[dict[str, str]] | None = None,
) -> None:
    """Write the orders as a tab-separated All Orders report (UTF-8). ``header_names``
    renames header cells (locale variants); ``extra_rows`` are appended as they are."""
    names = [(header_names or {}).get(c, c) for c in columns]
    fh.write(("\t".join(names) + "\n").encode("utf-8"))
    for order in orders:
        for row in report_rows(order):
            fh.write(("\t".join(row.get(c, "") for c in columns) + "\n").encode("utf-8"))
    for row in extra_rows or []:
        fh.write(("\t".join(row.get(c, "") for c in columns) + "\n").encode("utf-8"))


def report_text(orders: list[FakeOrder], **kwargs) -> bytes:
    buf = io.BytesIO()
    write_report(orders, buf, **kwargs)
    return buf.getvalue()


def sample_orders() -> list[FakeOrder]:
    """The bundled demo sample: 20 orders across the US, DE, UK and JP marketplaces,
    including an Amazon.de order shipped to Austria, an Amazon.co.uk order shipped to
    Ireland, a cancelled and a pending order, a matrix, a cable and a repeated SKU."""
    t = datetime(2025, 5, 2, 23, 30, tzinfo=UTC)  # 01:30 on May 3 in Berlin
    spec = [
        # (market, ship, status, [(sku, qty)], hours after t)
        ("US", "US", "Shipped", [("HKS0401A3U", 1)], 0),
        ("US", "US", "Shipped", [("DKS0401A30", 1), ("CAB-HDMI-KVM-5FT", 2)], 5),
        ("US", "US", "Canceled", [("HKS0201A2U", 1)], 9),
        ("US", "US", "Pending", [("HKS0401A3U", 1)], 30),
        ("US", "PR", "Shipped", [("HKS0401A3U", 1)], 41),
        ("US", "US", "Shipped", [("HMA0808A10", 1)], 50),
        ("DE", "DE", "Shipped", [("HKS0401A3U", 1)], 0),
        ("DE", "AT", "Shipped", [("DKS0401A30", 1)], 2),
        ("DE", "DE", "Shipped", [("HKS0401A3U", 2), ("HKS0401A3U", 1)], 12),
        ("DE", "DE", "Shipped", [("HKE0150A1U", 1)], 20),
        ("DE", "DE", "Unshipped", [("HSP0104A1U", 1)], 70),
        ("UK", "GB", "Shipped", [("HKS0401A3U", 1)], 3),
        ("UK", "IE", "Shipped", [("DKS0401A30", 1)], 15),
        ("UK", "GB", "Shipped", [("CAB-HDMI-KVM-5FT", 1)], 26),
        ("UK", "GB", "Canceled", [("HKS0201A2U", 1)], 33),
        ("JP", "JP", "Shipped", [("HKS0401A3U", 1)], 1),
        ("JP", "JP", "Shipped", [("DKS0401A30", 1), ("CAB-HDMI-KVM-5FT", 1)], 8),
        ("JP", "JP", "Shipped", [("HKS0201A2U", 1)], 17),
        ("JP", "JP", "Pending", [("HMA0808A10", 1)], 60),
        ("JP", "JP", "Shipped", [("HKS0401A3U", 3)], 75),
    ]
    titles = {sku: (title, price) for sku, title, price in PRODUCTS}
    out = []
    for n, (market, ship, status, lines, hours) in enumerate(spec):
        purchased = t + timedelta(hours=hours)
        currency = _CURRENCY.get(market, "EUR")
        items = [
            FakeItem(
                item_id=f"{n:07d}{j:07d}",
                sku=sku,
                title=titles[sku][0],
                asin=f"B0{zlib.crc32(sku.encode()) % 10**8:08d}",
                quantity=qty,
                unit_price=(titles[sku][1] * _FX[currency]).quantize(
                    Decimal(1) if currency == "JPY" else Decimal("0.01")
                ),
            )
            for j, (sku, qty) in enumerate(lines)
        ]
        prefix = {"US": "112", "JP": "503", "UK": "203"}.get(market, "302")
        out.append(
            FakeOrder(
                order_id=f"{prefix}-{4711000 + n:07d}-{(n * 104729) % 10**7:07d}",
                market=market,
                purchased_at=purchased,
                updated_at=purchased + timedelta(hours=20 if status != "Pending" else 1),
                status=status,
                ship_country=ship,
                postal_code=_POSTAL.get(ship, "00901"),
                fulfillment="AFN" if n % 3 else "MFN",
                items=items,
            )
        )
    return out
