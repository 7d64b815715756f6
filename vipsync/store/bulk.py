"""Bulk row writes for the repository's hot path: many rows of one table in one go.

- PostgreSQL: ``COPY ... FROM STDIN`` in the session's own transaction (psycopg adapts
  each value; JSON columns are sent as JSON text).
- SQLite: one DBAPI ``executemany`` of pre-built tuples, each value put in the form the
  column type stores (SQLAlchemy's own bind processors for the column, looked up once
  per table, so the stored bytes are the same as through a Core insert).

Rows are tuples in the order of the ``columns`` given. A ``str`` given for a JSON column
is taken as JSON text already serialized (a payload is serialized once); None in a JSON
column is stored as SQLAlchemy stores it (JSON ``null`` unless ``none_as_null``). No ORM, no
statement compiled per row, nothing parsed per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from vipsync.store.types import UTCDateTime

__all__ = ["dbapi_errors", "insert_rows", "is_postgresql", "raw_connection", "update_rows"]


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def raw_connection(session: Session) -> Any:
    """The DBAPI connection under the session's current transaction."""
    raw = session.connection().connection.driver_connection
    assert raw is not None, "a live DBAPI connection"
    return raw


def insert_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    on_conflict: str = "",
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table``. ``on_conflict``
    (SQLite only, e.g. ``ON CONFLICT (sku) DO NOTHING``) is appended to the statement."""
    if not rows:
        return
    cols = ", ".join(columns)
    if is_postgresql(session):
        if on_conflict:
            raise ValueError("COPY has no ON CONFLICT: stage the rows and INSERT ... SELECT")
        json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
        json_null = {i: _json_none(table.c[columns[i]].type) for i in json_at}
        statement = f"COPY {table.name} ({cols}) FROM STDIN"
        with (
            dbapi_errors(session, statement),
            raw_connection(session).cursor() as cur,
            cur.copy(statement) as copy,
        ):
            if json_at:
                for row in rows:
                    values = list(row)
                    for i in json_at:
                        value = values[i]
                        if value is None:
                            values[i] = json_null[i]
                        elif type(value) is list and not value:
                            values[i] = "[]"  # json.dumps([]), most orders' discount codes
                        elif not isinstance(value, str):
                            values[i] = json.dumps(value)
                    copy.write_row(values)
            else:
                for row in rows:
                    copy.write_row(row)
        return
    dialect = session.get_bind().dialect
    procs = _processors(table, tuple(columns), dialect)
    prepared = _apply(rows, procs) if procs else [tuple(row) for row in rows]
    marks = ", ".join("?" * len(columns))
    # exec_driver_sql: the DBAPI's executemany as it is, its errors wrapped as SQLAlchemy's.
    session.connection().exec_driver_sql(
        f"INSERT INTO {table.name} ({cols}) VALUES ({marks}) {on_conflict}".rstrip(), prepared
    )


def update_rows(
    session: Session, table: Table, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """SQLite: update rows of ``table`` by ``key`` in one DBAPI ``executemany``; ``rows``
    are tuples of the key and then ``columns``, each value put in the form the column type
    stores, as :func:`insert_rows` does. (On PostgreSQL, COPY into a staging table and one
    ``UPDATE ... FROM`` does this set-based.)"""
    if not rows:
        return
    if is_postgresql(session):
        raise ValueError("on PostgreSQL, stage the rows by COPY and UPDATE ... FROM")
    names = (key, *columns)
    procs = _processors(table, tuple(names), session.get_bind().dialect)
    prepared = _apply(rows, procs) if procs else [tuple(row) for row in rows]
    sets = ", ".join(f"{c} = ?" for c in columns)
    session.connection().exec_driver_sql(
        f"UPDATE {table.name} SET {sets} WHERE {key} = ?", [(*r[1:], r[0]) for r in prepared]
    )


@contextmanager
def dbapi_errors(session: Session, statement: str) -> Iterator[None]:
    """Raise a DBAPI error of a raw-connection call (COPY) as SQLAlchemy raises it
    (IntegrityError, OperationalError, ...; a lost connection invalidated), so callers
    that sort failures by those types (the writer's retry and fallback) see the same."""
    dialect = session.get_bind().dialect
    dbapi = dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        conn = session.connection()
        disconnect = bool(dialect.is_disconnect(exc, conn.connection.dbapi_connection, None))
        if disconnect:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement, None, exc, dbapi.Error, connection_invalidated=disconnect, dialect=dialect
        ) from exc


