"""Shared builders of the /v1 API tests: a context with tokens, a PII key, a Redis
namespace of its own, and orders written through the normal write path."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from vipsync.api.app import create_app
from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.devtools.factories import order_record
from vipsync.store.writer import write_batch

TOKENS = {
    "website": "tok-website-0123456789",
    "support": "tok-support-0123456789",
    "read": "tok-read-0123456789",
}
PII_KEY = "test-pii-key-0123456789-0123456789-0123456789"


def token_setting() -> str:
    return ",".join(
        f"{scope}-client:{scope}:{hashlib.sha256(tok.encode()).hexdigest()}" for scope, tok in TOKENS.items()
    )


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


def make_context(db_url: str, tmp_path: Path, namespace: str, redis_url: str, **overrides) -> Context:
    values = {
        "data_dir": tmp_path / "data",
        "database_url": db_url,
        "redis_url": redis_url,
        "broker_namespace": namespace,
        "pii_key": PII_KEY,
        "api_tokens": token_setting(),
        "proof_min_delay_ms": 200,
        "proof_fetch_timeout_ms": 200,
        **overrides,
    }
    return Context(settings=Settings(**values), database_url=db_url)


def client_for(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx), raise_server_exceptions=False)


def recent(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def store_order(ctx: Context, n: int, *, email: str = "buyer@example.com", **kw):
    """An order written through the repository (which keys its e-mail digest)."""
    rec = order_record(n, email=email, **kw)
    write_batch(ctx.session_factory, [rec])
    return rec
