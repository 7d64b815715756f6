"""Guards of ``POST /v1/proofs`` through the real app, on SQLite and PostgreSQL with the
real Redis: a database that cannot be reached answers 503 "try again later" without a
traceback, and only a trusted proxy token may name the end-user address the rate limit
counts."""

from __future__ import annotations

import logging
import os

import pytest
import redis

from tests.api_helpers import auth, client_for, make_context
from vipsync.devtools.worker_procs import delete_namespace, new_namespace

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def namespace():
    r = redis.Redis.from_url(REDIS_URL)
    ns = new_namespace()
    yield ns
    delete_namespace(r, ns)


def _unreachable(db_url: str, tmp_path) -> str:
    """A URL of the same kind whose database cannot be reached."""
    if db_url.startswith("sqlite"):
        (tmp_path / "a-folder").mkdir()  # SQLite cannot open a folder as its database
        return f"sqlite:///{tmp_path}/a-folder"
    return "postgresql+psycopg://postgres@127.0.0.1:1/vipsync_unreachable?connect_timeout=2"


def test_a_database_that_cannot_be_reached_answers_503_try_again_later_without_a_traceback(
    db_url, tmp_path, namespace, caplog
):
    ctx = make_context(_unreachable(db_url, tmp_path), tmp_path, namespace, REDIS_URL)
    caplog.set_level(logging.WARNING)
    try:
        with client_for(ctx) as client:
            proof = client.post(
                "/v1/proofs",
                json={"member_email": "m@example.com", "order_id": "#1001", "postal_code": "40202"},
                headers=auth("website"),
            )
            member = client.post(
                "/v1/members", json={"email": "m@example.com", "country": "US"}, headers=auth("website")
            )
    finally:
        ctx.dispose()
    assert proof.status_code == 503, proof.text
    assert proof.json() == {"verified": False, "message": proof.json()["message"]}
    assert "try again later" in proof.json()["message"] and int(proof.headers["Retry-After"]) > 0
    assert member.status_code == 503 and "try again later" in member.json()["detail"]
    assert int(member.headers["Retry-After"]) > 0
    assert "Traceback" not in proof.text + member.text
    warnings = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(warnings) == 2
    assert all(r.exc_info is None for r in caplog.records)
    assert "m@example.com" not in caplog.text


@pytest.mark.parametrize("trusted", [False, True])
def test_only_a_trusted_proxy_token_names_the_end_user_address_the_limit_counts(
    db_url, tmp_path, namespace, trusted
):
    ctx = make_context(
        db_url,
        tmp_path,
        namespace,
        REDIS_URL,
        proof_rate_per_address=2,
        proof_min_delay_ms=100,
        proof_fetch_timeout_ms=100,
        api_trusted_proxy_tokens="website-client" if trusted else "",
    )
    try:
        with client_for(ctx) as client:
            res = client.post(
                "/v1/members", json={"email": "m@example.com", "country": "US"}, headers=auth("website")
            )
            assert res.status_code == 201, res.text
            codes = []
            for i in range(4):  # four unknown orders, each "from" another visitor
                res = client.post(
                    "/v1/proofs",
                    json={
                        "member_email": "m@example.com",
                        "order_id": f"#{7000 + i}",
                        "postal_code": "40202",
                    },
                    headers={**auth("website"), "X-End-User-Address": f"203.0.113.{i}"},
                )
                codes.append(res.status_code)
            # The support token is not a trusted proxy: its header never moves its key.
            support = [
                client.post(
                    "/v1/proofs",
                    json={
                        "member_email": "m@example.com",
                        "order_id": f"#{8000 + i}",
                        "postal_code": "40202",
                    },
                    headers={**auth("support"), "X-End-User-Address": f"198.51.100.{i}"},
                ).status_code
                for i in range(2)
            ]
    finally:
        ctx.dispose()
    if trusted:
        # Each forwarded visitor has its own count; the peer (the proxy) is not limited by them.
        assert codes == [404, 404, 404, 404]
        assert support == [404, 404]
    else:
        # Every request counts under the peer's address, whatever the header says.
        assert codes == [404, 404, 429, 429]
        assert support == [429, 429]
