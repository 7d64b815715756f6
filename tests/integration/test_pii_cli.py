"""``vipsync pii`` on both databases: a key rotation then ``rekey`` keeps every match; data
requests and erasure through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from sqlalchemy import select
from typer.testing import CliRunner

from vipsync.bootstrap import Context, set_context
from vipsync.cli.main import app
from vipsync.config.settings import Settings
from vipsync.connectors.records import MemberRecord, email_digest
from vipsync.devtools.factories import order_record
from vipsync.store.models import Member, Order, PrivacyRequest, UnitTag
from vipsync.store.repository import Repository
from vipsync.workers.tagging import tag_pending

OLD, NEW = "o" * 40, "n" * 40
EMAIL = "rotating@example.com"
runner = CliRunner()


def _ctx(db_url, monkeypatch, **env: str) -> Context:
    for name in ("VIPSYNC_PII_KEY", "VIPSYNC_PII_KEY_ID", "VIPSYNC_PII_RETIRED_KEYS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ctx = Context(settings=Settings(), database_url=db_url)
    set_context(ctx)
    return ctx


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _add_order(ctx, n: int) -> None:
    with ctx.session_factory() as s:
        Repository(s).upsert_orders(
            [order_record(n, email=EMAIL, purchased_at=datetime(2024, 3, n, 12, tzinfo=UTC))]
        )
        s.commit()


def test_a_rotated_key_then_rekey_keeps_every_order_member_match(context, db_url, monkeypatch):
    ctx = _ctx(db_url, monkeypatch, VIPSYNC_PII_KEY=OLD, VIPSYNC_PII_KEY_ID="k1")
    _add_order(ctx, 1)
    with ctx.session_factory() as s:
        Repository(s).upsert_members(
            [MemberRecord(email_hash=email_digest(EMAIL), registered_at=date(2024, 1, 1))]
        )
        s.commit()

    ctx = _ctx(
        db_url,
        monkeypatch,
        VIPSYNC_PII_KEY=NEW,
        VIPSYNC_PII_KEY_ID="k2",
        VIPSYNC_PII_RETIRED_KEYS=f"k1:{OLD}",
    )
    _add_order(ctx, 2)  # arrives after the rotation: digested through the chain, under k2
    status = _run("pii", "status")
    assert "current key id: k2" in status and "retired key ids: k1" in status
    assert "orders: k1: 1, k2: 1" in status and "members: k1: 1" in status and "pii rekey" in status

    moved = _run("pii", "rekey")
    assert "orders: 1" in moved and "members: 1" in moved
    status = _run("pii", "status")
    assert "orders: k2: 2" in status and "members: k2: 1" in status and "pii rekey" not in status
    assert "nothing to move" in _run("pii", "rekey")  # idempotent
    tag_pending(ctx)
    with ctx.session_factory() as s:
        member_id = s.execute(select(Member.id)).scalar_one()
        owners = set(s.execute(select(UnitTag.member_id)).scalars())
        keys = set(s.execute(select(Order.email_key_id)).scalars())
    assert owners == {member_id} and keys == {"k2"}  # both orders matched the member


def test_data_request_and_erase_through_the_cli(context, db_url, monkeypatch, tmp_path):
    ctx = _ctx(db_url, monkeypatch, VIPSYNC_PII_KEY=NEW)
    _add_order(ctx, 1)
    out = tmp_path / "export.json"
    assert "1 orders" in _run("pii", "data-request", "--email", EMAIL.upper(), "--out", str(out))
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert [o["order_id"] for o in json.loads(out.read_text())["orders"]] == ["1000001"]

    erased = _run("pii", "erase", "--email", EMAIL, "--yes")
    assert "1 order(s)" in erased
    assert json.loads(_run("pii", "data-request", "--email", EMAIL))["orders"] == []
    with ctx.session_factory() as s:
        kinds = [r.kind for r in s.execute(select(PrivacyRequest).order_by(PrivacyRequest.id)).scalars()]
    assert kinds == ["data_request", "erase", "data_request"]

    refused = runner.invoke(app, ["pii", "data-request"])
    assert refused.exit_code != 0


def test_without_the_key_the_web_app_and_the_cli_refuse_to_start_on_postgresql(pg_url, monkeypatch, tmp_path):
    import pytest

    from vipsync.api.app import create_app
    from vipsync.errors import ConfigError

    monkeypatch.delenv("VIPSYNC_PII_KEY", raising=False)
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIPSYNC_DATABASE_URL", pg_url)
    ctx = Context(settings=Settings(), database_url=pg_url)
    with pytest.raises(ConfigError, match="VIPSYNC_PII_KEY is not set"):
        create_app(ctx)
    set_context(ctx)
    try:
        result = runner.invoke(app, ["pii", "status"])
    finally:
        set_context(None)
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
