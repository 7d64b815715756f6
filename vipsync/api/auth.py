"""Bearer tokens with scopes for the ``/v1`` API.

Tokens are configured in ``VIPSYNC_API_TOKENS`` as comma-separated ``name:scope:digest``
entries, where ``digest`` is the hex SHA-256 of the token: the environment holds no usable
secret, and a request's token is digested and compared in constant time. `vipsync api
token new NAME --scope SCOPE` prints a fresh token and its entry.

Scopes:
- ``website``: what TESmart's web stores call (register members, verify proofs);
- ``support``: every customer-facing route (members, proofs, claims, quotes);
- ``read``: the ops read side (unit queries, counts, exports, the dashboard's data).

A missing, malformed or unknown token, or one whose scope does not cover the route, gets
401 with the same body: nothing tells a caller which tokens or scopes exist.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from vipsync.errors import ConfigError

__all__ = ["SCOPES", "Caller", "TokenTable", "new_token", "parse_tokens", "require_scope"]

SCOPES = ("website", "support", "read")
_UNAUTHORIZED = HTTPException(
    status_code=401, detail="missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who called: the token's configured name (logged, never the token) and its scope."""

    token_name: str
    scope: str


class TokenTable:
    """The configured tokens, by digest."""

    __slots__ = ("_by_digest",)

    def __init__(self, entries: dict[str, Caller]) -> None:
        self._by_digest = entries

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, token: str) -> Caller | None:
        """The caller a presented token belongs to, compared in constant time."""
        wanted = hashlib.sha256(token.encode("utf-8")).hexdigest()
        found = None
        for digest, caller in self._by_digest.items():
            if hmac.compare_digest(digest, wanted):
                found = caller
        return found


def parse_tokens(text: str) -> TokenTable:
    """``name:scope:sha256hex`` entries, comma-separated; a bad entry raises ConfigError."""
    entries: dict[str, Caller] = {}
    for n, raw in enumerate((part.strip() for part in text.split(",")), start=1):
        if not raw:
            continue
        parts = raw.split(":")
        if len(parts) != 3:
            raise ConfigError(f"VIPSYNC_API_TOKENS entry {n}: expected name:scope:sha256-of-token")
        name, scope, digest = (p.strip() for p in parts)
        if not name:
            raise ConfigError(f"VIPSYNC_API_TOKENS entry {n}: the name is empty")
        if scope not in SCOPES:
            raise ConfigError(
                f"VIPSYNC_API_TOKENS entry {n} ({name}): scope must be one of {', '.join(SCOPES)}"
            )
        digest = digest.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(
                f"VIPSYNC_API_TOKENS entry {n} ({name}): the third part is the token's hex SHA-256, not the token"
            )
        entries[digest] = Caller(token_name=name, scope=scope)
    return TokenTable(entries)


def new_token(name: str, scope: str) -> tuple[str, str]:
    """A fresh random token and its ``VIPSYNC_API_TOKENS`` entry."""
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {', '.join(SCOPES)}")
    if not name or ":" in name or "," in name:
        raise ConfigError("the token name must be non-empty and contain no ':' or ','")
    token = "vs_" + secrets.token_urlsafe(32)
    return token, f"{name}:{scope}:{hashlib.sha256(token.encode('utf-8')).hexdigest()}"


def require_scope(*allowed: str) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency: the caller, when its bearer token's scope is in ``allowed``.
    A coroutine, because FastAPI runs a plain function in its thread pool: a hop between
    threads costs more than the token's digest it would run."""
    unknown = set(allowed) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")

    async def dependency(request: Request) -> Caller:
        header = request.headers.get("Authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise _UNAUTHORIZED
        caller = request.app.state.ctx.api_tokens.lookup(token.strip())
        if caller is None or caller.scope not in allowed:
            raise _UNAUTHORIZED
        request.state.caller = caller
        return caller

    return dependency
