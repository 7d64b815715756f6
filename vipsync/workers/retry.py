"""The retry policy of the workers, as pure functions (no I/O, no clock).

- transient errors (:class:`TransientSourceError`, :class:`RateLimited`, a dropped database
  or Redis connection, a busy lock) are retried with exponential backoff, up to the
  transient limit;
- permanent errors (:class:`PermanentSourceError`, :class:`ConfigError`, a malformed
  record that escaped the batch) go straight to the dead-letter queue;
- anything else (a bug) is retried a few times, then dead-lettered.
"""

from __future__ import annotations

import random

from vipsync.errors import (
    ConfigError,
    LockNotAcquired,
    PermanentSourceError,
    RateLimited,
    RecordError,
    TransientSourceError,
)

__all__ = [
    "PERMANENT",
    "TRANSIENT",
    "UNKNOWN",
    "backoff_ms",
    "classify",
    "error_summary",
    "retry_after_of",
    "should_retry",
]

TRANSIENT = "transient"
PERMANENT = "permanent"
UNKNOWN = "unknown"

#: Bugs and unexpected errors get this many retries at most (transient ones get ``max_retries``).
UNKNOWN_MAX_RETRIES = 3


def _root(exc: BaseException) -> BaseException:
    """The error a dramatiq ``Retry`` wraps (we raise it ``from`` the real cause)."""
    seen = 0
    while type(exc).__name__ == "Retry" and exc.__cause__ is not None and seen < 5:
        exc = exc.__cause__
        seen += 1
    return exc


def classify(exc: BaseException) -> str:
    """``transient``, ``permanent`` or ``unknown``."""
    exc = _root(exc)
    if isinstance(exc, (PermanentSourceError, ConfigError, RecordError)):
        return PERMANENT
    if isinstance(exc, (TransientSourceError, LockNotAcquired)):
        return TRANSIENT
    names = {cls.__module__.split(".")[0] + "." + cls.__name__ for cls in type(exc).__mro__}
    # A database or broker outage: retry once it is back. Matched by name so this module
    # stays free of SQLAlchemy and redis imports.
    if names & {
        "sqlalchemy.OperationalError",
        "sqlalchemy.InterfaceError",
        "sqlalchemy.DisconnectionError",
        "redis.ConnectionError",
        "redis.TimeoutError",
        "dramatiq.ConnectionError",
        "builtins.ConnectionError",
        "builtins.TimeoutError",
    }:
        return TRANSIENT
    return UNKNOWN


def should_retry(retries: int, exc: BaseException, *, max_retries: int) -> bool:
    """Whether a message that failed ``retries`` times before this failure goes back on
    the queue (False sends it to the dead-letter queue)."""
    kind = classify(exc)
    if kind == PERMANENT:
        return False
    if kind == TRANSIENT:
        return retries < max_retries
    return retries < min(max_retries, UNKNOWN_MAX_RETRIES)


def backoff_ms(
    retries: int,
    *,
    min_backoff_ms: int,
    max_backoff_ms: int = 15 * 60_000,
    retry_after_s: float | None = None,
    jitter: random.Random | None = None,
) -> int:
    """The delay before retry number ``retries + 1``: what the source asked for
    (``Retry-After``), else exponential from ``min_backoff_ms`` with up to 10% jitter."""
    if retry_after_s is not None and retry_after_s > 0:
        return int(min(retry_after_s * 1000, max_backoff_ms))
    base = min(min_backoff_ms * (2 ** min(retries, 30)), max_backoff_ms)
    rnd = jitter or random
    return int(base + rnd.uniform(0, base * 0.1))


def error_summary(exc: BaseException) -> str:
    """One line for the dead-letter queue and the logs: the error's type and message.
    Our errors never carry personal data; a foreign error keeps only its type name and
    the first 300 characters of its message."""
    exc = _root(exc)
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def retry_after_of(exc: BaseException) -> float | None:
    """The delay a rate limit asked for, if any."""
    exc = _root(exc)
    return exc.retry_after_s if isinstance(exc, RateLimited) else None
