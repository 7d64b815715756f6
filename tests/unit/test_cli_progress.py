"""The progress wrapper reports the file position and keeps the file seekable."""

from __future__ import annotations

import io

from vipsync.cli.progress import _CountingReader


def test_counting_reader_reports_position_and_seeks_back():
    positions: list[int] = []
    reader = _CountingReader(io.BytesIO(b"line one\nline two\n"), positions.append)
    assert reader.readline() == b"line one\n"
    assert reader.read(4) == b"line"
    assert reader.seekable()
    reader.seek(0)
    assert list(reader) == [b"line one\n", b"line two\n"]
    assert positions[:3] == [9, 13, 0] and positions[-1] == 18
