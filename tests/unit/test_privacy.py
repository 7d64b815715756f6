"""Keyed digests: HMAC under a configured key, never a plain hash; a local key for SQLite."""

from __future__ import annotations

import hashlib
import stat

import pytest

from vipsync.errors import ConfigError
from vipsync.privacy import Digester, PiiKey, load_pii_key, parse_retired_keys

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


def test_a_digest_made_before_a_rotation_moves_forward_to_the_one_made_after():
    old = PiiKey(key_id="k1", secret=b"1" * 40)
    new = PiiKey(key_id="k2", secret=b"2" * 40)
    before, after = Digester(old), Digester(new, (old,))
    stored = before.email("ann@example.com")
    assert after.key_ids == ("k1", "k2")
    assert after.rekey(stored, "k1") == after.email("ann@example.com") != stored
    # Lookups find the address under either key until `vipsync pii rekey` has run.
    assert dict(after.email_candidates("ann@example.com")) == {
        "k1": stored,
        "k2": after.email("ann@example.com"),
    }
    # The retired key alone no longer reproduces what is stored after the rotation.
    assert Digester(old).email("ann@example.com") != after.email("ann@example.com")


def test_a_plain_sha256_of_a_store_before_keyed_digests_becomes_the_keyed_digest():
    d = Digester(PiiKey(key_id="k1", secret=b"1" * 40))
    plain = hashlib.sha256(b"ann@example.com").hexdigest()
    assert d.rekey(plain, None) == d.email("ann@example.com") != plain


def test_a_digest_under_an_unknown_key_is_refused_with_the_variable_to_set():
    d = Digester(PiiKey(key_id="k2", secret=b"2" * 40))
    with pytest.raises(ConfigError, match="VIPSYNC_PII_RETIRED_KEYS"):
        d.rekey("ab" * 32, "k0")


def test_retired_keys_are_read_oldest_first_and_bad_entries_are_named():
    keys = parse_retired_keys(f"k1:{'a' * 40}, k2:{'b' * 40}")
    assert [k.key_id for k in keys] == ["k1", "k2"]
    with pytest.raises(ConfigError, match="entry 1: expected key_id:secret"):
        parse_retired_keys("no-colon")
    with pytest.raises(ConfigError, match="at least 32"):
        parse_retired_keys("k1:short")
    with pytest.raises(ConfigError, match="appears twice"):
        parse_retired_keys(f"k1:{'a' * 40},k1:{'b' * 40}")
