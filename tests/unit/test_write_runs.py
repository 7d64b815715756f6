"""workers/runs.py: what a long run of writes does beside writing."""

from __future__ import annotations

import gc
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipsync.workers import runs


@given(st.lists(st.integers(min_value=0, max_value=6_000), max_size=40))
def test_the_statistics_are_refreshed_after_each_page_that_crosses_a_doubling(pages):
    """Refreshed after a page that takes the run's inserted rows past 1,000, 2,000, 4,000...
    (once, even when one page crosses two of them), and after no other page."""
    thresholds = [runs.ANALYZE_FIRST * 2**k for k in range(30)]
    expected = []
    calls: list[int] = []
    inserted = 0
    with mock.patch.object(runs, "refresh_statistics", lambda factory: calls.append(inserted)):
        for n in pages:
            before, inserted = inserted, inserted + n
            if any(before < t <= inserted for t in thresholds):
                expected.append(inserted)
            runs.follow_growth(None, before, inserted)  # type: ignore[arg-type]
    assert calls == expected


def test_older_objects_are_frozen_inside_a_run_and_handed_back_even_when_it_fails():
    assert gc.get_freeze_count() == 0
    with runs.older_objects_frozen():
        assert gc.get_freeze_count() > 0
        with runs.older_objects_frozen():  # a run inside a run leaves the freeze to the outer one
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), runs.older_objects_frozen():
        raise RuntimeError("the run broke")
    assert gc.get_freeze_count() == 0
