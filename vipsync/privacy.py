"""Keyed digests of personal identifiers: e-mails, proof factors, rate-limit keys.

An e-mail is matched, never read back: the store keeps ``HMAC-SHA-256(key, value)``
under a secret from the environment (``VIPSYNC_PII_KEY``), never a plain hash that a list
of candidate addresses could reverse. Each digest is stored beside the id of the key that
made it (``VIPSYNC_PII_KEY_ID``), so the key can be rotated.

Without a key, PostgreSQL (production) refuses to start; the SQLite default generates a
local key once in the data folder, readable by its owner only, so the demo needs no setup.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from vipsync.errors import ConfigError

__all__ = ["MIN_KEY_BYTES", "Digester", "PiiKey", "load_pii_key"]

MIN_KEY_BYTES = 32
LOCAL_KEY_FILE = "pii.key"


@dataclass(frozen=True, slots=True)
class PiiKey:
    """The secret of the keyed digests and its id (stored beside each digest)."""

    key_id: str
    secret: bytes = b""

    def __repr__(self) -> str:  # never print the secret
        return f"PiiKey(key_id={self.key_id!r})"


def _key_from_text(text: str, key_id: str | None, *, origin: str) -> PiiKey:
    secret = text.strip().encode("utf-8")
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{origin}: the PII key must be at least {MIN_KEY_BYTES} characters "
            "(generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    return PiiKey(key_id=key_id or hashlib.sha256(b"key-id\0" + secret).hexdigest()[:12], secret=secret)


def load_pii_key(secret: str | None, key_id: str | None, *, database_url: str, data_dir: Path) -> PiiKey:
    """The key from the settings; for SQLite without one, the local key (made on first use)."""
    if secret:
        return _key_from_text(secret, key_id, origin="VIPSYNC_PII_KEY")
    if not database_url.startswith("sqlite"):
        raise ConfigError(
            "VIPSYNC_PII_KEY is not set: e-mails are matched by keyed digests and a database "
            "server needs its key from the environment (at least "
            f"{MIN_KEY_BYTES} characters; keep it secret, and keep it: a new key matches no "
            "stored digest until `vipsync pii rekey` has run)"
        )
    path = data_dir / LOCAL_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48) + "\n")
    return _key_from_text(path.read_text(), key_id, origin=str(path))


class Digester:
    """Keyed digests under one key; ``kind`` separates what is digested (e-mail, postal
    code, client address) so equal text of two kinds never gives the same digest."""

    __slots__ = ("_secret", "key_id")

    def __init__(self, key: PiiKey) -> None:
        self._secret = key.secret
        self.key_id = key.key_id

    def digest(self, kind: str, value: str) -> str:
        """Hex HMAC-SHA-256 of ``value`` (already normalized) under the key."""
        msg = kind.encode("utf-8") + b"\0" + value.encode("utf-8")
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def email(self, normalized: str | None) -> str | None:
        """The digest of an e-mail normalized by ``connectors.records.normalize_email``."""
        return None if normalized is None else self.digest("email", normalized)
