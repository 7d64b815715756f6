"""The composition root: the one place that wires settings, stores and the database.

The CLI, the workers and the web app all start from :func:`get_context`; tests build a
:class:`Context` of their own with another database URL or stores file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from vipsync.config.settings import Settings, get_settings
from vipsync.config.stores import Stores, load_stores
from vipsync.downloads import sweep
from vipsync.privacy import Digester, load_pii_key, parse_retired_keys
from vipsync.store.db import ensure_schema, make_engine, make_session_factory

if TYPE_CHECKING:
    from vipsync.api.auth import TokenTable

__all__ = ["Context", "get_context", "set_context"]


@dataclass
class Context:
    """Settings plus the lazily built adapters that depend on them."""

    settings: Settings
    database_url: str | None = None
    migrate: bool = True
    _stores: Stores | None = field(default=None, repr=False)
    # How follow-up jobs are started: None runs them inline (the embedded default); the
    # workers install one that enqueues a dramatiq message. Call it only after the commit
    # the job depends on.
    dispatcher: Callable[[str, dict[str, Any]], None] | None = field(default=None, repr=False)

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.database_url or self.settings.effective_database_url)
        if self.migrate:
            ensure_schema(engine)
        return engine

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine, digester=self.digester)

    @cached_property
    def digester(self) -> Digester:
        """Keyed digests of e-mails and proof factors (see vipsync/privacy.py)."""
        secret = self.settings.pii_key.get_secret_value() if self.settings.pii_key else None
        key = load_pii_key(
            secret,
            self.settings.pii_key_id,
            database_url=self.database_url or self.settings.effective_database_url,
            data_dir=self.settings.data_dir,
        )
        retired = self.settings.pii_retired_keys
        return Digester(key, parse_retired_keys(retired.get_secret_value() if retired else None))

    @cached_property
    def api_tokens(self) -> TokenTable:
        """The HTTP API's bearer tokens (see vipsync/api/auth.py)."""
        from vipsync.api.auth import parse_tokens

        return parse_tokens(self.settings.api_tokens)

    @property
    def stores(self) -> Stores:
        if self._stores is None:
            self._stores = load_stores(self.settings.stores_file)
        return self._stores

    def dispatch(self, job: str, **kwargs: Any) -> Any:
        """Start a job by name (see vipsync.workers.registry), inline or enqueued."""
        if self.dispatcher is not None:
            return self.dispatcher(job, kwargs)
        from vipsync.workers.registry import run_job

        return run_job(self, job, **kwargs)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


_context: Context | None = None


def get_context() -> Context:
    """The process-wide context, built on first use from the environment (which also
    sweeps the downloads a crashed job left, see vipsync/downloads.py)."""
    global _context
    if _context is None:
        settings = get_settings()
        # Downloads a crashed job left behind (buyers' data) go at the next start.
        removed = sweep(settings.data_dir)
        if removed:
            logging.getLogger(__name__).warning(
                "removed downloads left by a crashed job", extra={"entries": removed}
            )
        _context = Context(settings=settings)
    return _context


def set_context(ctx: Context | None) -> None:
    """Replace the process-wide context (tests, or a CLI option that overrides a setting)."""
    global _context
    if _context is not None and _context is not ctx:
        _context.dispose()
    _context = ctx
