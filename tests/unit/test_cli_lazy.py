"""The lazy command registry: `vipsync --help` lists every command without importing the
command modules, each entry matches what its module really registers, and a command
imports only what it uses."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from vipsync.cli.main import COMMANDS, _help_line, app, load_all

HEAVY = (
    "sqlalchemy",
    "dramatiq",
    "fastapi",
    "sp_api",
    "shopify",
    "psycopg",
    "vipsync.store",
    "vipsync.bootstrap",
)


def _modules_after(*argv: str) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['vipsync', *{list(argv)!r}]\n"
        "from vipsync.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stderr.split())


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


def test_every_registered_command_has_an_entry_with_its_help_line():
    tree = load_all()
    entries = {entry.name for entry in COMMANDS}
    assert set(tree.commands) == entries
    for name, command in tree.commands.items():
        assert _help_line(name) == command.get_short_help_str(limit=10_000), name


def test_help_lists_every_command_and_imports_no_command_module():
    modules = _modules_after("--help")
    assert _heavy(modules) == []
    assert not [m for m in modules if m.startswith("vipsync.cli.commands_")]
    shown = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert shown.exit_code == 0
    for entry in COMMANDS:
        assert f" {entry.name} " in shown.output


def test_a_command_imports_only_its_own_modules():
    modules = _modules_after("api", "token", "new", "caller", "--scope", "read")
    assert "vipsync.cli.commands_api" in modules
    # The token helpers live beside the API's FastAPI dependency; nothing else heavy.
    assert [m for m in _heavy(modules) if not m.startswith("fastapi")] == []
    assert "vipsync.cli.commands_workers" not in modules


def test_a_group_lists_the_commands_of_every_module_behind_it():
    shown = CliRunner().invoke(app, ["sync", "--help"], terminal_width=200)
    assert shown.exit_code == 0
    assert "shopify" in shown.output and "amazon" in shown.output


def test_unknown_command_is_a_usage_error():
    shown = CliRunner().invoke(app, ["no-such-command"])
    assert shown.exit_code == 2
