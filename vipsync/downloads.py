"""Where downloads live: ``VIPSYNC_DATA_DIR/downloads``, readable by the owner only.

A Shopify bulk result or an Amazon report holds buyers' personal data until it is mapped,
so it is written only here: the folder is ``0700``, each file ``0600``. Every download
belongs to a workspace ``downloads/<pid>-<token>/`` removed as soon as its job has
committed what it read (or failed). A process killed mid-download leaves its workspace
behind; :func:`sweep` (run at every start of the CLI, the web app and the workers) removes
workspaces whose process is gone, and never those of a live process.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["current_workspace", "downloads_dir", "open_private", "sweep", "workspace"]

DIR_MODE = 0o700
FILE_MODE = 0o600

_current: contextvars.ContextVar[Path | None] = contextvars.ContextVar("vipsync_workspace", default=None)


def current_workspace() -> Path | None:
    """The workspace of the running job, for scratch files of its own (the bulk join
    database); None outside :func:`workspace`."""
    return _current.get()


def downloads_dir(data_dir: Path | str) -> Path:
    """``data_dir/downloads``, made (or tightened to) ``0700``."""
    path = Path(data_dir) / "downloads"
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


@contextlib.contextmanager
def workspace(data_dir: Path | str) -> Iterator[Path]:
    """A private folder for one job's downloads, removed with everything in it on exit."""
    path = downloads_dir(data_dir) / f"{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir(mode=DIR_MODE)
    token = _current.set(path)
    try:
        yield path
    finally:
        _current.reset(token)
        shutil.rmtree(path, ignore_errors=True)


def open_private(path: Path | str, mode: str = "wb"):
    """Open a new file for writing, readable and writable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    return os.fdopen(fd, mode)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep(data_dir: Path | str) -> int:
    """Remove what crashed jobs left in the downloads folder; returns the entries removed.
    A workspace of a live process is kept; a stray file (no workspace) is removed."""
    root = Path(data_dir) / "downloads"
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        pid_text = entry.name.split("-", 1)[0]
        if entry.is_dir() and pid_text.isdigit() and _alive(int(pid_text)):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed
