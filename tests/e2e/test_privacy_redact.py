"""Personal data end to end, on SQLite and PostgreSQL: a buyer's e-mail, name, street,
city, phone and IP arrive by file import, API sync and webhooks (good and bad records);
after Shopify's ``customers/redact`` nothing of them is left in any table, any file of the
data folder or any log line. Before the redaction the store already holds none of it in
clear: only the keyed digest, which the redaction removes too."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from vipsync.api.app import create_app
from vipsync.bootstrap import Context, set_context
from vipsync.cli.main import app
from vipsync.config.settings import Settings
from vipsync.connectors.records import canonical_json
from vipsync.devtools.fake_shopify import FakeShopify, sign_webhook
from vipsync.store.models import Base, ImportError_, Member, PrivacyRequest, UnitTag, WebhookDelivery
from vipsync.workers.shopify_jobs import sync_shop
from vipsync.workers.tagging import tag_pending

KEY = "shopify-us"
SHOP_DOMAIN = "tesmart-us.myshopify.com"
EMAIL = "Pat.Quill@Example.com"
PERSONAL = {
    "first_name": "Patricia",
    "last_name": "Quillfeather",
    "street": "77 Hidden Lane",
    "city": "Secretville",
    "phone": "+1 502 555 0177",
    "ip": "198.51.100.77",
    "note": "ring twice, dog is friendly",
}


def _needles(digester) -> list[str]:
    email = EMAIL.lower()
    return [
        email,
        hashlib.sha256(email.encode()).hexdigest(),
        digester.email(email),
        *[v.lower() for v in PERSONAL.values()],
        "555 0177",
        "5025550177",
    ]


@pytest.fixture
def fake():
    with FakeShopify(orders=4, seed=11, restore_rate=5000) as server:
        yield server


@pytest.fixture
def ctx(fake, db_url, tmp_path, monkeypatch):
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml(key=KEY))
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VIPSYNC_DATABASE_URL", db_url)
    monkeypatch.setenv("VIPSYNC_STORES_FILE", str(stores))
    context = Context(settings=Settings(), database_url=db_url)
    set_context(context)
    yield context
    set_context(None)


BODY_SHA256: list[str] = []  # plain SHA-256 of every body posted: none may be stored


def _post(client: TestClient, fake: FakeShopify, topic: str, payload: dict, webhook_id: str) -> int:
    body = json.dumps(payload).encode()
    BODY_SHA256.append(hashlib.sha256(body).hexdigest())
    return client.post(
        "/webhooks/shopify",
        content=body,
        headers={
            "X-Shopify-Hmac-Sha256": sign_webhook(fake.webhook_secret, body),
            "X-Shopify-Shop-Domain": SHOP_DOMAIN,
            "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": webhook_id,
            "Content-Type": "application/json",
        },
    ).status_code


def _scan_store(ctx, needles: list[str]) -> list[str]:
    hits = []
    with ctx.session_factory() as s:
        for table in Base.metadata.sorted_tables:
            text = canonical_json([list(r) for r in s.execute(select(table)).all()]).lower()
            hits += [f"{table.name}: {n}" for n in needles if n in text]
    return hits


def _scan_files(folder: Path, needles: list[str], names: tuple[str, ...] = ()) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file() and (not names or path.name in names):
            text = path.read_bytes().decode("utf-8", "replace").lower()
            hits += [f"{path.name}: {n}" for n in needles if n in text]
    return hits


def test_customers_redact_leaves_no_personal_data_in_tables_files_or_logs(
    ctx, fake, db_url, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    needles = _needles(ctx.digester)
    synced, hooked, filed = fake.order_ids[:3]
    for oid in (synced, hooked, filed):
        fake.update_order(oid, email=EMAIL, personal=PERSONAL)
    runner = CliRunner()

    # 1. Files: the member, an orders export with a good and a bad record.
    members = tmp_path / "members.csv"
    members.write_text(f"email,registered_at,country\n{EMAIL},2023-01-01,US\n{EMAIL}x,someday,US\n")
    assert runner.invoke(app, ["members", "import", str(members)]).exit_code == 0
    bad = dict(fake.rest_order(filed), id=999_000_001, line_items=[{"id": 1, "sku": "X", "quantity": "lots"}])
    export = tmp_path / "orders.json"
    export.write_text(json.dumps({"orders": [fake.rest_order(filed), bad]}))
    result = runner.invoke(app, ["import", "shopify", str(export), "--store", KEY])
    assert result.exit_code == 0, result.output

    # 2. The API sync (GraphQL pages carrying customer, addresses, phone, client IP, note).
    sync_shop(ctx, KEY)

    # 3. Webhooks: a good order, a bad one.
    with TestClient(create_app(ctx)) as client:
        assert _post(client, fake, "orders/updated", fake.rest_order(hooked), "w-1") == 200
        bad_hook = dict(fake.rest_order(hooked), id=999_000_002, processed_at="not a time", created_at=None)
        assert _post(client, fake, "orders/create", bad_hook, "w-2") == 200
    tag_pending(ctx)

    with ctx.session_factory() as s:  # every bad record was kept for ops, minimized
        sources = sorted(e.source for e in s.execute(select(ImportError_)).scalars())
    assert sources == ["members", "shopify", "shopify"], sources
    # Nothing in clear so far, the keyed digest only (the address is matched, not kept).
    clear = [n for n in needles if n != ctx.digester.email(EMAIL.lower())]
    assert _scan_store(ctx, clear) == []
    with ctx.session_factory() as s:
        member = s.execute(select(Member)).scalar_one()
        owned_before = {t.unit_id: t.member_id for t in s.execute(select(UnitTag)).scalars()}
    assert member.id in owned_before.values()  # the e-mail matched the member's orders
    assert _scan_store(ctx, [ctx.digester.email(EMAIL.lower())]) != []  # the keyed digest is there

    # 4. customers/redact for the buyer.
    redact = {
        "shop_id": 954889,
        "shop_domain": SHOP_DOMAIN,
        "customer": {"id": 191167, "email": EMAIL, "phone": PERSONAL["phone"]},
        "orders_to_redact": [synced, hooked, filed],
    }
    with TestClient(create_app(ctx)) as client:
        assert _post(client, fake, "customers/redact", redact, "w-3") == 200
    tag_pending(ctx)

    assert _scan_store(ctx, needles) == []
    assert _scan_store(ctx, BODY_SHA256) == []  # deliveries are deduplicated by a keyed digest
    assert _scan_files(Path(ctx.settings.data_dir), needles) == []
    if db_url.startswith("sqlite"):  # the database file and its write-ahead log too
        database = Path(db_url.split("///", 1)[1])
        assert _scan_files(database.parent, needles, names=(database.name, database.name + "-wal")) == []
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records).lower()
    assert [n for n in needles if n in logged] == []
    with ctx.session_factory() as s:
        request = s.execute(select(PrivacyRequest)).scalar_one()
        assert (request.kind, request.status, request.customer_id) == ("customers_redact", "done", "191167")
        assert (
            s.execute(select(WebhookDelivery.status).where(WebhookDelivery.webhook_id == "w-3")).scalar_one()
            == "done"
        )
        member = s.get(Member, member.id)
        assert member is not None and member.erased_at is not None
        owned_after = {t.unit_id: t.member_id for t in s.execute(select(UnitTag)).scalars()}
    assert {u: m for u, m in owned_after.items() if u in owned_before} == owned_before  # no owner changed
