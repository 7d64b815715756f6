"""A pooled PostgreSQL connection is pinged only when it was idle: a busy one is handed out
as it is, an idle dead one is replaced before use, and a busy dead one fails its statement
once, after which the whole pool reconnects.

The server is never stopped: each test ends its own connection's backend with
``pg_terminate_backend``, which is what a server restart does to it."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.conftest import PG_ADMIN_URL
from vipsync.store import db


@pytest.fixture
def db_url(pg_url) -> str:
    """PostgreSQL only (the shared ``engine`` fixture reads this)."""
    return pg_url


@pytest.fixture
def pings(engine, monkeypatch) -> list[int]:
    """How many times the dialect pinged a connection."""
    seen: list[int] = []
    do_ping = engine.dialect.do_ping

    def counted(dbapi_conn):
        seen.append(1)
        return do_ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return seen


def _backend(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


def test_a_busy_connection_is_not_pinged_an_idle_one_is(engine, pings, monkeypatch):
    first = _backend(engine)
    assert _backend(engine) == first
    assert pings == []  # back in the pool a moment ago: no round trip

    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    assert _backend(engine) == first
    assert pings == [1]


def test_an_idle_dead_connection_is_replaced_before_use(engine, pings, monkeypatch):
    first = _backend(engine)
    _terminate(first)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)

    assert _backend(engine) != first  # no error: the ping found it dead, the pool reconnected
    assert len(pings) == 1


def test_a_busy_dead_connection_fails_once_then_the_pool_reconnects(engine, pings):
    first = _backend(engine)
    _terminate(first)

    with pytest.raises(OperationalError), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert _backend(engine) != first
    assert pings == []
