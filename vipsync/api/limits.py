"""Guards of the ``/v1`` API: request body size, and the sliding-window rate limits in
Redis (:class:`vipsync.workers.ratelimit.SlidingWindow`, shared with the on-demand fetch
budget). Rate-limit keys are keyed digests (``Digester.digest``) of what they count (a
client token's name, an end-user address, a normalized order identifier), so Redis holds
no address or order number in clear.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from vipsync.workers.ratelimit import SlidingWindow

__all__ = ["BodyLimit", "SlidingWindow"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


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
