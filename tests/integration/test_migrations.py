"""Migrations and models agree, on both databases."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from vipsync.store.db import (
    _listed_head,
    _stored_revision,
    current_revision,
    ensure_schema,
    head_revision,
    make_engine,
)
from vipsync.store.models import Base


def test_migrated_schema_matches_models(engine):
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_the_head_read_from_the_files_is_alembics():
    assert _listed_head() == head_revision()


def test_a_current_schema_is_recognised_without_alembic(db_url):
    """The import and sync processes check the schema at start; a current one must not
    cost them alembic's import (memory). An old one still goes through alembic."""
    code = (
        "import sys\n"
        "from vipsync.store.db import ensure_schema, make_engine\n"
        f"ensure_schema(make_engine({db_url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_unmigrated_sqlite_store_is_still_migrated_at_start(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    ensure_schema(engine)
    assert _stored_revision(engine) == current_revision(engine) == head_revision()
    engine.dispose()
