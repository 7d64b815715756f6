"""The import job: stream mapped records into the store in batches.

Readers (``connectors.*``) yield :class:`OrderRecord`, :class:`MemberRecord` or
:class:`Rejected`; this job writes records in batches, sends rejects to the import-error
table, and counts everything, through the one writer (:mod:`vipsync.store.writer`): one bad
record never stops the batch; a batch that fails to write is retried record by record so
the culprit alone is rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from vipsync.connectors.records import MemberRecord, OrderFact, OrderRecord, Rejected
from vipsync.store.repository import Repository, UpsertCounts
from vipsync.store.writer import write_page
from vipsync.workers.runs import follow_growth, older_objects_frozen

__all__ = ["ImportSummary", "import_facts", "import_records"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class ImportSummary:
    """The counts every import prints at the end."""

    run_id: int
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
        }


def import_records(
    factory: sessionmaker[Session],
    items: Iterable[OrderRecord | MemberRecord | OrderFact | Rejected],
    *,
    kind: str,
    store_key: str | None,
    source_name: str = "",
    batch_size: int = 500,
    on_batch: Callable[[ImportSummary], None] | None = None,
    done_message: str = "import finished",
) -> ImportSummary:
    """Write ``items`` to the store; returns the counts. ``kind`` names the source in the
    import-error table (``shopify``, ``amazon-report``, ``members``)."""

    def write(batch: list[OrderRecord | MemberRecord | OrderFact | Rejected], summary: ImportSummary) -> None:
        before = summary.inserted
        outcome = write_page(factory, batch, source=kind, store_key=store_key, run_id=summary.run_id)
        summary.read += outcome.read
        summary.inserted += outcome.inserted
        summary.updated += outcome.updated
        summary.unchanged += outcome.unchanged
        summary.rejected += outcome.rejected
        follow_growth(factory, before, summary.inserted)
        if on_batch:
            on_batch(summary)

    return _run_in_batches(
        factory,
        items,
        write,
        kind=kind,
        store_key=store_key,
        source_name=source_name,
        batch_size=batch_size,
        done_message=done_message,
    )


def _run_in_batches(
    factory: sessionmaker[Session],
    items: Iterable[T],
    write: Callable[[list[T], ImportSummary], None],
    *,
    kind: str,
    store_key: str | None,
    source_name: str,
    batch_size: int,
    done_message: str,
) -> ImportSummary:
    """One import run: ``items`` handed to ``write`` in batches of ``batch_size``, the run
    recorded in the store as done, or as failed when anything escapes."""
    with factory() as session:
        run_id = Repository(session).start_run(kind, store_key=store_key, source_name=source_name)
        session.commit()
    summary = ImportSummary(run_id=run_id)
    batch: list[T] = []
    try:
        with older_objects_frozen():
            for item in items:
                batch.append(item)
                if len(batch) >= batch_size:
                    write(batch, summary)
                    batch = []
            if batch:
                write(batch, summary)
    except BaseException:
        _finish(factory, run_id, summary, status="failed")
        raise
    _finish(factory, run_id, summary, status="done")
    log.info(done_message, extra={"kind": kind, "store": store_key, **summary.as_dict()})
    return summary


def _finish(factory, run_id: int, summary: ImportSummary, *, status: str) -> None:
    with factory() as session:
        counts = UpsertCounts(inserted=summary.inserted, updated=summary.updated, unchanged=summary.unchanged)
        Repository(session).finish_run(
            run_id, counts, read=summary.read, rejected=summary.rejected, status=status
        )
        session.commit()


def import_facts(
    factory: sessionmaker[Session],
    items: Iterable[OrderFact | Rejected],
    *,
    kind: str,
    store_key: str | None,
    source_name: str = "",
    batch_size: int = 500,
) -> ImportSummary:
    """Write facts after the sale (a returns report...) like :func:`import_records`, through
    the same writer: a batch in one transaction, or record by record when it fails, each
    fact the store refuses rejected alone into the import-error table under ``kind``. A fact
    already kept counts as unchanged; the units of the orders concerned are flagged for
    tagging."""
    return import_records(
        factory,
        items,
        kind=kind,
        store_key=store_key,
        source_name=source_name,
        batch_size=batch_size,
        done_message="facts import finished",
    )
