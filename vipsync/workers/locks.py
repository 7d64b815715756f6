"""One sync per store at a time, anywhere: a Redis lock with an expiry, kept alive while
the sync runs.

The lock's value says who holds it (the dramatiq message id, the host and process, when
it started). The holder refreshes the expiry every third of it; a crashed holder's lock
frees itself after ``ttl_s``. When the message that holds a lock comes back (dramatiq
gave a dead worker's message to another worker), the lock is taken over at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.lock import Lock

from vipsync.errors import LockNotAcquired

__all__ = ["Holder", "StoreLock", "lock_key", "read_holder"]

log = logging.getLogger(__name__)

# Replace the value only when it is still the one we read (take over a dead attempt's lock).
_SWAP = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0
"""


def lock_key(namespace: str, name: str) -> str:
    return f"{namespace}:lock:{name}"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock."""

    message_id: str | None
    owner: str
    started_at: float

    def token(self) -> str:
        return json.dumps({"message_id": self.message_id, "owner": self.owner, "started_at": self.started_at})

    @classmethod
    def parse(cls, raw: bytes | str | None) -> Holder | None:
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return cls(
                message_id=data.get("message_id"),
                owner=data.get("owner", "?"),
                started_at=data.get("started_at", 0),
            )
        except (ValueError, AttributeError):
            return cls(message_id=None, owner="?", started_at=0)


def read_holder(client: redis.Redis, key: str) -> Holder | None:
    return Holder.parse(client.get(key))


class StoreLock:
    """``with StoreLock(client, key, ttl_s=60, message_id=...):`` or LockNotAcquired."""

    def __init__(self, client: redis.Redis, key: str, *, ttl_s: float, message_id: str | None = None) -> None:
        self.client = client
        self.key = key
        self.ttl_s = ttl_s
        self.holder = Holder(
            message_id=message_id, owner=f"{socket.gethostname()}:{os.getpid()}", started_at=time.time()
        )
        self._lock = Lock(client, key, timeout=ttl_s, blocking=False, thread_local=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        self.took_over = False

    def acquire(self) -> None:
        token = self.holder.token()
        if self._lock.acquire(blocking=False, token=token):
            self._start_refresher()
            return
        raw = self.client.get(self.key)
        current = Holder.parse(raw)
        # Our own message's earlier attempt, on a worker dramatiq declared dead.
        if (
            raw is not None
            and current is not None
            and self.holder.message_id is not None
            and current.message_id == self.holder.message_id
            and self.client.eval(_SWAP, 1, self.key, raw, token, int(self.ttl_s * 1000))
        ):
            self._lock.local.token = token.encode()
            self.took_over = True
            log.warning(
                "took over the lock of a dead attempt",
                extra={"lock": self.key, "previous": current.owner},
            )
            self._start_refresher()
            return
        held_by = current.owner if current else "?"
        raise LockNotAcquired(f"{self.key} is held by {held_by}")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._lock.release()
        except redis.exceptions.LockError:
            self.lost = True
            log.warning("lock expired before release", extra={"lock": self.key})
        except redis.RedisError:
            log.warning("could not release lock; it expires by itself", extra={"lock": self.key})

    def _start_refresher(self) -> None:
        self._thread = threading.Thread(target=self._refresh, name=f"lock-refresh {self.key}", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        every = max(self.ttl_s / 3, 0.2)
        while not self._stop.wait(every):
            try:
                self._lock.reacquire()
            except redis.exceptions.LockNotOwnedError:
                self.lost = True
                log.warning("lost the lock while running", extra={"lock": self.key})
                return
            except redis.RedisError:  # Redis restarting: keep trying, the expiry is our margin
                log.info("could not refresh lock; retrying", extra={"lock": self.key})

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
