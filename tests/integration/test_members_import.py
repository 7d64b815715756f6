"""The members file import: idempotent, rejects bad rows with their line and field."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

from sqlalchemy import select

from vipsync.connectors.files.members import read_members_csv
from vipsync.store.models import ImportError_, Member
from vipsync.workers.imports import import_records

CSV = b"""email,registered_at,country,exited_at
 Alice@Example.com ,2024-07-01,US,
bob@example.com,2024-02-29T23:30:00+00:00,DE,2025-01-31
carol@example.com,not-a-date,JP,
dave@example.com,2024-05-05,GB,
,2024-05-05,US,
"""


def _import(factory, data: bytes):
    return import_records(factory, read_members_csv(io.BytesIO(data)), kind="members", store_key=None)


def test_members_import_counts_and_rejects(session_factory, digester):
    summary = _import(session_factory, CSV)
    assert summary.as_dict() == {"read": 5, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 3}
    with session_factory() as s:
        alice = s.execute(
            select(Member).where(Member.email_hash == digester.email("alice@example.com"))
        ).scalar_one()
        assert alice.registered_at == date(2024, 7, 1) and alice.exited_at is None
        assert alice.registered_ts is None
        bob = s.execute(
            select(Member).where(Member.email_hash == digester.email("bob@example.com"))
        ).scalar_one()
        # A timestamp is kept whole: its calendar date depends on each unit's store zone.
        assert bob.registered_ts == datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
        assert bob.exited_at == date(2025, 1, 31)
        errors = s.execute(select(ImportError_).order_by(ImportError_.id)).scalars().all()
    assert [(e.record_id, e.field) for e in errors] == [
        ("line 4", "registered_at"),
        ("line 5", "country"),
        ("line 6", "email"),
    ]
    for e in errors:  # the address never reaches the error table
        assert "@" not in e.raw and "@" not in e.message


def test_members_import_twice_changes_no_member_row(session_factory):
    _import(session_factory, CSV)
    with session_factory() as s:
        before = [tuple(r) for r in s.execute(select(Member.__table__)).all()]
    again = _import(session_factory, CSV)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    with session_factory() as s:
        after = [tuple(r) for r in s.execute(select(Member.__table__)).all()]
    assert before == after


def test_an_exit_recorded_later_updates_the_member(session_factory):
    _import(session_factory, b"email,registered_at\na@example.com,2024-01-01\n")
    summary = _import(
        session_factory, b"email,registered_at,exited_at\na@example.com,2024-01-01,2025-03-01\n"
    )
    assert summary.updated == 1
    with session_factory() as s:
        assert s.execute(select(Member.exited_at)).scalar_one() == date(2025, 3, 1)
