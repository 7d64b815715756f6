"""What a long run of writes (a file import, a store sync) does beside writing.

- :func:`older_objects_frozen`: the objects that exist before the run are left out of the
  garbage collector's full collections while it runs.
- :func:`follow_growth`: on PostgreSQL the tables a run looks keys up in are analyzed as
  the run fills them, so the planner keeps using their indexes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from vipsync.store.db import refresh_statistics

__all__ = ["ANALYZE_FIRST", "follow_growth", "older_objects_frozen"]

ANALYZE_FIRST = 1_000  # rows a run inserts before it first refreshes the planner's statistics


def follow_growth(factory: sessionmaker[Session], before: int, after: int) -> None:
    """Refresh the planner's statistics (:func:`vipsync.store.db.refresh_statistics`) when
    the rows a run has inserted went from ``before`` to ``after`` across 1,000, 2,000, 4,000,
    ... (``ANALYZE_FIRST`` and each doubling). Without statistics (a store being filled,
    autovacuum not yet come by, or off) PostgreSQL filtered every order of the store for
    each batch's key lookups, a cost that grew with every batch."""
    if _stage(after) > _stage(before):
        refresh_statistics(factory)


def _stage(inserted: int) -> int:
    """0 below ANALYZE_FIRST rows; then 1, 2, 3... from ANALYZE_FIRST, twice it, four times it..."""
    return 0 if inserted < ANALYZE_FIRST else (inserted // ANALYZE_FIRST).bit_length()


@contextmanager
def older_objects_frozen() -> Iterator[None]:
    """The objects that exist before a run (modules, the ORM's mappings, the settings) are
    left out of the cyclic garbage collector's full collections while it runs
    (``gc.freeze``), and handed back to it at the end (``gc.unfreeze``). A run makes many
    short-lived containers (each order's parsed JSON); the full collections they trigger
    walked every older object too, about a tenth of an import's CPU time. Nothing is kept
    longer: the run's own garbage is collected as before. Objects frozen already (by a
    server that forks, or by a run this one is part of) are left as they are."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
