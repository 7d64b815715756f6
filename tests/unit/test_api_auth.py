"""Bearer tokens: parsed from digests, matched in constant time, scopes enforced."""

from __future__ import annotations

import hashlib

import pytest

from vipsync.api.auth import new_token, parse_tokens
from vipsync.errors import ConfigError


def test_a_new_token_is_found_by_its_entry_and_the_entry_holds_no_token():
    token, entry = new_token("shop-site", "website")
    assert token not in entry
    table = parse_tokens(entry)
    caller = table.lookup(token)
    assert caller is not None and caller.token_name == "shop-site" and caller.scope == "website"
    assert table.lookup(token + "x") is None


def test_entries_are_comma_separated_and_blank_entries_are_ignored():
    digest = hashlib.sha256(b"t1").hexdigest()
    table = parse_tokens(f" a:read:{digest} ,, b:support:{hashlib.sha256(b't2').hexdigest()}")
    assert len(table) == 2
    assert table.lookup("t1").scope == "read"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a:read", "name:scope:sha256"),
        (f"a:admin:{'0' * 64}", "scope must be one of"),
        ("a:read:plain-token-pasted-by-mistake", "hex SHA-256"),
        (f":read:{'0' * 64}", "name is empty"),
    ],
)
def test_a_bad_entry_names_its_position_and_problem(text, says):
    with pytest.raises(ConfigError, match="entry 1") as info:
        parse_tokens(text)
    assert says in str(info.value)
