"""Erasure and data requests on SQLite and PostgreSQL: the person's data goes from every
table, the warranty records stay under the pseudonymous member, no unit changes owner."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from vipsync.connectors.records import MemberRecord, canonical_json, email_digest
from vipsync.devtools.factories import order_record
from vipsync.errors import StoreError
from vipsync.store.erasure import erase_person, erase_store, person_data
from vipsync.store.models import (
    ImportError_,
    Member,
    Order,
    OrderMemberLink,
    RawPayload,
    UnitTag,
    WebhookDelivery,
)
from vipsync.store.repository import Repository
from vipsync.workers.tagging import tag_pending

EMAIL = "erase.me@example.com"


def _load(ctx, *, email: str = EMAIL) -> None:
    purchased = datetime(2024, 3, 1, 12, tzinfo=UTC)
    with ctx.session_factory() as s:
        repo = Repository(s)
        repo.upsert_orders(
            [
                order_record(1, email=email, purchased_at=purchased, raw_extra={"email": email, "note": "x"}),
                order_record(2, email="someone.else@example.com", purchased_at=purchased),
            ]
        )
        repo.upsert_members([MemberRecord(email_hash=email_digest(email), registered_at=date(2024, 1, 1))])
        repo.record_error(
            source="shopify",
            store_key="shopify-us",
            record_id="1000001",
            field="line_items[0].quantity",
            message="not an integer",
            raw={"id": 1000001, "email": email, "shipping_address": {"zip": "40202", "name": "Erase Me"}},
        )
        for n, (oid, zip_code) in enumerate([(1000001, "40299"), ("1000002", "40288")]):
            s.add(
                WebhookDelivery(
                    webhook_id=f"w-{n}",
                    store_key="shopify-us",
                    topic="orders/updated",
                    payload={"id": oid, "shipping_address": {"country_code": "US", "zip": zip_code}},
                    status="done",
                    received_at=purchased,
                )
            )
        s.commit()
    tag_pending(ctx)


def _dump(ctx) -> str:
    """Every row of every table, as text."""
    from vipsync.store.models import Base

    with ctx.session_factory() as s:
        return "\n".join(
            canonical_json([list(r) for r in s.execute(select(t)).all()]) for t in Base.metadata.sorted_tables
        )


def test_erasing_a_member_leaves_a_pseudonymous_member_who_keeps_every_unit(context):
    _load(context)
    digester = context.digester
    digest = digester.email(EMAIL)
    with context.session_factory() as s:
        member_id = s.execute(select(Member.id)).scalar_one()
        before = {t.unit_id: t.member_id for t in s.execute(select(UnitTag)).scalars()}
    assert member_id in before.values()

    with context.session_factory() as s:
        report = erase_person(s, digester, " Erase.Me@Example.com ")
        s.commit()
    assert report.member_ids == [member_id] and report.orders == 1 and report.links_created == 1
    assert report.import_errors == 1

    tag_pending(context)
    with context.session_factory() as s:
        member = s.get(Member, member_id)
        assert member is not None and member.email_hash is None and member.erased_at is not None
        assert member.exited_at is not None  # erasure is an exit at the moment of erasure
        link = s.execute(select(OrderMemberLink)).scalar_one()
        assert (link.member_id, link.method) == (member_id, "email")
        after = {t.unit_id: t.member_id for t in s.execute(select(UnitTag)).scalars()}
        order = s.execute(select(Order).where(Order.external_id == "1000001")).scalar_one()
        assert order.email_hash is None and order.shipping_postal_code is None
        other = s.execute(select(Order).where(Order.external_id == "1000002")).scalar_one()
        assert other.email_hash is not None  # nobody else is touched
    assert after == before  # no unit changed owner
    text = _dump(context).lower()
    assert digest not in text and EMAIL not in text and "erase me" not in text
    # A delivery that names the order by id alone is erased too; another order's is not.
    assert report.webhook_deliveries == 1 and "40299" not in text and "40288" in text


def test_a_data_request_lists_what_the_store_holds_without_the_address(context):
    _load(context)
    with context.session_factory() as s:
        data = person_data(s, context.digester, EMAIL)
    assert [m["registered_at"] for m in data["members"]] == ["2024-01-01"]
    assert [o["order_id"] for o in data["orders"]] == ["1000001"]
    assert data["orders"][0]["units"][0]["extended_warranty_end"] is not None
    assert EMAIL not in canonical_json(data)


def test_an_address_the_store_never_saw_erases_nothing_and_a_non_address_is_refused(context):
    _load(context)
    with context.session_factory() as s:
        report = erase_person(s, context.digester, "stranger@example.com")
        assert (report.member_ids, report.orders, report.import_errors) == ([], 0, 0)
        with pytest.raises(StoreError, match="e-mail address"):
            erase_person(s, context.digester, "not an address")


def test_shop_redact_erases_the_shops_orders_and_keeps_members(context):
    _load(context)
    with context.session_factory() as s:
        report = erase_store(s, "shopify-us")
        s.commit()
    assert report.orders == 2
    with context.session_factory() as s:
        assert all(o.email_hash is None for o in s.execute(select(Order)).scalars())
        assert s.execute(select(Member.email_hash)).scalar_one() is not None
        payloads = canonical_json([p for (p,) in s.execute(select(RawPayload.payload))])
        errors = canonical_json([r for (r,) in s.execute(select(ImportError_.raw))])
    assert "email_digest" not in payloads and "40202" not in errors


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    email=st.text(max_size=40) | st.emails() | st.just("a\x00b@example.com") | st.just("x" * 400 + "@e.com")
)
def test_any_text_given_as_an_address_erases_or_is_refused_plainly(context, email):
    with context.session_factory() as s:
        try:
            report = erase_person(s, context.digester, email)
        except StoreError as exc:
            assert "e-mail address" in str(exc)
        else:
            assert report.orders == 0 and report.member_ids == []
        s.rollback()
