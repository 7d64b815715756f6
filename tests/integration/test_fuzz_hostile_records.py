"""Hostile records through every path, on SQLite and PostgreSQL (hypothesis, bounded):
each importer, the Shopify sync against the fake Admin API, and the webhook endpoint.

For every generated batch: no exception escapes, every good record is stored, and every
record that is not stored is in the error table (or, for a webhook, a failed delivery).
"""

from __future__ import annotations

import copy
import io
import itertools
import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from vipsync.api.app import create_app
from vipsync.bootstrap import Context
from vipsync.config.settings import CONFIG_DIR, Settings
from vipsync.config.stores import load_stores
from vipsync.connectors.amazon.flatfile import read_all_orders_report
from vipsync.connectors.files.members import read_members_csv
from vipsync.connectors.shopify.files import read_orders_file
from vipsync.devtools.fake_shopify import FakeShopify, sign_webhook
from vipsync.store.models import ImportError_, Member, Order, WebhookDelivery
from vipsync.workers.imports import import_records
from vipsync.workers.shopify_jobs import make_client, sync_shop

STORES = load_stores(CONFIG_DIR / "stores.toml")
SHOP = STORES.shopify("shopify-us")
EU = STORES.amazon("amazon-eu")

FUZZ = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values a field should never hold, as they arrive in JSON or in a text cell.
HOSTILE_JSON = st.sampled_from(
    [
        None,
        "",
        "x" * 300,
        "K" * 70_000,
        "a\x00b",
        "inf",
        "-Infinity",
        "NaN",
        "sNaN",
        "1" * 40,
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "2025-13-45T99:99:99Z",
        True,
        -1,
        10**9,
        2**70,
        1.5,
        [],
        {},
        [1, [2, [3]]],
        {"code": {"nested": True}},
        "\ud7ff\ufffe",
    ]
)
SHOPIFY_FIELDS = st.sampled_from(
    [
        "id",
        "name",
        "processed_at",
        "created_at",
        "updated_at",
        "cancelled_at",
        "currency",
        "total_price",
        "financial_status",
        "discount_codes",
        "refunds",
        "line_items",
        "shipping_address",
        "email",
        "line_items.0.sku",
        "line_items.0.quantity",
        "line_items.0.price",
        "line_items.0.id",
        "line_items.0.title",
        "shipping_address.zip",
        "shipping_address.country_code",
    ]
)
_ids = itertools.count(1)


def _shopify_order(n: int) -> dict:
    ts = "2025-06-01T12:00:00-05:00"
    return {
        "id": 8_000_000_000 + n,
        "name": f"#F{n}",
        "email": f"fuzz{n}@example.com",
        "created_at": ts,
        "processed_at": ts,
        "updated_at": ts,
        "financial_status": "paid",
        "currency": "USD",
        "total_price": "169.99",
        "refunds": [],
        "discount_codes": [{"code": "WELCOME10"}],
        "line_items": [
            {"id": 9_000_000_000 + n, "sku": "HKS0401A3U", "title": "KVM", "quantity": 1, "price": "169.99"}
        ],
        "shipping_address": {"country_code": "US", "zip": "10001"},
    }


