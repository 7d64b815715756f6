"""Hostile request bodies on every /v1 route: a clear 4xx naming the field, never a 500
or a traceback, and nothing stored that was not asked for."""

from __future__ import annotations

import os

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_helpers import auth, client_for, make_context
from vipsync.devtools.worker_procs import delete_namespace, new_namespace

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

ROUTES = (
    "/v1/members",
    "/v1/members/exit",
    "/v1/members/lookup",
    "/v1/proofs",
    "/v1/claims",
    "/v1/units/1/trade-in-quotes",
)
FIELDS = (
    "email",
    "country",
    "registered_on",
    "reason",
    "member_email",
    "order_id",
    "order_email",
    "postal_code",
    "invoice_pdf",
    "store",
    "unit_id",
    "kind",
    "on",
    "ship_date",
    "sku",
    "list_price",
    "currency",
    "exited_on",
)
hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80
) | st.sampled_from(
    ["#1001", "111-0000001-0000001", "a@b.co", "US", "2026-01-01", "\x00", "é@ü.de", "-1", "1e309"]
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text,
    st.lists(hostile_text, max_size=3),
    st.dictionaries(hostile_text, hostile_text, max_size=2),
)
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6) | st.lists(values, max_size=3) | values


@pytest.fixture(scope="module")
def hostile_api(tmp_path_factory, _sqlite_template):
    import shutil

    tmp = tmp_path_factory.mktemp("hostile")
    shutil.copy(_sqlite_template, tmp / "db.sqlite3")
    ns = new_namespace()
    ctx = make_context(
        f"sqlite:///{tmp / 'db.sqlite3'}",
        tmp,
        ns,
        REDIS_URL,
        proof_min_delay_ms=100,
        proof_fetch_timeout_ms=100,
    )
    with client_for(ctx) as client:
        yield client
    ctx.dispose()
    delete_namespace(redis.Redis.from_url(REDIS_URL), ns)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=bodies, scope=st.sampled_from(["website", "support"]))
def test_hostile_bodies_get_a_clear_client_error_never_a_500(hostile_api, route, body, scope):
    res = hostile_api.post(route, json=body, headers=auth(scope))
    assert res.status_code < 500 or res.status_code == 503, res.text
    assert "Traceback" not in res.text
    if res.status_code == 422:
        detail = res.json()["detail"]
        assert isinstance(detail, str) or all("loc" in d and "msg" in d for d in detail)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"NaN", b"Infinity", b"\xff\xfe\x00", b"[]", b'{"email": "a@b.co", "country": "US"' + b" " * 10],
)
@pytest.mark.parametrize("route", ROUTES)
def test_malformed_json_gets_a_client_error_never_a_500(hostile_api, route, raw):
    res = hostile_api.post(
        route, content=raw, headers={**auth("support"), "Content-Type": "application/json"}
    )
    # Undecodable bytes are FastAPI's 400 "error parsing the body"; JSON that parses is a 422.
    assert res.status_code == (400 if raw.startswith(b"\xff") else 422), res.text
    assert "detail" in res.json()


def test_a_field_error_names_the_field_and_never_echoes_the_value(hostile_api):
    res = hostile_api.post(
        "/v1/members", json={"email": "secret.person@example.com", "country": 12}, headers=auth("support")
    )
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "country"]
    assert "secret.person" not in res.text