def _json_none(col_type: Any) -> str | None:
    """What a JSON column stores for None through SQLAlchemy: JSON ``null`` unless the
    type says ``none_as_null`` (then SQL NULL)."""
    return None if col_type.none_as_null else "null"


# Values whose processed form depends on their value alone (equal values, equal forms: two
# aware timestamps of the same instant give the same UTC text): each distinct one of a call
# goes through its processor once (the batch's write time, dates, prices repeat).
_MEMO_TYPES = frozenset({datetime, date, Decimal, bool})
_MISS = object()
_JSON, _MEMO = range(2)
Processors = tuple[tuple[int, Callable[[Any], Any], int], ...]


def _apply(rows: Sequence[Sequence[Any]], procs: Processors) -> list[tuple[Any, ...]]:
    """The rows with each converting column's values processed, a column at a time (one
    pass over each converting column rather than a walk of every row's processors)."""
    if not rows:
        return []
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for i, proc, mode in procs:
        columns[i] = _convert_column(columns[i], proc, mode)
    return list(zip(*columns, strict=True))


def _convert_column(values: Sequence[Any], proc: Callable[[Any], Any], mode: int) -> list[Any]:
    first = values[0] if values else None
    if (
        mode == _MEMO
        and type(first) in _MEMO_TYPES
        and values.count(first) == len(values)  # compared in C: equal values...
        and len(set(map(type, values))) == 1  # ...of one type: one form, made once
    ):
        return [proc(first)] * len(values)  # the batch's write time, its flags
    memo: dict[Any, Any] = {}
    out: list[Any] = []
    append = out.append
    for value in values:
        if mode == _JSON:
            if value is None or (type(value) is list and not value):
                key: Any = (type(value), None)
            elif isinstance(value, str):
                append(value)
                continue
            else:
                append(proc(value))
                continue
        elif value is None:
            append(None)
            continue
        elif type(value) in _MEMO_TYPES:
            key = (type(value), value)
        else:
            append(proc(value))
            continue
        done = memo.get(key, _MISS)
        if done is _MISS:
            done = memo[key] = proc(value)
        append(done)
    return out


def _utc_text(value: datetime) -> str:
    """An aware timestamp as SQLite's UTCDateTime column stores it (naive UTC text)."""
    if type(value) is not datetime or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


_PROBES = (
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=timezone(timedelta(hours=-8))),
    datetime(2100, 12, 31, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
)


def _fast_processor(
    col_type: Any, proc: Callable[[Any], Any], dialect: Dialect
) -> Callable[[Any], Any] | None:
    """A faster stand-in for a column's bind processor on the hot path, used only when it
    gives exactly what the processor gives (checked here on probe values): SQLite's
    UTCDateTime, per-row timestamps (purchase and update times) being most of an order row."""
    if dialect.name != "sqlite" or not isinstance(col_type, UTCDateTime):
        return None
    if all(_utc_text(v) == proc(v) for v in _PROBES):
        return _utc_text
    return None  # pragma: no cover - a change of SQLAlchemy's storage format


@lru_cache(maxsize=64)
def _processors(table: Table, columns: tuple[str, ...], dialect: Dialect) -> Processors:
    """(position, bind processor, how it is applied) of the columns whose type converts
    values on the way in."""
    out = []
    for i, name in enumerate(columns):
        col_type = table.c[name].type
        proc = col_type._cached_bind_processor(dialect)
        if proc is None:
            continue
        fast = _fast_processor(col_type, proc, dialect)
        out.append((i, fast or proc, _JSON if isinstance(col_type, JSON) else _MEMO))
    return tuple(out)
