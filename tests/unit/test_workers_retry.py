"""The retry policy: which failures are retried, which go to the dead-letter queue."""

from __future__ import annotations

import random

import dramatiq
import pytest
from sqlalchemy.exc import OperationalError

from vipsync.errors import (
    ConfigError,
    LockNotAcquired,
    PermanentSourceError,
    RateLimited,
    TransientSourceError,
)
from vipsync.workers.retry import (
    PERMANENT,
    TRANSIENT,
    UNKNOWN,
    UNKNOWN_MAX_RETRIES,
    backoff_ms,
    classify,
    error_summary,
    retry_after_of,
    should_retry,
)


@pytest.mark.parametrize(
    "exc, kind",
    [
        (TransientSourceError("502 from shop"), TRANSIENT),
        (RateLimited("429", retry_after_s=2.0), TRANSIENT),
        (LockNotAcquired("busy"), TRANSIENT),
        (OperationalError("select 1", {}, Exception("connection refused")), TRANSIENT),
        (PermanentSourceError("401 bad token"), PERMANENT),
        (ConfigError("no such store"), PERMANENT),
        (KeyError("bug"), UNKNOWN),
    ],
)
def test_errors_are_classified_by_what_a_retry_can_fix(exc, kind):
    assert classify(exc) == kind


def test_transient_errors_are_retried_up_to_the_limit_then_dead_lettered():
    exc = TransientSourceError("timeout")
    assert all(should_retry(n, exc, max_retries=5) for n in range(5))
    assert not should_retry(5, exc, max_retries=5)


def test_permanent_errors_are_never_retried():
    assert not should_retry(0, PermanentSourceError("403"), max_retries=10)
    assert not should_retry(0, ConfigError("bad stores file"), max_retries=10)


def test_bugs_get_a_few_retries_only():
    exc = ZeroDivisionError()
    assert should_retry(UNKNOWN_MAX_RETRIES - 1, exc, max_retries=20)
    assert not should_retry(UNKNOWN_MAX_RETRIES, exc, max_retries=20)


def test_a_dramatiq_retry_is_judged_by_the_error_it_wraps():
    try:
        try:
            raise PermanentSourceError("gone")
        except PermanentSourceError as cause:
            raise dramatiq.Retry("wrapped", delay=10) from cause
    except dramatiq.Retry as exc:
        assert classify(exc) == PERMANENT
        assert error_summary(exc) == "PermanentSourceError: gone"


def test_backoff_doubles_from_the_minimum_and_is_capped():
    rnd = random.Random(1)
    delays = [backoff_ms(n, min_backoff_ms=1000, max_backoff_ms=10_000, jitter=rnd) for n in range(6)]
    assert 1000 <= delays[0] <= 1100
    assert 2000 <= delays[1] <= 2200
    assert 4000 <= delays[2] <= 4400
    assert all(10_000 <= d <= 11_000 for d in delays[4:])


def test_backoff_honours_the_sources_retry_after():
    assert backoff_ms(3, min_backoff_ms=1000, retry_after_s=2.5) == 2500
    assert retry_after_of(RateLimited("slow down", retry_after_s=4.0)) == 4.0
    assert retry_after_of(TransientSourceError("x")) is None
