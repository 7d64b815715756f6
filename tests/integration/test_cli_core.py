"""The core commands through the real CLI entry point (typer), on both databases."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vipsync.cli.main import app, main

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_members_import_prints_counts_and_lists_rejects_without_personal_data(context, tmp_path):
    f = tmp_path / "members.csv"
    f.write_text("email,registered_at,country\nok@example.com,2024-01-01,US\nbad@example.com,2024-13-01,US\n")
    result = _run("members", "import", str(f))
    assert result.exit_code == 0, result.output
    assert "inserted" in result.output and "rejected" in result.output
    listed = _run("errors", "list", "--format", "json")
    rows = json.loads(listed.output)
    assert [(r["source"], r["record_id"], r["field"]) for r in rows] == [
        ("members", "line 3", "registered_at")
    ]
    assert "bad@example.com" not in listed.output


def test_replay_of_a_still_bad_record_keeps_it_open_and_drop_closes_it(context, tmp_path):
    f = tmp_path / "members.csv"
    f.write_text("email,registered_at\nbad@example.com,someday\n")
    _run("members", "import", str(f))
    replay = _run("errors", "replay")
    assert "still_failing" in replay.output
    error_id = json.loads(_run("errors", "list", "--format", "json").output)[0]["id"]
    _run("errors", "drop", str(error_id))
    assert json.loads(_run("errors", "list", "--format", "json").output) == []
    assert len(json.loads(_run("errors", "list", "--status", "dropped", "--format", "json").output)) == 1


def test_unreadable_file_exits_non_zero_with_a_clear_message(context, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["vipsync", "members", "import", str(tmp_path / "missing.csv")])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "no such file" in capsys.readouterr().err


def test_members_file_without_required_columns_is_refused_whole(context, tmp_path, monkeypatch, capsys):
    f = tmp_path / "members.csv"
    f.write_text("mail,date\nx@example.com,2024-01-01\n")
    monkeypatch.setattr("sys.argv", ["vipsync", "members", "import", str(f)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "missing column(s) email, registered_at" in capsys.readouterr().err
