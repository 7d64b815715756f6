"""The one writer every path uses: file imports, API syncs, bulk backfills, webhooks, replays.

``write_page(factory, items, source=..., store_key=...)`` takes the mapped records of one
page (orders, members, facts after the sale, and the ``Rejected`` a reader already set
aside) and:

1. writes the records as one batch (:func:`write_batch`, one transaction);
2. if that batch fails for any reason other than the database being unreachable, writes
   them again one by one, and each record that still fails is rejected alone: a row in
   ``import_errors`` with its id, the failing field when known, a message and the record
   itself (for replay) while the rest of the page is stored;
3. keeps every ``Rejected`` in ``import_errors`` the same way.

It raises only when the database itself is unavailable (a connection or lock error that
outlived the retries): then nothing of the page may be rejected for it, and the caller's
bookmark must not move. Anything else is a bad record, never a stopped sync.

:func:`write_batch` is the batch path alone, kept a single function so a faster one
(COPY, executemany) can replace it without touching the fallback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vipsync.connectors.records import MemberRecord, OrderFact, OrderRecord, Rejected
from vipsync.errors import ConfigError, RecordError
from vipsync.store.repository import Repository, UpsertCounts

__all__ = ["PageOutcome", "is_unavailable", "write_batch", "write_page"]

log = logging.getLogger(__name__)

Record = OrderRecord | MemberRecord | OrderFact


@dataclass
class PageOutcome:
    """What one page did: the counts every sync and import adds up."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0  # stale versions included: to users an ignored older version is "unchanged"
    rejected: int = 0
    changed_order_ids: list[int] = field(default_factory=list, repr=False)
    error_ids: list[int] = field(default_factory=list, repr=False)

    def add_counts(self, counts: UpsertCounts) -> None:
        self.inserted += counts.inserted
        self.updated += counts.updated
        self.unchanged += counts.unchanged + counts.stale
        self.changed_order_ids.extend(counts.changed_order_ids)


def is_unavailable(exc: BaseException) -> bool:
    """True for a failure of the database itself (connection lost, server gone, lock
    timeout): the page is not at fault and must be written again later, not rejected."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError)


def write_batch(
    factory: sessionmaker[Session], records: Sequence[Record], *, attempts: int = 3
) -> UpsertCounts:
    """Upsert ``records`` in one transaction. A concurrent writer that inserted the same
    order first (unique violation) or a deadlock makes the batch retry, and the retry sees
    that order as existing. Facts after the sale are kept once by their key: a fact kept
    already counts as unchanged. Raises whatever the last attempt raised."""
    orders = [r for r in records if isinstance(r, OrderRecord)]
    members = [r for r in records if isinstance(r, MemberRecord)]
    facts = [r for r in records if isinstance(r, OrderFact)]
    for attempt in range(1, attempts + 1):
        session = factory()
        try:
            _begin_write(session)
            repo = Repository(session)
            counts = UpsertCounts()
            if orders:
                counts += repo.upsert_orders(orders)
            if members:
                counts += repo.upsert_members(members)
            if facts:
                kept = repo.record_facts(facts)
                counts += UpsertCounts(inserted=kept.inserted, unchanged=kept.existing)
            session.commit()
            return counts
        except (IntegrityError, OperationalError):
            session.rollback()
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
    raise AssertionError("unreachable")


def _begin_write(session: Session) -> None:
    """On SQLite, take the write lock before the batch reads what is stored: writers then run
    one after another, and none decides on a version another has replaced meanwhile
    (PostgreSQL locks the stored rows instead, see ``Repository._upsert_chunk``)."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    if raw is not None and not raw.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def write_page(
    factory: sessionmaker[Session],
    items: Iterable[Record | Rejected],
    *,
    source: str,
    store_key: str | None,
    run_id: int | None = None,
) -> PageOutcome:
    """Store one page; see the module docstring. ``source`` names the path in the error
    table (``shopify``, ``amazon-api``, ``amazon-report``, ``members``, ...)."""
    records: list[Record] = []
    rejects: list[Rejected] = []
    for item in items:
        (rejects if isinstance(item, Rejected) else records).append(item)  # type: ignore[arg-type]
    outcome = PageOutcome(read=len(records) + len(rejects))
    if records:
        try:
            outcome.add_counts(write_batch(factory, records))
        except Exception as exc:
            if is_unavailable(exc) or isinstance(exc, ConfigError):  # no record is at fault
                raise
            log.warning(
                "batch write failed; writing record by record",
                extra={"source": source, "store": store_key, "error": type(exc).__name__},
            )
            for rec in records:
                try:
                    outcome.add_counts(write_batch(factory, [rec]))
                except Exception as one:
                    if is_unavailable(one) or isinstance(one, ConfigError):
                        raise
                    rejects.append(_rejected(rec, one))
    for item in rejects:
        outcome.error_ids.append(
            record_rejected(factory, item, source=source, store_key=store_key, run_id=run_id)
        )
    outcome.rejected = len(rejects)
    return outcome


def record_rejected(
    factory: sessionmaker[Session],
    item: Rejected,
    *,
    source: str,
    store_key: str | None,
    run_id: int | None = None,
) -> int:
    """Keep one rejected record in ``import_errors`` (its own transaction); returns its id."""
    with factory() as session:
        error_id = Repository(session).record_error(
            source=source,
            store_key=store_key,
            record_id=item.record_id,
            field=item.field,
            message=item.message,
            raw=item.raw if item.raw is not None else "",
            run_id=run_id,
        )
        session.commit()
    return error_id


def _record_id(rec: Record) -> str:
    if isinstance(rec, OrderRecord):
        return rec.external_id
    if isinstance(rec, OrderFact):
        return f"{rec.order_external_id}/{rec.kind}/{rec.fact_key}"
    return rec.record_id


def _rejected(rec: Record, exc: Exception) -> Rejected:
    """A record the store refused: the message names the kind of failure, never a value
    (a database error's text may quote the record's data)."""
    if isinstance(exc, RecordError):
        field_name, message = exc.field, exc.reason
    else:
        field_name = None
        cause: Any = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        message = f"could not be stored: {type(cause).__name__}"
    raw = rec.raw if isinstance(rec, OrderRecord | OrderFact) else {"record_id": rec.record_id}
    return Rejected(record_id=_record_id(rec), field=field_name, message=message, raw=raw)
