"""One exception hierarchy for the whole project.

Every error vipsync raises on purpose derives from :class:`VipsyncError`, so the CLI and
the workers can tell an expected failure (reported plainly) from a bug (a traceback).
Messages never carry personal data: they name records by source and id, and fields by name.
"""

from __future__ import annotations

__all__ = [
    "BenefitAlreadyUsed",
    "ConfigError",
    "EligibilityError",
    "LockNotAcquired",
    "MembershipRefused",
    "PermanentSourceError",
    "PolicyError",
    "RateLimited",
    "RecordError",
    "SchemaOutOfDate",
    "SourceError",
    "StoreError",
    "TransientSourceError",
    "VipsyncError",
]


class VipsyncError(Exception):
    """Base class of every error vipsync raises on purpose."""


class ConfigError(VipsyncError):
    """A setting, the stores file, the catalog or a policy file is missing or invalid."""


class RecordError(VipsyncError):
    """One input record is malformed; the batch goes on without it."""

    def __init__(self, message: str, *, record_id: str | None = None, field: str | None = None) -> None:
        self.record_id = record_id
        self.field = field
        self.reason = message
        where = []
        if record_id is not None:
            where.append(f"record {record_id}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class StoreError(VipsyncError):
    """The normalized store cannot do what was asked."""


class SchemaOutOfDate(StoreError):
    """The database schema is behind the code: run `vipsync db upgrade`."""


class SourceError(VipsyncError):
    """An outside system (Shopify, Amazon) answered with an error."""


class TransientSourceError(SourceError):
    """A failure worth retrying later: throttling, 5xx, a dropped connection, a timeout."""


class PermanentSourceError(SourceError):
    """A failure that retrying will not fix: bad credentials, a bad request, an undecodable token."""


class RateLimited(TransientSourceError):
    """The outside system asked us to slow down."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class EligibilityError(VipsyncError):
    """A benefit or claim request breaks the program's rules."""


class PolicyError(ConfigError):
    """A policy file is invalid."""


class BenefitAlreadyUsed(EligibilityError):
    """The unit has already used its one benefit."""


class MembershipRefused(EligibilityError):
    """A registration from outside the program's regions."""


class LockNotAcquired(VipsyncError):
    """Another process holds the lock for this work."""
