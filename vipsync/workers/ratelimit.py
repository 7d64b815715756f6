"""Sliding-window counters in Redis, shared by every process: the proof API's rate limits
and the on-demand fetch budget. A window is a sorted set of event times per key: the oldest
event leaving the window frees a slot, which is what ``Retry-After`` says.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import redis

__all__ = ["SlidingWindow"]

# KEYS: the windows; ARGV[1]: the window's start; ARGV[2]: now; ARGV[2 + i]: the limit of KEYS[i].
# Drops the events that left each window and answers, per key, the time of its oldest
# event when the key is at its limit, else "" (under the limit).
_CHECK_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, 0, ARGV[1])
  local first = ''
  if redis.call('ZCARD', key) >= tonumber(ARGV[i + 2]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    first = oldest[2] or ARGV[2]
  end
  out[i] = first
end
return out
"""


class SlidingWindow:
    """Counts events per key in a sliding window; ``retry_after_many`` is 0 while every key
    is under its limit."""

    def __init__(self, client: redis.Redis, *, namespace: str, window_s: int) -> None:
        self.client = client
        self.namespace = namespace
        self.window_s = window_s
        self._check: Any = None

    def _key(self, kind: str, digest: str) -> str:
        return f"{self.namespace}:ratelimit:{kind}:{digest}"

    def retry_after_many(self, entries: list[tuple[str, str, int]], *, now: float | None = None) -> int:
        """Seconds until one more event is allowed under every ``(kind, digest, limit)`` (0:
        allowed now): at a key's limit, until its oldest event leaves the window. One
        command (a script run by Redis), whatever the number of keys."""
        now = time.time() if now is None else now
        if self._check is None:
            self._check = self.client.register_script(_CHECK_MANY)
        keys = [self._key(kind, digest) for kind, digest, _ in entries]
        oldest = self._check(
            keys=keys, args=[repr(now - self.window_s), repr(now), *(limit for _, _, limit in entries)]
        )
        wait = 0
        for first in oldest:
            if first:
                wait = max(wait, max(1, int(float(first) + self.window_s - now + 0.999)))
        return wait

    def hit_many(self, entries: list[tuple[str, str, int]], *, now: float | None = None) -> None:
        """Count one event under each ``(kind, digest, _)``, in one round trip."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        for kind, digest, _ in entries:
            key = self._key(kind, digest)
            pipe.zadd(key, {uuid.uuid4().hex: now})
            pipe.expire(key, self.window_s + 1)
        pipe.execute()

    def take(self, kind: str, digest: str, limit: int, *, now: float | None = None) -> bool:
        """Count one event under ``(kind, digest)`` if fewer than ``limit`` are in the window
        (True), else count nothing (False). Shared by every process using the same Redis: the
        event is added and counted in one transaction and taken back when it went over."""
        now = time.time() if now is None else now
        key = self._key(kind, digest)
        member = uuid.uuid4().hex
        pipe = self.client.pipeline(transaction=True)
        pipe.zremrangebyscore(key, 0, now - self.window_s)
        pipe.zadd(key, {member: now})
        pipe.zcard(key)
        pipe.expire(key, self.window_s + 1)
        count = pipe.execute()[2]
        if count > limit:
            self.client.zrem(key, member)
            return False
        return True

    def hit(self, kind: str, digest: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        key = self._key(kind, digest)
        pipe = self.client.pipeline()
        pipe.zadd(key, {uuid.uuid4().hex: now})
        pipe.expire(key, self.window_s + 1)
        pipe.execute()
