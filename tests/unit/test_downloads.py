"""Downloads: a private folder of the data folder, emptied after the job and at the next
start after a crash, never while the job that owns it is alive."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from vipsync.downloads import current_workspace, downloads_dir, open_private, sweep, workspace


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_workspace_is_private_and_gone_after_its_job_even_when_the_job_fails(tmp_path):
    try:
        with workspace(tmp_path) as ws:
            assert current_workspace() == ws
            with open_private(ws / "bulk.jsonl") as fh:
                fh.write(b'{"email": "ann@example.com"}\n')
            assert _mode(downloads_dir(tmp_path)) == 0o700 and _mode(ws) == 0o700
            assert _mode(ws / "bulk.jsonl") == 0o600
            raise RuntimeError("the job failed mid-import")
    except RuntimeError:
        pass
    assert current_workspace() is None
    assert list((tmp_path / "downloads").iterdir()) == []


def test_the_sweep_removes_what_a_dead_process_left_and_keeps_a_live_ones(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    root = downloads_dir(tmp_path)
    (root / f"{dead.stdout.strip()}-abcd1234").mkdir()
    (root / f"{dead.stdout.strip()}-abcd1234" / "report.tsv").write_text("buyer-email\tann@example.com\n")
    (root / "stray.jsonl").write_text("{}")
    with workspace(tmp_path) as live:
        assert sweep(tmp_path) == 2
        assert [p.name for p in root.iterdir()] == [live.name]
    assert sweep(tmp_path / "nothing-here") == 0
