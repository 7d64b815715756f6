"""Keyed digests: HMAC under a configured key, never a plain hash; a local key for SQLite."""

from __future__ import annotations

import hashlib
import stat

import pytest

from vipsync.errors import ConfigError
from vipsync.privacy import Digester, load_pii_key

KEY = "k" * 40


def test_an_email_digest_is_keyed_and_differs_from_its_plain_sha256(tmp_path):
    key = load_pii_key(KEY, None, database_url="postgresql+psycopg://x/y", data_dir=tmp_path)
    digest = Digester(key).email("ann@example.com")
    assert digest != hashlib.sha256(b"ann@example.com").hexdigest()
    other = Digester(load_pii_key("o" * 40, None, database_url="sqlite://", data_dir=tmp_path))
    assert other.email("ann@example.com") != digest
    assert Digester(key).email("ann@example.com") == digest


def test_kinds_are_separated():
    d = Digester(load_pii_key(KEY, "k1", database_url="sqlite://", data_dir=None))  # type: ignore[arg-type]
    assert d.digest("email", "12345") != d.digest("postal_code", "12345")
    assert d.key_id == "k1"


def test_postgresql_without_a_key_refuses_and_says_which_variable(tmp_path):
    with pytest.raises(ConfigError, match="VIPSYNC_PII_KEY is not set"):
        load_pii_key(None, None, database_url="postgresql+psycopg://h/db", data_dir=tmp_path)


def test_a_short_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="at least 32"):
        load_pii_key("short", None, database_url="sqlite://", data_dir=tmp_path)


def test_sqlite_without_a_key_makes_one_local_key_readable_by_its_owner_only(tmp_path):
    first = load_pii_key(None, None, database_url="sqlite:///x.db", data_dir=tmp_path / "data")
    again = load_pii_key(None, None, database_url="sqlite:///x.db", data_dir=tmp_path / "data")
    assert first.key_id == again.key_id
    mode = stat.S_IMODE((tmp_path / "data" / "pii.key").stat().st_mode)
    assert mode == 0o600
    assert "k" * 10 not in repr(first) and first.secret.decode() not in repr(first)
