"""Settings: one typed object, read once from the environment (``VIPSYNC_*``).

:class:`Settings` is a frozen dataclass: its fields are the one definition of every
setting, their bounds and defaults. ``Settings(**values)`` takes the values given, then
``VIPSYNC_<FIELD>`` from the environment (any case), then the default; a bad value raises
:class:`~vipsync.errors.ConfigError` naming the variable. The checks are
:mod:`vipsync.config.fields`, not a validation library, so a process that only reads its
settings (an import, a worker) does not load one for them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from vipsync.config.fields import FieldError, SecretStr, check
from vipsync.errors import ConfigError

__all__ = ["CONFIG_DIR", "ENV_PREFIX", "SecretStr", "Settings", "get_settings", "load_settings"]

CONFIG_DIR = Path(__file__).resolve().parent
ENV_PREFIX = "VIPSYNC_"


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


def setting(
    default: Any,
    *,
    ge: int | None = None,
    le: int | None = None,
    max_length: int | None = None,
    description: str = "",
) -> Any:
    """A setting's field: its default and bounds (a value not given comes from the environment)."""
    metadata = {"default": default, "ge": ge, "le": le, "max_length": max_length, "description": description}
    return dataclasses.field(default=_UNSET, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting vipsync reads. Field ``foo`` comes from ``VIPSYNC_FOO``."""

    data_dir: Path = setting(Path("data"), description="Where the SQLite default and downloads live.")
    database_url: str | None = setting(None, description="SQLAlchemy URL; default: SQLite in data_dir.")
    redis_url: str = setting("redis://127.0.0.1:6379/0")
    stores_file: Path = setting(CONFIG_DIR / "stores.toml")
    catalog_file: Path = setting(CONFIG_DIR / "catalog.toml")
    policies_dir: Path = setting(CONFIG_DIR / "policies")
    log_level: str = setting("INFO")
    sync_interval_s: int = setting(300, ge=10)
    batch_size: int = setting(500, ge=1, le=10_000)
    # Input limits (vipsync/connectors/limits.py): a line with more units is rejected, since
    # every unit becomes a row.
    max_line_quantity: int = setting(10_000, ge=1, le=1_000_000)
    # The largest webhook body read (bytes); a larger one is refused with 413 while reading.
    webhook_max_bytes: int = setting(2_000_000, ge=1_024, le=100_000_000)
    # Workers (dramatiq on Redis), see docs/workers.md.
    broker_namespace: str = setting("dramatiq")  # prefix of every Redis key: queues, dead letters, locks
    worker_heartbeat_timeout_s: int = setting(60, ge=1)  # a silent worker's messages go back after this
    worker_maintenance_chance: int = setting(10_000, ge=0, le=1_000_000)  # per million broker commands
    lock_ttl_s: int = setting(60, ge=2)  # a crashed sync's store lock frees itself after this
    retry_min_backoff_ms: int = setting(5_000, ge=1)
    retry_max_retries: int = setting(8, ge=0)
    # Personal data (vipsync/privacy.py): the key of the keyed digests and its id.
    pii_key: SecretStr | None = setting(None)
    pii_key_id: str | None = setting(None, max_length=32)
    # Earlier keys, oldest first: "key_id:secret,key_id:secret" (see `vipsync pii rekey`).
    pii_retired_keys: SecretStr | None = setting(None)
    # The HTTP API's bearer tokens (vipsync/api/auth.py): "name:scope:sha256-of-token" entries,
    # comma-separated; `vipsync api token new` makes one.
    api_tokens: str = setting("")
    # The /v1 customer API (vipsync/api/members.py, proofs.py, claims.py).
    api_max_body_bytes: int = setting(3_000_000, ge=1_024)  # a larger request body gets 413
    # Requests doing blocking work (database, Redis) at once in one web process, the others
    # wait their turn: fewer threads taking turns at the interpreter lock, and no more than
    # the process's database pool (5) can serve without waiting (vipsync/api/app.py).
    api_threads: int = setting(4, ge=1, le=64)
    invoice_max_bytes: int = setting(2_000_000, ge=1_024)  # an invoice PDF, decoded
    # Every refusal of an order and factor answers no sooner than this (at least the fetch limit).
    proof_min_delay_ms: int = setting(1_500, ge=0)
    proof_fetch_timeout_ms: int = setting(1_500, ge=100)  # on-demand fetch of an unknown order
    proof_fetch_budget_per_min: int = setting(60, ge=0)  # on-demand fetches per store
    proof_rate_window_s: int = setting(3_600, ge=1)  # sliding window of the refusal limits
    proof_rate_per_token: int = setting(10_000, ge=1)  # refused attempts per client token
    proof_rate_per_address: int = setting(20, ge=1)  # per end-user address
    proof_rate_per_order: int = setting(5, ge=1)  # per normalized order identifier
    # Names of the client tokens (comma-separated) allowed to forward their visitor's address
    # in X-End-User-Address (the website's backend); any other caller is counted by its peer address.
    api_trusted_proxy_tokens: str = setting("")
    claim_backdate_days: int = setting(30, ge=0)  # older request dates need a support reason
    trade_in_quote_days: int = setting(30, ge=1)  # a quote's code expires after this

    # The names of the settings given as values or by the environment (not defaulted).
    fields_set: frozenset[str] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        env = {
            name.upper(): value for name, value in os.environ.items() if name.upper().startswith(ENV_PREFIX)
        }
        given = set()
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            if getattr(self, f.name) is not _UNSET:
                given.add(f.name)
            elif (ENV_PREFIX + f.name.upper()) in env:
                object.__setattr__(self, f.name, env[ENV_PREFIX + f.name.upper()])
                given.add(f.name)
            else:
                object.__setattr__(self, f.name, f.metadata["default"])
        object.__setattr__(self, "fields_set", frozenset(given))
        try:
            check(self)
            self._check_values()
        except FieldError as exc:
            name = ENV_PREFIX + "_".join(str(p) for p in exc.loc).upper()
            raise ConfigError(f"invalid setting: {name}: {exc.message}") from None

    def _check_values(self) -> None:
        url = self.database_url
        if url == "":
            url = None
        elif url is not None:
            if not url.startswith(("sqlite", "postgresql")):
                raise FieldError(("database_url",), "must be a sqlite:// or postgresql:// URL")
            if url.startswith("postgresql://"):
                # psycopg 3 is the driver we ship.
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        object.__setattr__(self, "database_url", url)
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise FieldError(("redis_url",), "must be a redis:// URL")
        level = self.log_level.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise FieldError(("log_level",), "must be DEBUG, INFO, WARNING or ERROR")
        object.__setattr__(self, "log_level", level)
        if self.proof_min_delay_ms < self.proof_fetch_timeout_ms:
            raise FieldError(
                ("proof_min_delay_ms",),
                "must be at least proof_fetch_timeout_ms (a refusal after an on-demand fetch must "
                "take as long as one without)",
            )

    def replace(self, **changes: Any) -> Settings:
        """These settings with ``changes`` (checked like any value given); the others keep
        their values, and the environment is not read again."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        new = Settings(**{**values, **changes})
        object.__setattr__(new, "fields_set", self.fields_set | set(changes))
        return new

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'vipsync.sqlite3').resolve()}"


def load_settings() -> Settings:
    """Read the environment; a bad value raises ConfigError naming the variable."""
    return Settings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
