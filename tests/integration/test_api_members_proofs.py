"""The /v1 customer API through the real app (TestClient), on SQLite and PostgreSQL, with
the real Redis: members, proofs of purchase by e-mail, postal code and invoice PDF."""

from __future__ import annotations

import base64
import os
import time
from datetime import UTC, datetime

import pytest
import redis
from fpdf import FPDF
from sqlalchemy import select

from tests.api_helpers import auth, client_for, make_context, recent, store_order
from vipsync.devtools.worker_procs import delete_namespace, new_namespace
from vipsync.store.models import ProofDecision

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


def _register(client, email="member@example.com", **extra):
    body = {"email": email, "country": "US", **extra}
    res = client.post("/v1/members", json=body, headers=auth("support"))
    assert res.status_code in (200, 201), res.text
    return res.json()


def _invoice_pdf(*lines: str) -> str:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    for line in lines:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return base64.b64encode(bytes(pdf.output())).decode()


# ---------------------------------------------------------------------------- tokens
@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/members", {"email": "a@example.com", "country": "US"}),
        ("/v1/proofs", {"member_email": "a@example.com", "order_id": "#1001", "postal_code": "40202"}),
        ("/v1/claims", {"unit_id": 1, "kind": "exchange", "on": "2026-01-01"}),
    ],
)
def test_a_missing_wrong_or_out_of_scope_token_gets_401_and_nothing_else(api, path, body):
    _, client = api
    answers = [
        client.post(path, json=body),
        client.post(path, json=body, headers={"Authorization": "Bearer nope"}),
        client.post(path, json=body, headers=auth("read")),
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.text for a in answers}) == 1


# ---------------------------------------------------------------------------- members
def test_a_registration_from_outside_the_program_regions_is_refused_naming_the_country(api):
    _, client = api
    res = client.post("/v1/members", json={"email": "a@example.ch", "country": "CH"}, headers=auth("website"))
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "country"]


def test_registering_again_while_active_changes_nothing_and_after_an_exit_is_a_new_date(api):
    _, client = api
    first = _register(client, registered_on="2026-01-05", reason="registered by phone")
    assert first["outcome"] == "registered" and first["registered_on"] == "2026-01-05"
    again = client.post(
        "/v1/members", json={"email": "MEMBER@example.com ", "country": "US"}, headers=auth("website")
    )
    assert again.status_code == 200 and again.json()["outcome"] == "already_active"
    assert again.json()["registered_on"] == "2026-01-05"
    out = client.post(
        "/v1/members/exit", json={"email": "member@example.com"}, headers=auth("support")
    ).json()
    assert out["outcome"] == "exited" and out["active"] is False
    back = client.post(
        "/v1/members", json={"email": "member@example.com", "country": "US"}, headers=auth("website")
    )
    assert back.json()["outcome"] == "re_registered"
    assert back.json()["registered_on"] == datetime.now(UTC).date().isoformat()
    assert back.json()["active"] is True


def test_a_website_registration_takes_the_server_clock_whatever_date_it_sends(api):
    _, client = api
    res = client.post(
        "/v1/members",
        json={"email": "w@example.com", "country": "DE", "registered_on": "2024-01-01", "reason": "x"},
        headers=auth("website"),
    )
    assert res.status_code == 201
    assert res.json()["registered_on"] != "2024-01-01"


def test_support_needs_a_reason_for_an_earlier_date_and_never_a_future_one(api):
    _, client = api
    early = client.post(
        "/v1/members",
        json={"email": "s@example.com", "country": "US", "registered_on": "2025-01-01"},
        headers=auth("support"),
    )
    assert early.status_code == 422 and early.json()["detail"][0]["loc"] == ["body", "reason"]
    future = client.post(
        "/v1/members",
        json={"email": "s@example.com", "country": "US", "registered_on": "2999-01-01", "reason": "x"},
        headers=auth("support"),
    )
    assert future.status_code == 422 and future.json()["detail"][0]["loc"] == ["body", "registered_on"]


