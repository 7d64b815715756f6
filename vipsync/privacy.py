"""Keyed digests of personal identifiers: e-mails, proof factors, rate-limit keys.

An e-mail is matched, never read back: the store keeps ``HMAC-SHA-256(key, value)``
under a secret from the environment (``VIPSYNC_PII_KEY``), never a plain hash that a list
of candidate addresses could reverse. Each digest is stored beside the id of the key that
made it (``VIPSYNC_PII_KEY_ID``), so the key can be rotated.

An e-mail digest is ``HMAC(key, "email" NUL sha256_hex(e-mail))``: the inner SHA-256 is what
stores made before keyed digests existed, so the migration to keyed digests computes the
same value from an old digest without ever seeing the address (every order/member match
survives). Rotation chains the keys: with retired keys ``k1..kn`` (oldest first, from
``VIPSYNC_PII_RETIRED_KEYS``) and the current key ``k``, a digest is
``HMAC(k, "rekey" NUL HMAC(kn, ... HMAC(k1, "email" NUL sha256_hex)))``. ``vipsync pii rekey``
moves a stored digest made under a retired key forward by the remaining steps, which needs
no address either. The retired secrets stay configured (new e-mails are digested through the
whole chain), but a retired secret alone no longer tests a candidate address against the
store: that takes the current one too.

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

__all__ = ["MIN_KEY_BYTES", "Digester", "PiiKey", "load_pii_key", "parse_retired_keys", "sha256_hex"]

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


def parse_retired_keys(text: str | None) -> tuple[PiiKey, ...]:
    """``id:secret,id:secret`` (oldest first) from ``VIPSYNC_PII_RETIRED_KEYS``."""
    keys: list[PiiKey] = []
    for n, entry in enumerate((text or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        key_id, sep, secret = entry.partition(":")
        if not sep or not key_id.strip():
            raise ConfigError(f"VIPSYNC_PII_RETIRED_KEYS entry {n}: expected key_id:secret")
        keys.append(_key_from_text(secret, key_id.strip(), origin=f"VIPSYNC_PII_RETIRED_KEYS entry {n}"))
    ids = [k.key_id for k in keys]
    if len(set(ids)) != len(ids):
        raise ConfigError("VIPSYNC_PII_RETIRED_KEYS: a key id appears twice")
    return tuple(keys)


def sha256_hex(value: str) -> str:
    """The plain SHA-256 of a normalized e-mail: an input of the keyed digest, never stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _hmac(secret: bytes, kind: str, value: str) -> str:
    return hmac.new(secret, kind.encode("utf-8") + b"\0" + value.encode("utf-8"), hashlib.sha256).hexdigest()


class Digester:
    """Keyed digests under one key; ``kind`` separates what is digested (e-mail, postal
    code, client address) so equal text of two kinds never gives the same digest.

    ``retired`` are the earlier keys, oldest first: e-mail digests run through them all
    (see the module docstring), so digests made before a rotation can be moved forward."""

    __slots__ = ("_chain", "_secret", "key_id")

    def __init__(self, key: PiiKey, retired: tuple[PiiKey, ...] = ()) -> None:
        self._secret = key.secret
        self.key_id = key.key_id
        chain = [k for k in retired if k.key_id != key.key_id] + [key]
        self._chain: tuple[PiiKey, ...] = tuple(chain)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id a stored digest may carry, oldest first, the current one last."""
        return tuple(k.key_id for k in self._chain)

    def email_from_sha256(self, inner: str) -> str:
        """The current e-mail digest from the plain SHA-256 hex of the normalized e-mail."""
        return self.email_candidates_from_sha256(inner)[-1][1]

    def email_candidates_from_sha256(self, inner: str) -> list[tuple[str, str]]:
        """(key id, digest) under each key of the chain, oldest first: what a digest of
        this e-mail looks like in a row made under that key."""
        out: list[tuple[str, str]] = []
        value = _hmac(self._chain[0].secret, "email", inner)
        out.append((self._chain[0].key_id, value))
        for k in self._chain[1:]:
            value = _hmac(k.secret, "rekey", value)
            out.append((k.key_id, value))
        return out

    def email_candidates(self, normalized: str) -> list[tuple[str, str]]:
        """(key id, digest) pairs under which this e-mail may be stored (lookups, erasure)."""
        return self.email_candidates_from_sha256(sha256_hex(normalized))

    def rekey(self, digest: str, key_id: str | None) -> str:
        """A stored e-mail digest made under ``key_id`` moved forward to the current key.
        ``None`` means a plain SHA-256 (a store from before keyed digests)."""
        if key_id is None:
            return self.email_from_sha256(digest)
        ids = self.key_ids
        if key_id not in ids:
            raise ConfigError(
                f"a stored digest is under key {key_id!r}, which is neither VIPSYNC_PII_KEY_ID nor "
                "listed in VIPSYNC_PII_RETIRED_KEYS"
            )
        for k in self._chain[ids.index(key_id) + 1 :]:
            digest = _hmac(k.secret, "rekey", digest)
        return digest

    def digest(self, kind: str, value: str) -> str:
        """Hex HMAC-SHA-256 of ``value`` (already normalized) under the key."""
        return _hmac(self._secret, kind, value)

    def digest_bytes(self, kind: str, data: bytes) -> str:
        """Hex HMAC-SHA-256 of raw bytes (a webhook body) under the current key."""
        return hmac.new(self._secret, kind.encode("utf-8") + b"\0" + data, hashlib.sha256).hexdigest()

    def email(self, normalized: str | None) -> str | None:
        """The digest of an e-mail normalized by ``connectors.records.normalize_email``."""
        return None if normalized is None else self.email_from_sha256(sha256_hex(normalized))