def _set(obj: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    if isinstance(obj, list):
        obj[int(last)] = value
    else:
        obj[last] = value


@st.composite
def shopify_batches(draw):
    """(orders, ids of the untouched ones): 6 good orders and 1-4 mutated ones, shuffled."""
    base = next(_ids) * 100
    orders = [_shopify_order(base + i) for i in range(6)]
    good = {str(o["id"]) for o in orders}
    for i in range(draw(st.integers(1, 4))):
        order = _shopify_order(base + 50 + i)
        _set(order, draw(SHOPIFY_FIELDS), copy.deepcopy(draw(HOSTILE_JSON)))
        orders.append(order)
    return draw(st.permutations(orders)), good


def _outcome(factory, kind: str) -> tuple[set[str], set[str]]:
    with factory() as s:
        stored = set(s.execute(select(Order.external_id)).scalars())
        errors = set(s.execute(select(ImportError_.record_id).where(ImportError_.source == kind)).scalars())
    return stored, errors


@FUZZ
@given(batch=shopify_batches(), as_lines=st.booleans())
def test_shopify_file_import_isolates_every_hostile_order(session_factory, batch, as_lines):
    orders, good = batch
    if as_lines:
        data = "\n".join(json.dumps(o) for o in orders).encode()
    else:
        data = json.dumps({"orders": orders}).encode()
    summary = import_records(
        session_factory, read_orders_file(io.BytesIO(data), SHOP), kind="shopify", store_key=SHOP.key
    )
    stored, errors = _outcome(session_factory, "shopify")
    assert good <= stored
    assert summary.read == len(orders)
    assert summary.inserted + summary.unchanged + summary.updated + summary.rejected == len(orders)
    assert summary.rejected <= len(errors)


REPORT_HEADER = [
    "amazon-order-id",
    "purchase-date",
    "last-updated-date",
    "order-status",
    "sales-channel",
    "sku",
    "product-name",
    "quantity",
    "currency",
    "item-price",
    "ship-postal-code",
    "ship-country",
]
HOSTILE_CELL = st.sampled_from(
    [
        "",
        "x" * 300,
        "y" * 140_000,
        "a\x00b",
        "inf",
        "NaN",
        "sNaN",
        "1" * 40,
        "-5",
        "1000000000",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "not a date",
        '"unbalanced',
        "Non-Amazon",
        "Amazon.zz",
    ]
)


def _report_row(order_id: str) -> list[str]:
    return [
        order_id,
        "2025-05-02T23:30:00+00:00",
        "2025-05-03T10:00:00+00:00",
        "Shipped",
        "Amazon.de",
        "HKS0401A3U",
        "TESmart KVM",
        "1",
        "EUR",
        "179.98",
        "10115",
        "DE",
    ]


@st.composite
def report_batches(draw):
    base = next(_ids) * 100
    rows, good = [], set()
    for i in range(6):
        oid = f"302-{base + i:07d}-0000001"
        rows.append("\t".join(_report_row(oid)))
        good.add(oid)
    for i in range(draw(st.integers(1, 4))):
        oid = f"302-{base + 50 + i:07d}-0000001"
        cells = _report_row(oid)
        how = draw(st.sampled_from(["cell", "cut", "extra"]))
        if how == "cell":
            cells[draw(st.integers(1, len(cells) - 1))] = draw(HOSTILE_CELL)
        elif how == "cut":
            cells = cells[: draw(st.integers(2, len(cells) - 1))]
        else:
            cells += ["2025-13-01", "surplus"]
        rows.append("\t".join(cells))
    rows = draw(st.permutations(rows))
    return "\n".join(["\t".join(REPORT_HEADER), *rows]).encode(), good, len(rows)


@FUZZ
@given(batch=report_batches())
def test_amazon_report_import_isolates_every_hostile_row(session_factory, batch):
    data, good, n = batch
    summary = import_records(
        session_factory, read_all_orders_report(io.BytesIO(data), EU), kind="amazon-report", store_key=EU.key
    )
    stored, _errors = _outcome(session_factory, "amazon-report")
    assert good <= stored
    skipped = n - summary.read  # rows of a Non-Amazon channel are skipped, as documented
    assert summary.inserted + summary.unchanged + summary.updated + summary.rejected + skipped == n


HOSTILE_MEMBER_LINE = st.sampled_from(
    [
        '"unbalanced@example.com,2024-01-01,US',
        'x@example.com,"2024-01-01,US',
        "y@example.com,2024-01-01,US,2025-13-01,surplus,cells",
        "z@example.com," + "9" * 140_000 + ",US",
        "w@example.com,0001-01-01T00:00:00+05:00,US",
        "v@example.com,9999-12-31T23:59:59-05:00,US",
        "u@exa\x00mple.com,2024-01-01,US",
        "t@example.com,2024-01-01,ZZ",
        ",2024-01-01,US",
        "s@example.com,,US",
    ]
)


@st.composite
def member_files(draw):
    base = next(_ids) * 100
    lines = [f"member{base + i}@example.com,2024-0{1 + i % 9}-01,DE" for i in range(8)]
    bad = draw(st.lists(HOSTILE_MEMBER_LINE, min_size=1, max_size=4))
    body = draw(st.permutations(lines + bad))
    return ("email,registered_at,country\n" + "\n".join(body) + "\n").encode(), len(lines), len(body)


@FUZZ
@given(batch=member_files())
def test_members_import_isolates_every_hostile_line_and_keeps_no_email(session_factory, batch):
    data, n_good, n = batch
    with session_factory() as s:
        before = len(s.execute(select(Member.id)).all())
    summary = import_records(
        session_factory, read_members_csv(io.BytesIO(data)), kind="members", store_key=None
    )
    with session_factory() as s:
        after = len(s.execute(select(Member.id)).all())
        raws = [r for (r,) in s.execute(select(ImportError_.raw).where(ImportError_.source == "members"))]
    assert after - before >= n_good  # every good member stored, none swallowed by a bad quote
    assert (
        summary.read == n and summary.inserted + summary.updated + summary.unchanged + summary.rejected == n
    )
    assert all("@example.com" not in raw and "@exa" not in raw for raw in raws)


# ----------------------------------------------------------------------------- sync path
@pytest.fixture
def fake():
    with FakeShopify(orders=0, seed=9, bucket_size=1000, restore_rate=5000) as server:
        yield server


@pytest.fixture
def sync_ctx(fake, db_url, tmp_path, monkeypatch):
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml(key="shopify-us"))
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    ctx = Context(
        settings=Settings(stores_file=stores, data_dir=tmp_path / "data", webhook_max_bytes=200_000),
        database_url=db_url,
    )
    yield ctx
    ctx.dispose()


