"""`vipsync members|proofs|claims` through the real CLI entry point, on both databases."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.api_helpers import PII_KEY, recent, store_order
from vipsync.bootstrap import Context, set_context
from vipsync.cli.main import app
from vipsync.config.settings import Settings
from vipsync.store.models import Unit

runner = CliRunner()


@pytest.fixture
def cli_context(db_url, tmp_path, monkeypatch):
    """The process-wide context on the test database, with a PII key from the environment."""
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VIPSYNC_DATABASE_URL", db_url)
    monkeypatch.setenv("VIPSYNC_PII_KEY", PII_KEY)
    ctx = Context(settings=Settings(), database_url=db_url)
    set_context(ctx)
    yield ctx
    set_context(None)


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_register_prove_claim_and_list_decisions_from_the_cli(cli_context):
    context = cli_context
    reg = _run("members", "register", "--email", "cli@example.com", "--country", "DE")
    assert reg.exit_code == 0, reg.output
    member = json.loads(reg.output)["member"]
    rec = store_order(
        context, 7, source="amazon", store_key="amazon-eu", country="DE", purchased_at=recent(150)
    )
    refused = _run(
        "proofs",
        "verify",
        "--order",
        rec.external_id,
        "--member-email",
        "cli@example.com",
        "--postal-code",
        "99999",
        "--no-fetch",
    )
    assert refused.exit_code == 2 and json.loads(refused.output)["verified"] is False
    ok = _run(
        "proofs",
        "verify",
        "--order",
        rec.external_id,
        "--member-email",
        "cli@example.com",
        "--postal-code",
        "40202",
        "--no-fetch",
    )
    assert ok.exit_code == 0, ok.output
    [unit] = json.loads(ok.output)["orders"][0]["units"]
    assert unit["benefit_status"] == "available" and unit["member"] == member
    decisions = json.loads(_run("proofs", "list").output)
    assert [d["outcome"] for d in decisions] == ["linked", "refused"]
    assert "cli@example.com" not in _run("proofs", "list").output
    day = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    claim = _run("claims", "record", "--unit", str(unit["unit_id"]), "--kind", "trade_in", "--on", day)
    assert claim.exit_code == 0, claim.output
    assert json.loads(claim.output)["unit"]["benefit_status"] == "trade_in_used"
    shown = json.loads(_run("members", "show", "--email", "cli@example.com").output)
    assert shown["units"][0]["claim"]["kind"] == "trade_in"
    with context.session_factory() as s:
        assert s.execute(select(Unit.id)).scalar_one() == unit["unit_id"]
    erased = _run("members", "erase", "--email", "cli@example.com")
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["units"][0]["claim"]["kind"] == "trade_in"
    assert "cli@example.com" not in erased.output


def test_a_registration_from_outside_the_regions_exits_2_with_one_line(cli_context, tmp_path):
    context = cli_context
    env = {
        "VIPSYNC_PII_KEY": PII_KEY,
        "VIPSYNC_DATABASE_URL": context.database_url,
        "VIPSYNC_DATA_DIR": str(tmp_path / "d"),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vipsync.cli.main",
            "members",
            "register",
            "--email",
            "x@example.ch",
            "--country",
            "CH",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=120,
    )
    assert out.returncode == 2
    assert "registration refused" in out.stderr and "Traceback" not in out.stderr
    assert "x@example.ch" not in out.stderr + out.stdout
