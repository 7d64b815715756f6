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
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

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
                        if values[i] is None:
                            values[i] = json_null[i]
                        elif not isinstance(values[i], str):
                            values[i] = json.dumps(values[i])
                    copy.write_row(values)
            else:
                for row in rows:
                    copy.write_row(row)
        return
    dialect = session.get_bind().dialect
    procs = _processors(table, tuple(columns), dialect)
    prepared = [_apply(row, procs) for row in rows] if procs else [tuple(row) for row in rows]
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
    prepared = [_apply(row, procs) for row in rows] if procs else [tuple(row) for row in rows]
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


def _apply(row: Sequence[Any], procs: tuple[tuple[int, Callable[[Any], Any], bool], ...]) -> tuple[Any, ...]:
    values = list(row)
    for i, proc, is_json in procs:
        value = values[i]
        if is_json:
            if value is None or not isinstance(value, str):
                values[i] = proc(value)
        elif value is not None:
            values[i] = proc(value)
    return tuple(values)


@lru_cache(maxsize=64)
def _processors(
    table: Table, columns: tuple[str, ...], dialect: Dialect
) -> tuple[tuple[int, Callable[[Any], Any], bool], ...]:
    """(position, bind processor, is a JSON column) of the columns whose type converts
    values on the way in."""
    out = []
    for i, name in enumerate(columns):
        col_type = table.c[name].type
        proc = col_type._cached_bind_processor(dialect)
        if proc is not None:
            out.append((i, proc, isinstance(col_type, JSON)))
    return tuple(out)
