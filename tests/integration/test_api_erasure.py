"""Member erasure through the real app and the CLI, on SQLite and PostgreSQL: after a
registration, a proof, a claim and a rejected record that named the person, nothing of
the e-mail, the name or the street is left in any table or any captured log line, and
the warranty records stay under the pseudonymous member."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import select

from tests.api_helpers import auth, client_for, make_context, recent, store_order
from vipsync.connectors.records import canonical_json, email_digest
from vipsync.devtools.worker_procs import delete_namespace, new_namespace
from vipsync.store.models import Base, Claim, Member
from vipsync.store.repository import Repository

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EMAIL = "Erase.Me@Example.com"
NAME = "Erika Mustermann"
STREET = "Heidestrasse 17"


@pytest.fixture
def api(db_url, tmp_path):
    r = redis.Redis.from_url(REDIS_URL)
    ns = new_namespace()
    ctx = make_context(db_url, tmp_path, ns, REDIS_URL)
    with client_for(ctx) as client:
        yield ctx, client
    ctx.dispose()
    delete_namespace(r, ns)


def _dump(ctx) -> str:
    with ctx.session_factory() as s:
        return "\n".join(
            canonical_json([list(r) for r in s.execute(select(t)).all()]) for t in Base.metadata.sorted_tables
        )


def test_erasure_leaves_no_trace_in_any_table_or_log_line_and_keeps_the_claim(api, caplog):
    ctx, client = api
    caplog.set_level(logging.DEBUG)
    raw = {"email": EMAIL, "shipping_address": {"name": NAME, "address1": STREET, "zip": "40202"}}
    assert (
        client.post(
            "/v1/members", json={"email": EMAIL, "country": "DE"}, headers=auth("website")
        ).status_code
        == 201
    )
    store_order(ctx, 1, email="guest@example.com", purchased_at=recent(200), raw_extra=raw)
    store_order(ctx, 2, email=EMAIL, purchased_at=recent(150), raw_extra=raw)
    with ctx.session_factory() as s:
        Repository(s).record_error(
            source="shopify",
            store_key="shopify-us",
            record_id="1000009",
            field="line_items",
            message="bad",
            raw={
                "id": 1000009,
                "email": EMAIL,
                "customer": {"first_name": "Erika"},
                "shipping_address": raw["shipping_address"],
            },
        )
        s.commit()
    proof = client.post(
        "/v1/proofs",
        json={"member_email": EMAIL, "order_id": "#1001", "order_email": "guest@example.com"},
        headers=auth("website"),
    )
    assert proof.status_code == 200, proof.text
    unit_id = proof.json()["orders"][0]["units"][0]["unit_id"]
    day = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    assert (
        client.post(
            "/v1/claims", json={"unit_id": unit_id, "kind": "trade_in", "on": day}, headers=auth("support")
        ).status_code
        == 201
    )

    res = client.post("/v1/members/erase", json={"email": EMAIL}, headers=auth("support"))
    assert res.status_code == 200, res.text
    assert res.json()["erased"]["member_ids"]

    normalized = EMAIL.strip().lower()
    needles = [normalized, EMAIL, email_digest(EMAIL), ctx.digester.email(normalized), NAME, "Erika", STREET]
    dump = _dump(ctx)
    logs = "\n".join(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)
    for needle in needles:
        assert needle not in dump, f"{needle!r} left in a table"
        assert needle not in logs, f"{needle!r} left in a log line"
    with ctx.session_factory() as s:
        member = s.execute(select(Member)).scalar_one()
        assert member.erased_at is not None and member.email_hash is None
        claim = s.execute(select(Claim)).scalar_one()
        assert claim.unit_id == unit_id and claim.kind == "trade_in"
    # The erased member's orders keep their pseudonymous owner.
    assert (
        client.post(
            "/v1/members", json={"email": "new@example.com", "country": "DE"}, headers=auth("website")
        ).status_code
        == 201
    )
    again = client.post(
        "/v1/proofs",
        json={"member_email": "new@example.com", "order_id": "#1001", "order_email": "guest@example.com"},
        headers=auth("website"),
    )
    assert again.json()["orders"][0]["status"] == "other_member"
