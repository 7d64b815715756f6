"""The import job: stream mapped records into the store in batches.

Readers (``connectors.*``) yield :class:`OrderRecord`, :class:`MemberRecord` or
:class:`Rejected`; this job writes records in batches, sends rejects to the import-error
table, and counts everything. One bad record never stops the batch; a batch that fails
to write is retried record by record so the culprit alone is rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from vipsync.connectors.records import MemberRecord, OrderRecord, Rejected
from vipsync.store.repository import Repository, UpsertCounts

__all__ = ["ImportSummary", "import_records"]

log = logging.getLogger(__name__)


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


def _record_id(rec: Any) -> str:
    if isinstance(rec, OrderRecord):
        return rec.external_id
    if isinstance(rec, MemberRecord):
        return rec.record_id
    return "?"


def import_records(
    factory: sessionmaker[Session],
    items: Iterable[OrderRecord | MemberRecord | Rejected],
    *,
    kind: str,
    store_key: str | None,
    source_name: str = "",
    batch_size: int = 500,
    on_batch: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Write ``items`` to the store; returns the counts. ``kind`` names the source in the
    import-error table (``shopify``, ``amazon-report``, ``members``)."""
    with factory() as session:
        run_id = Repository(session).start_run(kind, store_key=store_key, source_name=source_name)
        session.commit()
    summary = ImportSummary(run_id=run_id)
    batch: list[OrderRecord | MemberRecord] = []

    def flush() -> None:
        if not batch:
            return
        counts = _write_batch(factory, batch, kind=kind, store_key=store_key, run_id=run_id, summary=summary)
        summary.inserted += counts.inserted
        summary.updated += counts.updated
        summary.unchanged += counts.unchanged + counts.stale
        batch.clear()
        if on_batch:
            on_batch(summary)

    try:
        for item in items:
            summary.read += 1
            if isinstance(item, Rejected):
                _reject(factory, item, kind=kind, store_key=store_key, run_id=run_id)
                summary.rejected += 1
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        flush()
    except BaseException:
        _finish(factory, run_id, summary, status="failed")
        raise
    _finish(factory, run_id, summary, status="done")
    log.info("import finished", extra={"kind": kind, "store": store_key, **summary.as_dict()})
    return summary


def _upsert(repo: Repository, batch: list) -> UpsertCounts:
    orders = [r for r in batch if isinstance(r, OrderRecord)]
    members = [r for r in batch if isinstance(r, MemberRecord)]
    counts = UpsertCounts()
    if orders:
        counts += repo.upsert_orders(orders)
    if members:
        counts += repo.upsert_members(members)
    return counts


def _write_batch(factory, batch, *, kind, store_key, run_id, summary) -> UpsertCounts:
    try:
        with factory() as session:
            counts = _upsert(Repository(session), batch)
            session.commit()
            return counts
    except Exception:
        log.warning("batch write failed; retrying record by record", exc_info=True)
    counts = UpsertCounts()
    for rec in batch:
        try:
            with factory() as session:
                counts += _upsert(Repository(session), [rec])
                session.commit()
        except Exception as exc:  # one record's failure must not stop the import
            _reject(
                factory,
                Rejected(
                    record_id=_record_id(rec),
                    field=None,
                    message=f"could not be stored: {type(exc).__name__}",
                    raw=getattr(rec, "raw", None) or {},
                ),
                kind=kind,
                store_key=store_key,
                run_id=run_id,
            )
            summary.rejected += 1
    return counts


def _reject(factory, item: Rejected, *, kind: str, store_key: str | None, run_id: int) -> None:
    with factory() as session:
        Repository(session).record_error(
            source=kind,
            store_key=store_key,
            record_id=item.record_id,
            field=item.field,
            message=item.message,
            raw=item.raw if item.raw is not None else "",
            run_id=run_id,
        )
        session.commit()


def _finish(factory, run_id: int, summary: ImportSummary, *, status: str) -> None:
    with factory() as session:
        counts = UpsertCounts(inserted=summary.inserted, updated=summary.updated, unchanged=summary.unchanged)
        Repository(session).finish_run(
            run_id, counts, read=summary.read, rejected=summary.rejected, status=status
        )
        session.commit()