# ---------------------------------------------------------------------------- proofs
def test_a_guest_checkout_is_proved_by_its_email_and_its_units_become_available(api):
    ctx, client = api
    _register(client)
    store_order(ctx, 1, email="guest.other@example.com", purchased_at=recent(200))
    res = client.post(
        "/v1/proofs",
        json={
            "member_email": "member@example.com",
            "order_id": "#1001",
            "order_email": " Guest.Other@Example.com",
        },
        headers=auth("website"),
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["verified"] is True
    [order] = body["orders"]
    assert order["status"] == "linked"
    [unit] = order["units"]
    assert unit["benefit_status"] == "available"
    assert unit["trade_in_opens"] is not None and unit["extended_warranty_end"] is not None


def test_an_amazon_unit_turns_from_not_member_to_available_after_a_postal_code_proof(api):
    ctx, client = api
    rec = store_order(ctx, 2, source="amazon", store_key="amazon-na", purchased_at=recent(150))
    from vipsync.workers.tagging import tag_pending

    tag_pending(ctx)
    from vipsync.store.customers import unit_answers
    from vipsync.store.models import Unit

    with ctx.session_factory() as s:
        ids = list(s.execute(select(Unit.id)).scalars())
        assert [u["benefit_status"] for u in unit_answers(s, ids)] == ["not_member"]
    _register(client)
    res = client.post(
        "/v1/proofs",
        json={
            "member_email": "member@example.com",
            "order_id": rec.external_id.replace("-", ""),
            "postal_code": "40202-9999",
            "country": "US",
        },
        headers=auth("website"),
    )
    assert res.status_code == 200, res.text
    assert [u["benefit_status"] for u in res.json()["orders"][0]["units"]] == ["available"]
    again = client.post(
        "/v1/proofs",
        json={"member_email": "member@example.com", "order_id": rec.external_id, "postal_code": "40202"},
        headers=auth("website"),
    )
    assert again.json()["orders"][0]["status"] == "already_yours"


def test_a_wrong_factor_and_an_unknown_order_get_the_same_answer_after_the_minimum_delay(api):
    ctx, client = api
    _register(client)
    store_order(ctx, 3, purchased_at=recent(100))
    answers = []
    for body in (
        {"order_id": "#1003", "postal_code": "99999"},  # wrong factor
        {"order_id": "#1003", "order_email": "wrong@example.com"},  # wrong factor
        {"order_id": "#8888", "postal_code": "40202"},  # unknown order
    ):
        started = time.monotonic()
        res = client.post(
            "/v1/proofs", json={"member_email": "member@example.com", **body}, headers=auth("website")
        )
        answers.append((res.status_code, res.text, time.monotonic() - started))
    assert {(s, t) for s, t, _ in answers} == {(404, answers[0][1])}
    assert all(elapsed >= ctx.settings.proof_min_delay_ms / 1000 for _, _, elapsed in answers)
    with ctx.session_factory() as s:
        outcomes = [d.outcome for d in s.execute(select(ProofDecision)).scalars()]
    assert outcomes.count("refused") == 3


def test_an_unknown_member_is_told_to_register_first(api):
    ctx, client = api
    store_order(ctx, 4, purchased_at=recent(100))
    res = client.post(
        "/v1/proofs",
        json={"member_email": "nobody@example.com", "order_id": "1004", "postal_code": "40202"},
        headers=auth("website"),
    )
    assert res.status_code == 403 and "register first" in res.json()["message"]


def test_an_order_owned_by_another_member_links_nothing(api):
    ctx, client = api
    _register(client, "first@example.com")
    _register(client, "second@example.com")
    store_order(ctx, 5, source="amazon", store_key="amazon-na", purchased_at=recent(100))
    body = {"order_id": "111-0000005-0000001", "postal_code": "40202"}
    assert (
        client.post(
            "/v1/proofs", json={"member_email": "first@example.com", **body}, headers=auth("website")
        ).status_code
        == 200
    )
    res = client.post(
        "/v1/proofs", json={"member_email": "second@example.com", **body}, headers=auth("website")
    )
    assert res.status_code == 200
    [order] = res.json()["orders"]
    assert order["status"] == "other_member" and "units" not in order
    assert "contact support" in res.json()["message"]


def test_refused_attempts_are_rate_limited_per_order_identifier(db_url, tmp_path):
    r = redis.Redis.from_url(REDIS_URL)
    ns = new_namespace()
    ctx = make_context(
        db_url,
        tmp_path,
        ns,
        REDIS_URL,
        proof_rate_per_order=2,
        proof_min_delay_ms=100,
        proof_fetch_timeout_ms=100,
    )
    try:
        with client_for(ctx) as client:
            _register(client)
            body = {"member_email": "member@example.com", "order_id": "#4242", "postal_code": "11111"}
            codes = [
                client.post("/v1/proofs", json=body, headers=auth("website")).status_code for _ in range(2)
            ]
            # The full-width digits are the same identifier once normalized.
            limited = client.post(
                "/v1/proofs", json={**body, "order_id": "\uff14\uff12\uff14\uff12"}, headers=auth("website")
            )
            other = client.post("/v1/proofs", json={**body, "order_id": "#4243"}, headers=auth("website"))
        assert codes == [404, 404]
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        assert other.status_code == 404
        keys = [k.decode() for k in r.scan_iter(f"{ns}:*")]
        assert keys and not any("4242" in k for k in keys)
    finally:
        ctx.dispose()
        delete_namespace(r, ns)


def test_an_invoice_pdf_proves_the_order_when_id_postal_code_and_date_agree(api):
    ctx, client = api
    _register(client)
    rec = store_order(ctx, 6, purchased_at=recent(90))
    good = _invoice_pdf(
        "TESmart US - Order #1006",
        f"Date: {rec.purchase_date.strftime('%B %d, %Y')}",
        "Ship to: Louisville KY 40202",
    )
    res = client.post(
        "/v1/proofs",
        json={"member_email": "member@example.com", "invoice_pdf": good},
        headers=auth("website"),
    )
    assert res.status_code == 200, res.text
    assert res.json()["orders"][0]["status"] == "linked"
    wrong_date = _invoice_pdf("Order #1006", "Date: 2001-01-01", "40202")
    res = client.post(
        "/v1/proofs",
        json={"member_email": "member@example.com", "invoice_pdf": wrong_date},
        headers=auth("website"),
    )
    assert res.status_code == 404


@pytest.mark.parametrize(
    "payload, field",
    [
        (base64.b64encode(b"%PDF-1.7\n garbage that is not a pdf").decode(), "invoice_pdf"),
        (base64.b64encode(b"hello").decode(), "invoice_pdf"),
        ("not base64!!", "invoice_pdf"),
    ],
)
def test_a_malformed_invoice_is_a_clear_422(api, payload, field):
    _, client = api
    _register(client)
    res = client.post(
        "/v1/proofs",
        json={"member_email": "member@example.com", "invoice_pdf": payload},
        headers=auth("website"),
    )
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", field]


def test_an_image_only_invoice_is_refused_as_unreadable(api):
    _, client = api
    _register(client)
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 50, 50, style="F")
    res = client.post(
        "/v1/proofs",
        json={
            "member_email": "member@example.com",
            "invoice_pdf": base64.b64encode(bytes(pdf.output())).decode(),
        },
        headers=auth("website"),
    )
    assert res.status_code == 422 and "no text" in res.json()["detail"][0]["msg"]


