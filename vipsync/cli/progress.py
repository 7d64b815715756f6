"""Progress on long work: a bar on a terminal, nothing when output is piped or logged."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["console", "err_console", "interactive", "open_with_progress", "progress_bar"]

console = Console()
err_console = Console(stderr=True)


def interactive() -> bool:
    return err_console.is_terminal and os.environ.get("CI") != "true"


class _CountingReader:
    """A binary file wrapper that reports its position to a progress task. It stays
    seekable when the file is (a reader may go back to re-read part of a file)."""

    def __init__(self, raw: IO[bytes], moved_to) -> None:
        self._raw = raw
        self._moved_to = moved_to

    def _report(self, data: bytes) -> bytes:
        self._moved_to(self._raw.tell())
        return data

    def read(self, size: int = -1) -> bytes:
        return self._report(self._raw.read(size))

    def read1(self, size: int = -1) -> bytes:
        return self._report(self._raw.read1(size) if hasattr(self._raw, "read1") else self._raw.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._report(self._raw.readline(size))

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = self._raw.seek(offset, whence)
        self._moved_to(pos)
        return pos

    def tell(self) -> int:
        return self._raw.tell()

    def writable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def close(self) -> None:
        self._raw.close()

    def flush(self) -> None:
        pass


@contextmanager
def open_with_progress(path: Path, description: str) -> Iterator[IO[bytes]]:
    """Open ``path`` for reading in binary; on a terminal, show bytes read against its size."""
    with open(path, "rb") as fh:
        if not interactive():
            yield fh
            return
        total = os.path.getsize(path)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        ) as bar:
            task = bar.add_task(description, total=total)
            reader = _CountingReader(fh, lambda pos: bar.update(task, completed=pos))
            yield reader  # type: ignore[misc]


@contextmanager
def progress_bar(description: str, total: int | None = None):
    """A counter bar (records, pages, API calls). Yields ``advance(n=1, total=None)``."""
    if not interactive():
        yield lambda n=1, total=None: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, total: int | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.advance(task, n)

        yield advance
