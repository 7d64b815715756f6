"""Engines, sessions and migrations.

PostgreSQL is migrated explicitly (``vipsync db upgrade``, the Procfile's release step);
the SQLite default migrates itself on first use so the embedded path needs no setup.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, exc, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from vipsync.errors import SchemaOutOfDate
from vipsync.privacy import Digester

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "make_engine",
    "make_session_factory",
    "purge_freed_pages",
    "session_scope",
    "upgrade",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine with the settings each database needs."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # Deleted and overwritten content is zeroed, not left in free space (erasure).
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    # Server-side prepared statements only where a statement asks (PREPARED): psycopg's own
    # rule (prepare after five runs) let PostgreSQL switch the batch lookups by `= ANY($1)`
    # to a generic plan, ~80 ms a batch instead of ~3 ms (bench/import_bench.py). A
    # threshold never reached, not None: None would refuse the statements that ask too.
    engine = create_engine(
        url,
        echo=echo,
        pool_size=5,
        max_overflow=5,
        connect_args={"prepare_threshold": _NEVER_BY_COUNT},
    )
    _ping_when_idle(engine)

    @event.listens_for(engine, "do_execute")
    def _prepared(cursor, statement, parameters, context) -> bool:
        if not context.execution_options.get(PREPARED_OPTION):
            return False  # executed the usual way
        cursor.execute(statement, parameters, prepare=True)
        return True

    return engine


# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0
_LAST_USED = "vipsync_last_used"


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections idle longer than PING_AFTER_IDLE_S.

    A ping is a round trip: on a proof of purchase, one in five of its round trips and
    0.15 ms of the web process's CPU (bench/proofs_bench.py). A connection back in the pool
    less than a second ago is handed out as it is. A dead one is replaced before use
    (SQLAlchemy's documented checkout-event recipe: ``DisconnectionError`` makes the pool
    connect again); a server restarted within that second fails the statement instead,
    and SQLAlchemy then invalidates every pooled connection, so the next checkout
    reconnects (the API answers 503 "try again later" meanwhile, a worker's job retries).
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _used(_dbapi_conn, record) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy) -> None:
        last = record.info.get(_LAST_USED)
        if last is None or time.monotonic() - last < PING_AFTER_IDLE_S:
            return  # just connected, or busy
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as err:
            raise exc.InvalidatePoolError(str(err)) from err


# A statement run with the execution options PREPARED is prepared on its connection the first
# time and then only executed: PostgreSQL neither parses nor, once it settles on a generic
# plan, plans it again. For the small, fixed lookups of a request, where planning costs
# more than running (a proof of purchase, bench/proofs_bench.py); never for batches, whose
# plans depend on how many rows they carry. Ignored on SQLite.
PREPARED_OPTION = "vipsync_prepared"
PREPARED = {PREPARED_OPTION: True}
_NEVER_BY_COUNT = 2**31 - 1


def make_session_factory(engine: Engine, *, digester: Digester | None = None) -> sessionmaker[Session]:
    """Sessions on ``engine``; with ``digester``, every session carries it in ``info`` so the
    repository keys the e-mail digests it stores (vipsync/privacy.py)."""
    return sessionmaker(engine, expire_on_commit=False, info={"digester": digester} if digester else None)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:
        raise RuntimeError("the migrations folder has no head revision")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_REVISION = re.compile(r"^revision\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(?:[\"']([^\"']+)[\"']|None)", re.MULTILINE)


@lru_cache(maxsize=1)
def _listed_head() -> str | None:
    """The head revision as the migration files state it (the one no other revises), read
    as text: no alembic import (about 8 MiB) for a process whose schema is current. None
    when the files do not say it plainly (then alembic decides)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        body = path.read_text(encoding="utf-8")
        rev, down = _REVISION.search(body), _DOWN_REVISION.search(body)
        if rev is None or down is None:
            return None
        revisions.add(rev.group(1))
        if down.group(1):
            revised.add(down.group(1))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> str | None:
    """The revision the database records (plain SQL), None without a version table or
    with other than one row."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None


def ensure_schema(engine: Engine) -> None:
    """SQLite: migrate on first use. PostgreSQL: refuse to run against an old schema.
    A current schema is recognised without loading alembic."""
    listed = _listed_head()
    if listed is not None and _stored_revision(engine) == listed:
        return
    head = head_revision()
    if current_revision(engine) == head:
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    raise SchemaOutOfDate(
        f"the database schema is at {current_revision(engine) or 'nothing'}, the code needs {head}: "
        "run `vipsync db upgrade`"
    )


def purge_freed_pages(engine: Engine) -> None:
    """SQLite: after an erasure, write the WAL back into the database and empty it, so
    the erased values stop existing in any file (secure_delete zeroes them in the
    database itself). Best effort: a long reader may keep the WAL; PostgreSQL: nothing."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


# The tables whose rows an import looks up by key while it fills them (orders, raw payloads).
IMPORT_LOOKUP_TABLES = ("orders", "raw_payloads")


def refresh_statistics(
    factory: sessionmaker[Session], tables: tuple[str, ...] = IMPORT_LOOKUP_TABLES
) -> None:
    """PostgreSQL: ANALYZE ``tables``, so the planner knows what they hold now. Without
    statistics (a store being filled, autovacuum not yet come by, or off) it took an
    import's lookup of 500 keys by store for a selective condition and filtered every order
    of the store: 30 to 70 ms a batch at 100,000 orders, growing with each one. SQLite:
    nothing (its planner uses the key indexes without statistics)."""
    with factory() as session:
        if session.get_bind().dialect.name != "postgresql":
            return
        session.execute(text(f"ANALYZE {', '.join(tables)}"))
        session.commit()


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return make_engine(url)
