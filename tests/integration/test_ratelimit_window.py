"""The sliding windows of the proof API's rate limits on the real Redis: the one-command
check (a script) answers what the window's definition gives, for any history of events."""

from __future__ import annotations

import os

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vipsync.devtools.worker_procs import delete_namespace, new_namespace
from vipsync.workers.ratelimit import SlidingWindow

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WINDOW = 600
NOW = 1_800_000_000.0


@pytest.fixture
def window():
    client = redis.Redis.from_url(REDIS_URL)
    ns = new_namespace()
    yield SlidingWindow(client, namespace=ns, window_s=WINDOW)
    delete_namespace(client, ns)
    client.close()


def test_under_the_limit_no_wait_at_the_limit_the_oldest_event_decides(window):
    keys = [("token", "t", 3), ("order", "o", 2)]
    assert window.retry_after_many(keys, now=NOW) == 0
    window.hit_many(keys, now=NOW - 500)
    window.hit_many(keys, now=NOW - 100)
    # The order key is at its limit: its oldest event leaves the window in 100 s.
    assert window.retry_after_many(keys, now=NOW) == 100
    # Past that event's window, both are under their limits again.
    assert window.retry_after_many(keys, now=NOW + 101) == 0
    assert window.retry_after_many([("order", "o", 1)], now=NOW + 101) == 399


def test_a_limit_of_zero_waits_a_whole_window_on_an_empty_key(window):
    assert window.retry_after_many([("address", "a", 0)], now=NOW) == WINDOW


def _expected_wait(times: list[float], limit: int) -> int:
    """The definition: events older than the window are gone; at the limit, wait until
    the oldest event left leaves it (a whole window when there is none)."""
    left = [t for t in times if t > NOW - WINDOW]
    if len(left) < limit:
        return 0
    first = min(left, default=NOW)
    return max(1, int(first + WINDOW - NOW + 0.999))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 2 * WINDOW)), max_size=12),
    limits=st.tuples(*(st.integers(0, 4) for _ in range(3))),
)
def test_the_one_command_check_follows_the_windows_definition(window, events, limits):
    window.client.delete(*(window._key("k", d) for d in "abc"))
    for digest, age in events:
        window.hit_many([("k", digest, 0)], now=NOW - age)
    entries = [("k", d, limit) for d, limit in zip("abc", limits, strict=True)]
    expected = max(
        _expected_wait([NOW - age for digest, age in events if digest == d], limit) for _, d, limit in entries
    )
    assert window.retry_after_many(entries, now=NOW) == expected
