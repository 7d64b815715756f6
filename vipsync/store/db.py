"""Engines, sessions and migrations.

PostgreSQL is migrated explicitly (``vipsync db upgrade``, the Procfile's release step);
the SQLite default migrates itself on first use so the embedded path needs no setup.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from vipsync.errors import SchemaOutOfDate
from vipsync.privacy import Digester

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
    # No server-side prepared statements: after five runs psycopg prepares a statement and
    # PostgreSQL may switch to a generic plan, which for the batch lookups by `= ANY($1)`
    # cost ~80 ms a batch instead of ~3 ms (measured by bench/import_bench.py).
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"prepare_threshold": None},
    )


def make_session_factory(engine: Engine, *, digester: Digester | None = None) -> sessionmaker[Session]:
    """Sessions on ``engine``; with ``digester``, every session carries it in ``info`` so the
    repository keys the e-mail digests it stores (vipsync/privacy.py)."""
    return sessionmaker(engine, expire_on_commit=False, info={"digester": digester} if digester else None)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:
        raise RuntimeError("the migrations folder has no head revision")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(engine: Engine) -> None:
    """SQLite: migrate on first use. PostgreSQL: refuse to run against an old schema."""
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
