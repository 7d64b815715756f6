"""Settings: one typed object, read once from the environment (``VIPSYNC_*``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vipsync.errors import ConfigError

__all__ = ["CONFIG_DIR", "Settings", "get_settings"]

CONFIG_DIR = Path(__file__).resolve().parent


class Settings(BaseSettings):
    """Every setting vipsync reads. Field ``foo`` comes from ``VIPSYNC_FOO``."""

    model_config = SettingsConfigDict(env_prefix="VIPSYNC_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("data"), description="Where the SQLite default and downloads live.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in data_dir.")
    redis_url: str = "redis://127.0.0.1:6379/0"
    stores_file: Path = CONFIG_DIR / "stores.toml"
    catalog_file: Path = CONFIG_DIR / "catalog.toml"
    policies_dir: Path = CONFIG_DIR / "policies"
    log_level: str = "INFO"
    sync_interval_s: int = Field(default=300, ge=10)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    # Input limits (vipsync/connectors/limits.py): a line with more units is rejected, since
    # every unit becomes a row.
    max_line_quantity: int = Field(default=10_000, ge=1, le=1_000_000)
    # The largest webhook body read (bytes); a larger one is refused with 413 while reading.
    webhook_max_bytes: int = Field(default=2_000_000, ge=1_024, le=100_000_000)
    # Workers (dramatiq on Redis), see docs/workers.md.
    broker_namespace: str = "dramatiq"  # prefix of every Redis key: queues, dead letters, locks
    worker_heartbeat_timeout_s: int = Field(default=60, ge=1)  # a silent worker's messages go back after this
    worker_maintenance_chance: int = Field(default=10_000, ge=0, le=1_000_000)  # per million broker commands
    lock_ttl_s: int = Field(default=60, ge=2)  # a crashed sync's store lock frees itself after this
    retry_min_backoff_ms: int = Field(default=5_000, ge=1)
    retry_max_retries: int = Field(default=8, ge=0)
    # Personal data (vipsync/privacy.py): the key of the keyed digests and its id.
    pii_key: SecretStr | None = None
    pii_key_id: str | None = Field(default=None, max_length=32)
    # Earlier keys, oldest first: "key_id:secret,key_id:secret" (see `vipsync pii rekey`).
    pii_retired_keys: SecretStr | None = None
    # The HTTP API's bearer tokens (vipsync/api/auth.py): "name:scope:sha256-of-token" entries,
    # comma-separated; `vipsync api token new` makes one.
    api_tokens: str = ""
    # The /v1 customer API (vipsync/api/members.py, proofs.py, claims.py).
    api_max_body_bytes: int = Field(default=3_000_000, ge=1_024)  # a larger request body gets 413
    invoice_max_bytes: int = Field(default=2_000_000, ge=1_024)  # an invoice PDF, decoded
    # Every refusal of an order and factor answers no sooner than this (at least the fetch limit).
    proof_min_delay_ms: int = Field(default=1_500, ge=0)
    proof_fetch_timeout_ms: int = Field(default=1_500, ge=100)  # on-demand fetch of an unknown order
    proof_fetch_budget_per_min: int = Field(default=60, ge=0)  # on-demand fetches per store
    proof_rate_window_s: int = Field(default=3_600, ge=1)  # sliding window of the refusal limits
    proof_rate_per_token: int = Field(default=10_000, ge=1)  # refused attempts per client token
    proof_rate_per_address: int = Field(default=20, ge=1)  # per end-user address
    proof_rate_per_order: int = Field(default=5, ge=1)  # per normalized order identifier
    # Names of the client tokens (comma-separated) allowed to forward their visitor's address
    # in X-End-User-Address (the website's backend); any other caller is counted by its peer address.
    api_trusted_proxy_tokens: str = ""
    claim_backdate_days: int = Field(default=30, ge=0)  # older request dates need a support reason
    trade_in_quote_days: int = Field(default=30, ge=1)  # a quote's code expires after this

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @model_validator(mode="after")
    def _delay_covers_fetch(self) -> Settings:
        if self.proof_min_delay_ms < self.proof_fetch_timeout_ms:
            raise ValueError(
                "proof_min_delay_ms must be at least proof_fetch_timeout_ms (a refusal after an "
                "on-demand fetch must take as long as one without)"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'vipsync.sqlite3').resolve()}"


def load_settings() -> Settings:
    """Read the environment; a bad value raises ConfigError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "VIPSYNC_" + "_".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid setting: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