LINE_MUTATIONS = st.sampled_from(
    [
        ("sku", "K" * 300),
        ("sku", "K\x00VM"),
        ("sku", ""),
        ("title", "T" * 10_000),
        ("quantity", 10**7),
        ("quantity", 2**40),
        ("price", "1" * 40),
        ("price", "inf"),
    ]
)


@FUZZ
@given(mutations=st.lists(LINE_MUTATIONS, min_size=1, max_size=3))
def test_shopify_sync_isolates_hostile_orders_and_moves_the_bookmark(fake, sync_ctx, mutations):
    ids = fake.add_orders(8)
    bad = ids[: len(mutations)]
    for oid, (attr, value) in zip(bad, mutations, strict=True):
        line = fake.order(oid).lines[0]
        setattr(line, attr, value)
        if attr == "quantity":
            line.current = value
    client = make_client(sync_ctx.stores.shopify("shopify-us"), backoff=lambda attempt: 0.01)
    # Examples share the fake shop: read every order again, not from the last example's bookmark.
    result = sync_shop(sync_ctx, "shopify-us", client=client, since="2020-01-01")
    stored, errors = _outcome(sync_ctx.session_factory, "shopify")
    assert {str(i) for i in ids[len(mutations) :]} <= stored
    assert {str(i) for i in bad} <= stored | errors
    assert result.read == result.inserted + result.updated + result.unchanged + result.rejected
    assert result.cursor is not None


@FUZZ
@given(
    batch=shopify_batches(),
    extra=st.sampled_from([b"[1]", b'{"id": NaN}', b'{"a":' * 100 + b"1" + b"}" * 100]),
)
def test_webhook_endpoint_answers_every_hostile_body_without_a_500(fake, sync_ctx, batch, extra):
    orders, good = batch
    bodies = [json.dumps(o).encode() for o in orders] + [extra]
    with TestClient(create_app(sync_ctx), raise_server_exceptions=False) as http:
        for i, body in enumerate(bodies):
            answer = http.post(
                "/webhooks/shopify",
                content=body,
                headers={
                    "X-Shopify-Topic": "orders/updated",
                    "X-Shopify-Shop-Domain": "tesmart-us.myshopify.com",
                    "X-Shopify-Webhook-Id": f"fz-{next(_ids)}-{i}",
                    "X-Shopify-Hmac-Sha256": sign_webhook(fake.webhook_secret, body),
                },
            )
            assert answer.status_code in (200, 413), answer.text
    with sync_ctx.session_factory() as s:
        statuses = {d.status for d in s.execute(select(WebhookDelivery)).scalars()}
    stored, _ = _outcome(sync_ctx.session_factory, "shopify")
    assert good <= stored
    assert statuses <= {"done", "failed"}
