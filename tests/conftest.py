"""Shared fixtures: real databases (SQLite and the PostgreSQL server of this machine).

PostgreSQL is never skipped: a test that needs it fails when it is not there, in CI as
everywhere. Each test run gets its own database (named by process id) and each test
starts from empty tables.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vipsync.bootstrap import Context, set_context
from vipsync.config.settings import Settings
from vipsync.devtools.scratch_db import scratch_database, truncate_all
from vipsync.privacy import Digester, load_pii_key
from vipsync.store.db import make_engine, make_session_factory, upgrade

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PG_ADMIN_URL = os.environ.get("VIPSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# The key of the keyed e-mail digests in every test and every process a test starts.
TEST_PII_KEY = "test-only-pii-key-never-used-outside-the-test-suite"


def pytest_configure(config):
    os.environ.setdefault("VIPSYNC_LOG_LEVEL", "WARNING")
    os.environ.setdefault("VIPSYNC_PII_KEY", TEST_PII_KEY)


@pytest.fixture(scope="session")
def digester() -> Digester:
    """The digester of the test key (the one the context and the session factory use)."""
    key = load_pii_key(
        os.environ["VIPSYNC_PII_KEY"],
        os.environ.get("VIPSYNC_PII_KEY_ID"),
        database_url="postgresql://",
        data_dir=Path("."),
    )
    return Digester(key)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"the official fixtures are missing: {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_database():
    """A fresh PostgreSQL database for this test run, migrated once."""
    with scratch_database(PG_ADMIN_URL, prefix="vipsync_test") as url:
        yield url


@pytest.fixture
def sqlite_url(_sqlite_template, tmp_path) -> str:
    path = tmp_path / "vipsync.sqlite3"
    shutil.copy(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(_pg_database) -> str:
    engine = make_engine(_pg_database)
    truncate_all(engine)
    engine.dispose()
    return _pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine, digester):
    return make_session_factory(engine, digester=digester)


@pytest.fixture
def context(db_url, tmp_path, monkeypatch):
    """The process-wide context pointed at the test database (for CLI and job tests)."""
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VIPSYNC_DATABASE_URL", db_url)
    ctx = Context(settings=Settings(), database_url=db_url)
    set_context(ctx)
    yield ctx
    set_context(None)