def test_an_oversize_body_is_refused_with_413(db_url, tmp_path):
    ctx = make_context(db_url, tmp_path, new_namespace(), REDIS_URL, api_max_body_bytes=2048)
    try:
        with client_for(ctx) as client:
            res = client.post(
                "/v1/proofs",
                json={"member_email": "m@example.com", "invoice_pdf": "A" * 5000},
                headers=auth("website"),
            )
        assert res.status_code == 413
    finally:
        ctx.dispose()


def test_a_proof_needs_one_database_connection_even_when_the_rules_are_reloaded(pg_url, tmp_path):
    """Each web worker's pool is shared by its concurrent requests: a proof that held one
    connection and waited for a second (to reload the rules) could starve the pool until
    every request timed out. With a pool of exactly one connection, a proof still answers,
    whether the rules were never loaded or have just gone stale."""
    from sqlalchemy import create_engine

    from vipsync.workers.tagging import cached_rules

    r = redis.Redis.from_url(REDIS_URL)
    ns = new_namespace()
    ctx = make_context(pg_url, tmp_path, ns, REDIS_URL)
    # A pool of one: a second checkout while the first is held fails after 2 s.
    ctx.__dict__["engine"] = create_engine(pg_url, pool_size=1, max_overflow=0, pool_timeout=2)
    try:
        with client_for(ctx) as client:
            _register(client)
            ctx.__dict__.pop("_vipsync_rules", None)  # never loaded
            for n in (11, 12):
                store_order(ctx, n, purchased_at=recent(100))
                res = client.post(
                    "/v1/proofs",
                    json={
                        "member_email": "member@example.com",
                        "order_id": f"#{1000 + n}",
                        "postal_code": "40202",
                    },
                    headers=auth("website"),
                )
                assert res.status_code == 200, res.text
                assert res.json()["orders"][0]["status"] == "linked"
                loaded_at, rules = ctx.__dict__["_vipsync_rules"]
                ctx.__dict__["_vipsync_rules"] = (loaded_at - 3600, rules)  # stale for the next proof
            assert cached_rules(ctx) is not rules  # the stale copy was reloaded
    finally:
        ctx.dispose()
        delete_namespace(r, ns)
