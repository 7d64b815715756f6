"""Exit codes as a user sees them: 0 done, 2 an expected failure in one line, 1 a bug in
one line (the traceback only with --debug), never a traceback for bad data."""

from __future__ import annotations

import os
import subprocess
import sys

VIPSYNC = [sys.executable, "-m", "vipsync.cli.main"]


def _run(*args: str, env) -> subprocess.CompletedProcess:
    return subprocess.run([*VIPSYNC, *args], env=env, capture_output=True, text=True, timeout=120)


def _env(sqlite_url, tmp_path) -> dict[str, str]:
    return dict(
        os.environ, VIPSYNC_DATABASE_URL=sqlite_url, VIPSYNC_DATA_DIR=str(tmp_path / "data"), COLUMNS="200"
    )


def test_a_file_full_of_bad_records_exits_0_and_counts_them(sqlite_url, tmp_path):
    bad = tmp_path / "orders.jsonl"
    bad.write_text(
        '{"id": 1, "processed_at": "0001-01-01T00:00:00+05:00", "line_items": []}\n'
        '{"id": 2, "processed_at": "2025-01-01T00:00:00Z", "discount_codes": 7}\n'
        '{"id": 3, "processed_at": "2025-01-01T00:00:00Z", "total_price": "sNaN"}\n'
        "[1, 2\n"
    )
    out = _run("import", "shopify", "--store", "shopify-us", str(bad), env=_env(sqlite_url, tmp_path))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "4 record(s) rejected" in out.stderr


def test_an_expected_failure_is_one_line_and_exit_2(sqlite_url, tmp_path):
    notjson = tmp_path / "orders.json"
    notjson.write_text("hello")
    out = _run("import", "shopify", "--store", "shopify-us", str(notjson), env=_env(sqlite_url, tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error:") and len(out.stderr.strip().splitlines()) == 1
    debug = _run(
        "--debug", "import", "shopify", "--store", "shopify-us", str(notjson), env=_env(sqlite_url, tmp_path)
    )
    assert debug.returncode == 2 and "Traceback" in debug.stderr


BOOM = """
import sys
from vipsync.cli import main as cli

@cli.app.command("boom")
def boom() -> None:
    raise RuntimeError("buyer@example.com is in this message")

sys.argv = ["vipsync", *sys.argv[1:], "boom"]
cli.main()
"""


def test_a_bug_is_one_line_without_its_message_and_exit_1_and_debug_shows_the_traceback(sqlite_url, tmp_path):
    env = _env(sqlite_url, tmp_path)
    out = subprocess.run([sys.executable, "-c", BOOM], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and "RuntimeError" in out.stderr
    assert "a bug" in out.stderr and "buyer@example.com" not in out.stderr and "Traceback" not in out.stderr
    debug = subprocess.run(
        [sys.executable, "-c", BOOM, "--debug"], env=env, capture_output=True, text=True, timeout=60
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr
