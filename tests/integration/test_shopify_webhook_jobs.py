"""process_webhook: stored deliveries applied idempotently, in any order."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.connectors.minimize import minimize
from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.store.models import ImportError_, Order, OrderLineRow, RawPayload, WebhookDelivery
from vipsync.store.repository import utcnow
from vipsync.workers.shopify_jobs import make_client, process_webhook

KEY = "shopify-us"


@pytest.fixture
def fake():
    with FakeShopify(orders=3, seed=5, restore_rate=5000) as server:
        yield server


@pytest.fixture
def ctx(fake, db_url, tmp_path, monkeypatch):
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml(key=KEY))
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("VIPSYNC_FAKE_SHOPIFY_API_SECRET", fake.webhook_secret)
    context = Context(settings=Settings(stores_file=stores, data_dir=tmp_path / "data"), database_url=db_url)
    yield context
    context.dispose()


def _store(ctx, topic: str, payload: dict, webhook_id: str) -> int:
    """Store a delivery as the endpoint does (minimized by the allowlist)."""
    with ctx.session_factory() as s:
        row = WebhookDelivery(
            webhook_id=webhook_id,
            store_key=KEY,
            topic=topic,
            payload=minimize(payload, digester=ctx.digester, topic=topic),
            status="pending",
            received_at=utcnow(),
        )
        s.add(row)
        s.commit()
        return row.id


def _order(ctx, external_id) -> Order:
    with ctx.session_factory() as s:
        return s.execute(select(Order).where(Order.external_id == str(external_id))).scalar_one()


def test_out_of_order_deliveries_end_in_the_newest_state(fake, ctx):
    oid = fake.order_ids[0]
    created = copy.deepcopy(fake.rest_order(oid))
    fake.update_order(oid, cancelled=True, at=fake.order(oid).updated_at + timedelta(hours=1))
    cancelled = fake.rest_order(oid)
    # Shopify delivered the cancellation first and the older creation late.
    newer = _store(ctx, "orders/cancelled", cancelled, "w-2")
    older = _store(ctx, "orders/create", created, "w-1")
    assert process_webhook(ctx, newer)["status"] == "done"
    assert process_webhook(ctx, older)["changed_order_ids"] == []
    row = _order(ctx, oid)
    assert row.is_cancelled and row.cancelled_at is not None


def test_a_delivery_processed_twice_changes_nothing_the_second_time(fake, ctx):
    oid = fake.order_ids[1]
    did = _store(ctx, "orders/updated", fake.rest_order(oid), "w-3")
    first = process_webhook(ctx, did)
    second = process_webhook(ctx, did)
    assert first["changed_order_ids"] and second["changed_order_ids"] == []
    with ctx.session_factory() as s:
        assert s.get(WebhookDelivery, did).attempts == 1
        assert len(s.execute(select(Order.id)).all()) == 1


def test_refund_webhook_fetches_the_order_and_marks_the_refunded_units(fake, ctx):
    oid = fake.order_ids[2]
    process_webhook(ctx, _store(ctx, "orders/create", fake.rest_order(oid), "w-4"))
    line = fake.order(oid).lines[0]
    fake.update_order(oid, refund={line.id: 1})
    refund_payload = {
        "id": 1,
        "order_id": oid,
        "refund_line_items": [{"line_item_id": line.id, "quantity": 1}],
    }
    result = process_webhook(
        ctx, _store(ctx, "refunds/create", refund_payload, "w-5"), client=make_client(ctx.stores.shopify(KEY))
    )
    assert result["status"] == "done" and result["changed_order_ids"]
    with ctx.session_factory() as s:
        refunded = s.execute(
            select(OrderLineRow.refunded_quantity).where(OrderLineRow.line_key == str(line.id))
        ).scalar_one()
    assert refunded == 1


def test_bad_order_payload_fails_the_delivery_and_is_rejected_into_the_error_table(fake, ctx):
    payload = dict(fake.rest_order(fake.order_ids[0]), processed_at="not a time")
    delivery_id = _store(ctx, "orders/updated", payload, "w-6")
    result = process_webhook(ctx, delivery_id)
    assert result["status"] == "failed"
    with ctx.session_factory() as s:
        err = s.execute(select(ImportError_)).scalar_one()
        delivery = s.get(WebhookDelivery, delivery_id)
        assert delivery is not None and delivery.status == "failed"
        assert delivery.error is not None and "'processed_at'" in delivery.error
    assert (err.record_id, err.field) == (str(fake.order_ids[0]), "processed_at")
    assert "@" not in err.message


def test_customer_redaction_erases_personal_data_and_keeps_the_order(fake, ctx):
    oid = fake.order_ids[0]
    fake.update_order(oid, email="someone@example.com")
    process_webhook(ctx, _store(ctx, "orders/create", fake.rest_order(oid), "w-7"))
    redact = {
        "shop_id": 1,
        "shop_domain": "tesmart-us.myshopify.com",
        "customer": {"id": 1, "email": "someone@example.com"},
        "orders_to_redact": [oid],
    }
    assert process_webhook(ctx, _store(ctx, "customers/redact", redact, "w-8"))["status"] == "done"
    row = _order(ctx, oid)
    assert row.email_hash is None and row.shipping_postal_code is None
    with ctx.session_factory() as s:
        payloads = [p for (p,) in s.execute(select(RawPayload.payload))]
        payloads += [p for (p,) in s.execute(select(WebhookDelivery.payload))]
    assert len(payloads) == 3 and all("someone@example.com" not in str(p) for p in payloads)


def test_a_data_request_is_recorded_then_exported_by_ops_and_forgets_its_subject(fake, ctx):
    from vipsync.store.models import PrivacyRequest
    from vipsync.workers.privacy_jobs import data_request_export

    oid = fake.order_ids[0]
    fake.update_order(oid, email="asks@example.com")
    process_webhook(ctx, _store(ctx, "orders/create", fake.rest_order(oid), "w-10"))
    request = {
        "shop_id": 1,
        "shop_domain": "tesmart-us.myshopify.com",
        "customer": {"id": 42, "email": "asks@example.com", "phone": "+1 555 0100"},
        "orders_requested": [oid],
        "data_request": {"id": 9999},
    }
    assert process_webhook(ctx, _store(ctx, "customers/data_request", request, "w-11"))["status"] == "done"
    with ctx.session_factory() as s:
        row = s.execute(select(PrivacyRequest)).scalar_one()
        delivery = s.execute(select(WebhookDelivery).where(WebhookDelivery.webhook_id == "w-11")).scalar_one()
    assert (row.kind, row.status, row.customer_id) == ("customers_data_request", "received", "42")
    assert row.subject_digest == ctx.digester.email("asks@example.com")
    assert "asks@" not in str(delivery.payload) and "555" not in str(delivery.payload)

    data = data_request_export(ctx, request_id=row.id)
    assert [o["order_id"] for o in data["orders"]] == [str(oid)]
    assert data["orders_named_by_the_request"] == [str(oid)]
    with ctx.session_factory() as s:
        row = s.execute(select(PrivacyRequest)).scalar_one()
    assert (row.status, row.subject_digest) == ("done", None)


def test_shop_redact_erases_the_shops_personal_data_and_keeps_its_orders(fake, ctx):
    oid = fake.order_ids[0]
    fake.update_order(oid, email="buyer@example.com")
    process_webhook(ctx, _store(ctx, "orders/create", fake.rest_order(oid), "w-12"))
    body = {"shop_id": 1, "shop_domain": "tesmart-us.myshopify.com"}
    assert process_webhook(ctx, _store(ctx, "shop/redact", body, "w-13"))["status"] == "done"
    row = _order(ctx, oid)
    assert row.email_hash is None and row.shipping_postal_code is None and row.name
    with ctx.session_factory() as s:
        payloads = [p for (p,) in s.execute(select(RawPayload.payload))]
    assert "email_digest" not in str(payloads)


def test_unknown_delivery_id_is_a_no_op(ctx):
    assert process_webhook(ctx, 999_999)["status"] == "missing"


_junk = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=30)
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has no infinity: the store refuses it
    | st.just("12\x003")
)
_hostile_ids = st.lists(_junk, max_size=5) | _junk | st.dictionaries(st.text(max_size=5), _junk, max_size=3)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    topic=st.sampled_from(["customers/redact", "customers/data_request", "shop/redact"]),
    ids=_hostile_ids,
    customer=st.dictionaries(st.sampled_from(["id", "email", "phone"]), _junk, max_size=3) | _junk,
    digest=st.none() | st.text(max_size=80) | st.just("ab" * 40),
)
def test_hostile_compliance_payloads_are_recorded_never_raise(ctx, topic, ids, customer, digest):
    from vipsync.store.models import PrivacyRequest

    body = {"shop_domain": "tesmart-us.myshopify.com", "orders_to_redact": ids, "customer": customer}
    if digest is not None:
        body["email_digest"], body["email_key_id"] = digest, "k\x00" * 20
    _COUNTER[0] += 1
    delivery_id = _store(ctx, topic, body, f"hostile-{_COUNTER[0]}")
    assert process_webhook(ctx, delivery_id)["status"] == "done"
    with ctx.session_factory() as s:
        request = s.execute(select(PrivacyRequest).order_by(PrivacyRequest.id.desc())).scalars().first()
    assert request is not None and request.kind == topic.replace("/", "_")


_COUNTER = [0]


def test_an_order_edit_delivery_keeps_its_exchange_and_fetches_the_order(fake, ctx):
    from vipsync.store.models import OrderFactRow, Unit

    oid = fake.order_ids[1]
    process_webhook(ctx, _store(ctx, "orders/create", fake.rest_order(oid), "w-20"))
    line = fake.order(oid).lines[0]
    edited = fake.update_order(oid, remove={line.id: line.current}, add=["HKS0802A1U"])
    added = edited.lines[-1]
    payload = {  # every field of Shopify's orders/edited payload
        "order_edit": {
            "id": 78912328,
            "app_id": None,
            "created_at": "2025-03-01T10:00:00-05:00",
            "notify_customer": False,
            "order_id": oid,
            "staff_note": "",
            "user_id": None,
            "line_items": {
                "additions": [{"id": added.id, "delta": 1}],
                "removals": [{"id": line.id, "delta": line.quantity}],
            },
            "discounts": {"line_item": {"additions": [], "removals": []}},
            "shipping_lines": {"additions": [], "removals": []},
        }
    }
    result = process_webhook(
        ctx, _store(ctx, "orders/edited", payload, "w-21"), client=make_client(ctx.stores.shopify(KEY))
    )
    assert result["status"] == "done" and result["changed_order_ids"]
    with ctx.session_factory() as s:
        facts = s.execute(
            select(
                OrderFactRow.kind,
                OrderFactRow.line_key,
                OrderFactRow.returned_line_key,
                OrderFactRow.quantity,
            )
        ).all()
        skus = set(s.execute(select(Unit.sku).where(Unit.order_external_id == str(oid))).scalars())
    assert [tuple(f) for f in facts] == [("exchange", str(added.id), str(line.id), 1)]
    assert "HKS0802A1U" in skus  # the order's new version was fetched


def test_a_malformed_order_edit_fails_its_delivery_naming_the_field(fake, ctx):
    oid = fake.order_ids[0]
    payload = {"order_edit": {"id": 5, "created_at": "not a time", "order_id": oid,
                              "line_items": {"additions": [{"id": 9, "delta": 1}], "removals": []}}}  # fmt: skip
    result = process_webhook(ctx, _store(ctx, "orders/edited", payload, "w-22"))
    assert result["status"] == "failed"
    with ctx.session_factory() as s:
        delivery = s.get(WebhookDelivery, result["delivery_id"])
        error = s.execute(select(ImportError_)).scalar_one()
    assert "order_edit.created_at" in delivery.error
    assert (error.record_id, error.field) == (str(oid), "order_edit.created_at")
