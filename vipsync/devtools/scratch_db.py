"""Scratch PostgreSQL databases for tests and benchmarks: created, migrated, dropped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text

from vipsync.store.db import make_engine, upgrade
from vipsync.store.models import Base

__all__ = ["create_database", "drop_database", "scratch_database", "truncate_all"]


def create_database(admin_url: str, *, prefix: str, migrate: bool = True) -> str:
    """Create a uniquely named database next to ``admin_url``'s, migrated to head; its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    if migrate:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    return url


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of ``url`` (connections to it are closed)."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def scratch_database(admin_url: str, *, prefix: str, migrate: bool = True) -> Iterator[str]:
    """A fresh database for the ``with`` block, dropped afterwards."""
    url = create_database(admin_url, prefix=prefix, migrate=migrate)
    try:
        yield url
    finally:
        drop_database(admin_url, url)


def truncate_all(engine: Engine) -> None:
    """Empty every table of the schema (PostgreSQL), identities restarted."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
