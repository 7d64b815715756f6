"""Claims and trade-ins through the real app, on SQLite and PostgreSQL: one benefit per
unit, ordinary warranty exchanges, quotes read from the (fake) shop, codes on orders."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis
from sqlalchemy import select

from tests.api_helpers import auth, client_for, make_context, recent, store_order
from vipsync.config.settings import Settings
from vipsync.config.stores import load_stores
from vipsync.connectors.records import OrderFact
from vipsync.devtools.factories import order_record
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.devtools.worker_procs import delete_namespace, new_namespace
from vipsync.store.models import Claim, ImportError_, Order, RawPayload, TradeInQuote, Unit, WebhookDelivery
from vipsync.store.repository import Repository
from vipsync.store.writer import write_batch
from vipsync.workers.shopify_jobs import process_webhook
from vipsync.workers.trade_ins import apply_trade_in_codes

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def api(db_url, tmp_path):
    r = redis.Redis.from_url(REDIS_URL)
    ns = new_namespace()
    ctx = make_context(db_url, tmp_path, ns, REDIS_URL)
    with client_for(ctx) as client:
        yield ctx, client
    ctx.dispose()
    delete_namespace(r, ns)


def _member_with_unit(ctx, client, *, n: int, days: int, registered: str | None = None) -> int:
    body = {"email": "member@example.com", "country": "US"}
    if registered:
        body |= {"registered_on": registered, "reason": "registered at the fair"}
    assert client.post("/v1/members", json=body, headers=auth("support")).status_code in (200, 201)
    store_order(ctx, n, email="member@example.com", purchased_at=recent(days))
    res = client.post("/v1/members/lookup", json={"email": "member@example.com"}, headers=auth("support"))
    units = [u for u in res.json()["units"] if u["order_id"] == str(1_000_000 + n)]
    return units[0]["unit_id"]


def _claim(client, unit_id, kind, on, **extra):
    return client.post(
        "/v1/claims", json={"unit_id": unit_id, "kind": kind, "on": on, **extra}, headers=auth("support")
    )


def test_a_second_benefit_on_the_same_unit_is_refused_with_409(api):
    ctx, client = api
    today = datetime.now(UTC).date()
    unit = _member_with_unit(ctx, client, n=1, days=400, registered=(today - timedelta(days=420)).isoformat())
    on = (today - timedelta(days=2)).isoformat()
    first = _claim(client, unit, "exchange", on, ship_date=today.isoformat())
    assert first.status_code == 201, first.text
    claim = first.json()["unit"]["claim"]
    assert claim["kind"] == "exchange" and claim["ship_date"] == today.isoformat()
    assert claim["replacement_cover_end"] >= first.json()["unit"]["extended_warranty_end"]
    assert first.json()["unit"]["benefit_status"] == "exchange_used"
    second = _claim(client, unit, "trade_in", on)
    assert second.status_code == 409, second.text
    assert "one benefit" in second.json()["detail"]


def test_an_exchange_during_the_original_warranty_is_ordinary_service_and_uses_nothing(api):
    ctx, client = api
    unit = _member_with_unit(ctx, client, n=2, days=200)
    today = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()  # today in every store zone
    res = _claim(client, unit, "exchange", today)
    assert res.status_code == 201
    assert res.json()["recorded"] == "warranty_exchange" and res.json()["uses_benefit"] is False
    assert res.json()["unit"]["benefit_status"] == "available"
    assert len(res.json()["unit"]["warranty_exchanges"]) == 1
    trade = _claim(client, unit, "trade_in", today)
    assert trade.status_code == 201 and trade.json()["unit"]["benefit_status"] == "trade_in_used"


def test_claims_refuse_a_future_date_an_unknown_unit_and_old_dates_without_a_reason(api):
    ctx, client = api
    unit = _member_with_unit(ctx, client, n=3, days=200)
    today = datetime.now(UTC).date()
    assert _claim(client, unit, "trade_in", (today + timedelta(days=3)).isoformat()).status_code == 422
    assert _claim(client, 999_999, "trade_in", (today - timedelta(days=1)).isoformat()).status_code == 404
    old = _claim(client, unit, "trade_in", (today - timedelta(days=60)).isoformat())
    assert old.status_code == 422 and old.json()["detail"][0]["loc"] == ["body", "reason"]
    bad_kind = _claim(client, unit, "upgrade", (today - timedelta(days=1)).isoformat())
    assert bad_kind.status_code == 422 and bad_kind.json()["detail"][0]["loc"][-1] == "kind"


@pytest.fixture
def shop(api, tmp_path, monkeypatch):
    ctx, client = api
    with FakeShopify(orders=0, seed=3) as fake:
        fake.variants["HKS0801A1U"] = ("249.99", "299.99")
        stores = tmp_path / "stores.toml"
        default = (ctx.settings.stores_file).read_text()
        stores.write_text(
            default.replace("[stores.shopify-us]", "[stores.shopify-us-old]") + "\n" + fake.stores_toml()
        )
        monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
        monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
        ctx._stores = load_stores(stores)
        yield ctx, client, fake


def test_a_trade_in_quote_reads_the_list_price_from_the_shop_and_its_code_records_the_claim(shop):
    ctx, client, _ = shop
    unit = _member_with_unit(ctx, client, n=4, days=200)
    res = client.post(
        f"/v1/units/{unit}/trade-in-quotes",
        json={"member_email": "member@example.com", "store": "shopify-us", "sku": "HKS0801A1U"},
        headers=auth("website"),
    )
    assert res.status_code == 201, res.text
    quote = res.json()
    # VIP: 30% off the compare-at (list) price, never the sale price.
    assert (quote["list_price"], quote["discount"], quote["final_price"]) == ("299.99", "90.00", "209.99")
    assert quote["price_source"] == "store" and quote["code"].startswith("TI-")
    priced = client.post(
        f"/v1/units/{unit}/trade-in-quotes",
        json={
            "member_email": "member@example.com",
            "store": "shopify-us",
            "sku": "X",
            "list_price": "100.00",
            "currency": "USD",
        },
        headers=auth("website"),
    )
    assert priced.status_code == 422 and priced.json()["detail"][0]["loc"] == ["body", "list_price"]

    new_order = replace(
        store_order(ctx, 50, email="member@example.com", purchased_at=recent(0), lines=(("HKS0801A1U", 1),)),
        discount_codes=(quote["code"], "SUMMER10"),
    )
    new_order = replace(new_order, updated_at=new_order.updated_at + timedelta(seconds=1))
    write_batch(ctx.session_factory, [new_order])
    result = apply_trade_in_codes(ctx)
    assert result.recorded == 1 and result.flagged == 1  # stacked with SUMMER10: flagged, still recorded
    assert apply_trade_in_codes(ctx).recorded == 0  # idempotent
    with ctx.session_factory() as s:
        claim = s.execute(select(Claim).where(Claim.unit_id == unit)).scalar_one()
        assert claim.kind == "trade_in" and claim.quote_id == quote["quote"]
        flags = list(s.execute(select(ImportError_).where(ImportError_.source == "trade-in")).scalars())
        assert "stacked" in flags[0].message and "member" not in flags[0].raw

    cancelled = replace(new_order, is_cancelled=True, updated_at=new_order.updated_at + timedelta(minutes=1))
    write_batch(ctx.session_factory, [cancelled])
    assert apply_trade_in_codes(ctx).released == 1
    with ctx.session_factory() as s:
        assert s.execute(select(Claim).where(Claim.unit_id == unit)).first() is None
        assert s.execute(select(TradeInQuote.status)).scalar_one() == "released"


def test_an_unknown_code_on_an_order_is_flagged_and_records_nothing(shop):
    ctx, _, _ = shop
    rec = replace(store_order(ctx, 60, purchased_at=recent(0)), discount_codes=("TI-DEADBEEF0000",))
    write_batch(ctx.session_factory, [replace(rec, updated_at=rec.updated_at + timedelta(seconds=1))])
    result = apply_trade_in_codes(ctx)
    assert (result.recorded, result.flagged) == (0, 1)
    with ctx.session_factory() as s:
        assert s.execute(select(Claim)).first() is None
        assert s.execute(select(Unit)).first() is not None


def test_a_replacement_unit_gets_no_benefit_of_its_own_claims_and_quotes_say_why(shop):
    ctx, client, _ = shop
    today = datetime.now(UTC).date()
    _member_with_unit(ctx, client, n=70, days=400, registered=(today - timedelta(days=420)).isoformat())
    # The free replacement sent for it, on the member's e-mail: a unit of its own in the store.
    replacement = replace(
        store_order(ctx, 71, email="member@example.com", purchased_at=recent(200)),
        is_replacement=True,
        total_amount=Decimal("0.00"),
    )
    write_batch(
        ctx.session_factory, [replace(replacement, updated_at=replacement.updated_at + timedelta(seconds=1))]
    )
    res = client.post("/v1/members/lookup", json={"email": "member@example.com"}, headers=auth("support"))
    [unit] = [u for u in res.json()["units"] if u["order_id"] == replacement.external_id]
    assert unit["benefit_status"] is None and "replacement_order" in unit["reasons"]
    on = (today - timedelta(days=1)).isoformat()
    answers = {
        kind: _claim(client, unit["unit_id"], kind, on)
        for kind in ("exchange", "trade_in", "warranty_exchange")
    }
    quote = client.post(
        f"/v1/units/{unit['unit_id']}/trade-in-quotes",
        json={"member_email": "member@example.com", "store": "shopify-us", "sku": "HKS0801A1U"},
        headers=auth("website"),
    )
    for res in [*answers.values(), quote]:
        assert res.status_code == 422, res.text
        assert "replacement unit (replacement_order) gets no exchange or trade-in benefit" in res.text, (
            res.text
        )
    with ctx.session_factory() as s:
        assert s.execute(select(Claim)).first() is None
        assert s.execute(select(TradeInQuote)).first() is None


@pytest.fixture
def tesmart_id(db_url, tmp_path, monkeypatch):
    """The TESmart ID terms enabled for the Amazon NA account, the fake shop selling the new product."""
    policies = tmp_path / "policies"
    policies.mkdir()
    shipped = Settings().policies_dir
    (policies / "vip-2024.toml").write_text((shipped / "vip-2024.toml").read_text())
    terms = (shipped / "tesmart-id-2025-11-01.toml").read_text()
    terms = terms.replace("enabled = false", "enabled = true").replace(
        'stores = ["shopify-eu", "amazon-eu"]', 'stores = ["amazon-na"]'
    )
    (policies / "tesmart-id-2025-11-01.toml").write_text(terms)
    r = redis.Redis.from_url(REDIS_URL)
    ns = new_namespace()
    ctx = make_context(db_url, tmp_path, ns, REDIS_URL, policies_dir=policies)
    with FakeShopify(orders=0, seed=3) as fake:
        fake.variants["HKS0801A1U"] = ("249.99", "299.99")
        stores = tmp_path / "stores.toml"
        default = ctx.settings.stores_file.read_text()
        stores.write_text(
            default.replace("[stores.shopify-us]", "[stores.shopify-us-old]") + "\n" + fake.stores_toml()
        )
        monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
        monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
        ctx._stores = load_stores(stores)
        with client_for(ctx) as client:
            yield ctx, client
    ctx.dispose()
    delete_namespace(r, ns)


def test_a_tesmart_id_quote_takes_the_amount_paid_after_discounts_minus_money_refunds(tesmart_id):
    ctx, client = tesmart_id
    today = datetime.now(UTC).date()
    body = {"email": "member@example.com", "country": "US"}
    body |= {"registered_on": (today - timedelta(days=420)).isoformat(), "reason": "registered at the fair"}
    assert client.post("/v1/members", json=body, headers=auth("support")).status_code in (200, 201)
    # Two units at 199.99 with 0.01 off the line: 399.97 paid, 199.99 and 199.98 per unit.
    rec = order_record(
        90, source="amazon", store_key="amazon-na", lines=(("HKS0401A3U", 2),), purchased_at=recent(200)
    )
    rec = replace(rec, lines=tuple(replace(line, discount=Decimal("0.01")) for line in rec.lines))
    write_batch(ctx.session_factory, [rec])
    money_refund = OrderFact(
        source="amazon",
        store_key="amazon-na",
        order_external_id=rec.external_id,
        kind="refund",
        fact_key="goodwill-1",
        posted_at=recent(100),
        amount=Decimal("30.01"),  # money alone, for the order: 15.01 and 15.00 per unit
        currency="USD",
    )
    with ctx.session_factory() as s:
        Repository(s).record_facts([money_refund])
        s.commit()
    proof = client.post(
        "/v1/proofs",
        json={"member_email": "member@example.com", "order_id": rec.external_id, "postal_code": "40202"},
        headers=auth("website"),
    )
    assert proof.status_code == 200, proof.text
    units = sorted(proof.json()["orders"][0]["units"], key=lambda u: u["ordinal"])
    assert [u["policy_version"] for u in units] == ["tesmart-id-2025-11-01"] * 2
    assert [u["benefit_status"] for u in units] == ["available"] * 2
    quotes = [
        client.post(
            f"/v1/units/{u['unit_id']}/trade-in-quotes",
            json={"member_email": "member@example.com", "store": "shopify-us", "sku": "HKS0801A1U"},
            headers=auth("website"),
        )
        for u in units
    ]
    assert [q.status_code for q in quotes] == [201, 201], [q.text for q in quotes]
    # Under 36 months: 50% of (199.99 - 15.01) = 92.49 and of (199.98 - 15.00) = 92.49.
    assert [q.json()["discount"] for q in quotes] == ["92.49", "92.49"]
    assert [q.json()["final_price"] for q in quotes] == ["207.50", "207.50"]


def test_a_trade_in_code_in_the_order_attribute_records_the_claim_and_keeps_no_other_attribute(
    shop, fixtures_dir
):
    ctx, client, _ = shop
    unit = _member_with_unit(ctx, client, n=80, days=200)
    res = client.post(
        f"/v1/units/{unit}/trade-in-quotes",
        json={"member_email": "member@example.com", "store": "shopify-us", "sku": "HKS0801A1U"},
        headers=auth("website"),
    )
    assert res.status_code == 201, res.text
    code = res.json()["code"]
    # The new order as Shopify's orders/create webhook sends it: the code in an order
    # attribute (not a discount code), beside a gift message that must never be stored.
    order = json.loads((fixtures_dir / "shopify" / "order.json").read_text())["order"]
    now = datetime.now(UTC).isoformat()
    order |= {
        "id": 880000001,
        "name": "#8801",
        "processed_at": now,
        "created_at": now,
        "updated_at": now,
        "email": "member@example.com",
        "discount_codes": [],
        "note_attributes": [
            {"name": "Gift message", "value": "Happy birthday Ann"},
            {"name": "trade_in_code", "value": code.lower()},
        ],
    }
    with ctx.session_factory() as s:
        row = WebhookDelivery(
            webhook_id="w-trade-in-attribute",
            store_key="shopify-us",
            topic="orders/create",
            payload=order,
            status="pending",
            received_at=datetime.now(UTC),
        )
        s.add(row)
        s.commit()
        delivery = row.id
    assert process_webhook(ctx, delivery)["status"] == "done"
    result = apply_trade_in_codes(ctx)
    assert (result.recorded, result.flagged) == (1, 0)
    with ctx.session_factory() as s:
        claim = s.execute(select(Claim).where(Claim.unit_id == unit)).scalar_one()
        assert claim.kind == "trade_in" and claim.quote_id == res.json()["quote"]
        assert s.execute(select(TradeInQuote.status)).scalar_one() == "used"
        stored = s.execute(select(Order).where(Order.external_id == "880000001")).scalar_one()
        assert stored.trade_in_codes == [code.lower()] and stored.discount_codes == []
        raw = s.execute(select(RawPayload.payload).where(RawPayload.id == stored.raw_payload_id)).scalar_one()
    assert raw["note_attributes"] == [{"name": "trade_in_code", "value": code.lower()}]
    assert "Happy birthday" not in json.dumps(raw)
