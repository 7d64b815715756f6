"""Revision 0002 on a store built at 0001: plain SHA-256 digests become keyed ones without
losing any order/member match, and the kept payloads lose their personal data."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from vipsync.devtools.scratch_db import scratch_database
from vipsync.store.db import head_revision, make_engine, upgrade

PG_ADMIN_URL = os.environ.get("VIPSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
T = datetime(2024, 3, 1, 12, tzinfo=UTC)
ANN, BOB = "ann@example.com", "bob@example.com"


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store(request, tmp_path) -> Iterator[sa.Engine]:
    """An empty store at revision 0001."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
        upgrade(engine, "0001")
        yield engine
        engine.dispose()
        return
    with scratch_database(PG_ADMIN_URL, prefix="vipsync_mig", migrate=False) as url:
        engine = make_engine(url)
        upgrade(engine, "0001")
        yield engine
        engine.dispose()


def _sha(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()


def _fill_at_0001(engine: sa.Engine) -> None:
    md = sa.MetaData()
    md.reflect(engine)
    t = md.tables
    rest_order = {
        "id": 1001,
        "name": "#1001",
        "email": ANN,
        "browser_ip": "203.0.113.9",
        "phone": "+1 502 555 0100",
        "note": "leave at the back door",
        "customer": {"id": 7, "first_name": "Ann", "last_name": "Lee", "email": ANN},
        "shipping_address": {
            "name": "Ann Lee",
            "address1": "1 Main St",
            "city": "Louisville",
            "zip": "40202",
        },
        "line_items": [{"id": 1, "sku": "HKS0401A3U", "quantity": 1, "price": "199.99"}],
    }
    with engine.begin() as conn:
        conn.execute(
            t["raw_payloads"].insert(),
            [
                {
                    "source": "shopify",
                    "store_key": "shopify-us",
                    "kind": "order",
                    "external_id": "1001",
                    "sha256": "a" * 64,
                    "payload": rest_order,
                    "received_at": T,
                },
                {  # an older version differing only in personal data: merged with the first
                    "source": "shopify",
                    "store_key": "shopify-us",
                    "kind": "order",
                    "external_id": "1001",
                    "sha256": "b" * 64,
                    "payload": dict(rest_order, phone="+1 502 555 0199"),
                    "received_at": T,
                },
            ],
        )
        raw_ids = [r for (r,) in conn.execute(sa.select(t["raw_payloads"].c.id).order_by("id"))]
        base = {
            "source": "shopify",
            "store_key": "shopify-us",
            "purchased_at": T,
            "purchase_date": date(2024, 3, 1),
            "source_updated_at": T,
            "country": "US",
            "country_source": "shipping",
            "discount_codes": [],
            "content_hash": "c" * 64,
            "created_at": T,
            "updated_at": T,
            "payment_pending": False,
            "is_cancelled": False,
            "is_test": False,
        }
        conn.execute(
            t["orders"].insert(),
            [
                base
                | {
                    "external_id": "1001",
                    "name": "#1001",
                    "email_hash": _sha(ANN),
                    "raw_payload_id": raw_ids[1],
                },
                base
                | {"external_id": "1002", "name": "#1002", "email_hash": _sha(BOB), "raw_payload_id": None},
            ],
        )
        conn.execute(
            t["members"].insert(),
            [
                {
                    "email_hash": _sha(ANN),
                    "registered_at": date(2024, 1, 1),
                    "source": "import",
                    "created_at": T,
                    "updated_at": T,
                }
            ],
        )
        conn.execute(
            t["webhook_deliveries"].insert(),
            [
                {
                    "webhook_id": "w-1",
                    "store_key": "shopify-us",
                    "topic": "orders/create",
                    "payload": rest_order,
                    "status": "done",
                    "attempts": 1,
                    "received_at": T,
                }
            ],
        )
        conn.execute(
            t["import_errors"].insert(),
            [
                {
                    "source": "members",
                    "record_id": "line 3",
                    "field": "registered_at",
                    "message": "not a date",
                    "raw": json.dumps({"email_sha256": _sha(BOB), "registered_at": "x", "name": "Bob Roe"}),
                    "status": "open",
                    "created_at": T,
                },
                {
                    "source": "shopify",
                    "store_key": "shopify-us",
                    "record_id": "1001",
                    "field": "line_items[0].quantity",
                    "message": "not an integer",
                    "raw": json.dumps(rest_order),
                    "status": "open",
                    "created_at": T,
                },
            ],
        )


def test_upgrading_a_0001_store_keys_every_digest_and_keeps_every_match(old_store, digester):
    _fill_at_0001(old_store)
    upgrade(old_store)
    with old_store.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
        )
        orders = {
            r.external_id: r
            for r in conn.execute(
                sa.text("SELECT external_id, email_hash, email_key_id, raw_payload_id FROM orders")
            )
        }
        member = conn.execute(sa.text("SELECT email_hash, email_key_id FROM members")).one()
        raws = conn.execute(sa.text("SELECT id, payload FROM raw_payloads")).all()
        deliveries = [p for (p,) in conn.execute(sa.text("SELECT payload FROM webhook_deliveries"))]
        errors = [r for (r,) in conn.execute(sa.text("SELECT raw FROM import_errors ORDER BY id"))]
    # The order and its member still match, under the keyed digest of the address.
    assert orders["1001"].email_hash == member.email_hash == digester.email(ANN)
    assert orders["1002"].email_hash == digester.email(BOB)
    assert {orders["1001"].email_key_id, member.email_key_id} == {digester.key_id}
    # No stored digest is the plain SHA-256 of its address.
    stored = [o.email_hash for o in orders.values()] + [member.email_hash]
    assert not {_sha(ANN), _sha(BOB)} & set(stored)
    # The two versions differing only in personal data became one; the order points at it.
    assert len(raws) == 1 and orders["1001"].raw_payload_id == raws[0].id
    text = json.dumps([r.payload if isinstance(r.payload, dict) else json.loads(r.payload) for r in raws])
    text += json.dumps([d if isinstance(d, dict) else json.loads(d) for d in deliveries]) + "".join(errors)
    for needle in (
        ANN,
        BOB,
        _sha(ANN),
        _sha(BOB),
        "Ann",
        "Lee",
        "Main St",
        "Louisville",
        "203.0.113.9",
        "555",
        "door",
        "Bob Roe",
    ):
        assert needle not in text, needle
    # What replay needs is kept: the members row's keyed digest, the order's lines and zip.
    assert json.loads(errors[0])["email_digest"] == digester.email(BOB)
    assert '"sku": "HKS0401A3U"' in text and "40202" in text
