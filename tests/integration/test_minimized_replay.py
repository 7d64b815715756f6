"""Replays work from what the allowlist kept: a rejected order or members row, stored with
its e-mail only as the keyed digest, is imported by `vipsync errors replay` and still
matches its member."""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import select
from typer.testing import CliRunner

from vipsync.cli.main import app
from vipsync.connectors.records import MemberRecord, email_digest
from vipsync.store.models import ImportError_, Member, Order
from vipsync.store.repository import Repository

EMAIL = "replay.me@example.com"
runner = CliRunner()

ORDER = {
    "id": 777001,
    "name": "#7001",
    "email": EMAIL,
    "phone": "+1 502 555 0142",
    "browser_ip": "192.0.2.55",
    "processed_at": "2024-05-01T10:00:00-04:00",
    "updated_at": "2024-05-01T10:00:00-04:00",
    "financial_status": "paid",
    "currency": "USD",
    "total_price": "199.99",
    "customer": {"id": 5, "first_name": "Rae", "last_name": "Play", "email": EMAIL},
    "shipping_address": {"first_name": "Rae", "address1": "9 Elm Rd", "country_code": "US", "zip": "40202"},
    "line_items": [{"id": 1, "sku": "HKS0401A3U", "title": "KVM", "quantity": 1, "price": "199.99"}],
}


def test_a_rejected_order_and_members_row_replay_from_their_minimized_form(context):
    with context.session_factory() as s:
        repo = Repository(s)
        repo.upsert_members([MemberRecord(email_hash=email_digest(EMAIL), registered_at=date(2024, 1, 1))])
        # As the writer keeps an order the database refused (a transient cause, fixed since).
        repo.record_error(
            source="shopify",
            store_key="shopify-us",
            record_id="777001",
            field=None,
            message="the database refused the record",
            raw=ORDER,
        )
        # As the members reader keeps a row: the plain SHA-256 of the address, never the address.
        repo.record_error(
            source="members",
            store_key=None,
            record_id="line 2",
            field="registered_at",
            message="was unreadable",
            raw={
                "email_sha256": email_digest("second@example.com"),
                "registered_at": "2024-02-02",
                "line": "x",
            },
        )
        s.commit()
        kept = [json.loads(r) for (r,) in s.execute(select(ImportError_.raw).order_by(ImportError_.id))]
    text = json.dumps(kept)
    for needle in (
        EMAIL,
        "Rae",
        "Elm",
        "555 0142",
        "192.0.2.55",
        email_digest(EMAIL),
        email_digest("second@example.com"),
    ):
        assert needle not in text, needle

    result = runner.invoke(app, ["errors", "replay"], catch_exceptions=False)
    assert result.exit_code == 0 and "replayed" in result.output
    with context.session_factory() as s:
        order = s.execute(select(Order)).scalar_one()
        member_hashes = set(s.execute(select(Member.email_hash)).scalars())
        statuses = set(s.execute(select(ImportError_.status)).scalars())
    assert statuses == {"replayed"}
    assert order.email_hash == context.digester.email(EMAIL) and order.email_key_id == context.digester.key_id
    assert order.email_hash in member_hashes and context.digester.email("second@example.com") in member_hashes
