"""Guards of the ``/v1`` API: request body size, sliding-window rate limits in Redis.

Rate-limit keys are keyed digests (``Digester.digest``) of what they count (a client
token's name, an end-user address, a normalized order identifier), so Redis holds no
address or order number in clear. A window is a sorted set of attempt times: the oldest
attempt leaving the window frees a slot, which is what ``Retry-After`` says.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import redis

__all__ = ["BodyLimit", "SlidingWindow"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class SlidingWindow:
    """Counts events per key in a sliding window; ``retry_after_s`` is 0 while under the limit."""

    def __init__(self, client: redis.Redis, *, namespace: str, window_s: int) -> None:
        self.client = client
        self.namespace = namespace
        self.window_s = window_s

    def _key(self, kind: str, digest: str) -> str:
        return f"{self.namespace}:ratelimit:{kind}:{digest}"

    def retry_after_s(self, kind: str, digest: str, limit: int, *, now: float | None = None) -> int:
        """Seconds until one more event is allowed (0: allowed now)."""
        now = time.time() if now is None else now
        key = self._key(kind, digest)
        pipe = self.client.pipeline()
        pipe.zremrangebyscore(key, 0, now - self.window_s)
        pipe.zcard(key)
        pipe.zrange(key, 0, 0, withscores=True)
        _, count, oldest = pipe.execute()
        if count < limit:
            return 0
        first = oldest[0][1] if oldest else now
        return max(1, int(first + self.window_s - now + 0.999))

    def retry_after_many(self, entries: list[tuple[str, str, int]], *, now: float | None = None) -> int:
        """:meth:`retry_after_s` of several ``(kind, digest, limit)`` in one round trip:
        the longest wait."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        for kind, digest, _ in entries:
            key = self._key(kind, digest)
            pipe.zremrangebyscore(key, 0, now - self.window_s)
            pipe.zcard(key)
            pipe.zrange(key, 0, 0, withscores=True)
        results = pipe.execute()
        wait = 0
        for i, (_, _, limit) in enumerate(entries):
            count, oldest = results[3 * i + 1], results[3 * i + 2]
            if count >= limit:
                first = oldest[0][1] if oldest else now
                wait = max(wait, max(1, int(first + self.window_s - now + 0.999)))
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

    def hit(self, kind: str, digest: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        key = self._key(kind, digest)
        pipe = self.client.pipeline()
        pipe.zadd(key, {uuid.uuid4().hex: now})
        pipe.expire(key, self.window_s + 1)
        pipe.execute()


ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class BodyLimit:
    """Refuse a request body over ``max_bytes`` with 413 before any route reads it: by its
    Content-Length when given, else by counting what arrives."""

    def __init__(self, app: ASGIApp, *, max_bytes: Callable[[], int], prefix: str = "/v1") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes()
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _too_large(send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await _too_large(send, limit)
                return
            chunks.append(body)
            if not message.get("more_body"):
                break
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send, limit: int) -> None:
    body = f'{{"detail":"request body too large (at most {limit} bytes)"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
