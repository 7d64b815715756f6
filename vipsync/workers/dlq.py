"""The dead-letter queue: messages that failed for good, with their error, and a replay.

dramatiq's Redis broker keeps a queue's dead letters in ``<ns>:<queue>.XQ`` (a sorted set
of Redis message ids by time of death) and ``<ns>:<queue>.XQ.msgs`` (the messages as they
were enqueued); :class:`vipsync.workers.broker.DeadLetterNotes` adds the error in
``<ns>:<queue>.XQ.notes``. Dead letters are kept 30 days.

Replaying enqueues the same job with the same ids as a fresh message (retry count reset),
then removes the dead letter: a crash in between leaves a duplicate dead letter, never a
lost one, and the jobs are idempotent.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis
from dramatiq import Message

from vipsync.workers.broker import QUEUES, dlq_notes_key, key

__all__ = ["DeadLetter", "drop", "list_dead", "replay", "select"]

# Options of a failed attempt that a replay must not carry over.
_ATTEMPT_OPTIONS = ("retries", "traceback", "eta", "redis_message_id", "requeue_timestamp")


@dataclass(frozen=True)
class DeadLetter:
    """One dead message."""

    queue: str
    redis_id: str
    message_id: str
    job: str
    kwargs: dict[str, Any]
    failed_at: datetime
    attempts: int
    error: str
    traceback: str
    data: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "queue": self.queue,
            "job": self.job,
            "kwargs": self.kwargs,
            "failed_at": self.failed_at.isoformat(timespec="seconds"),
            "attempts": self.attempts,
            "error": self.error,
        }


def _xq(namespace: str, queue: str) -> str:
    return key(namespace, f"{queue}.XQ")


def list_dead(client: redis.Redis, *, namespace: str, queues: tuple[str, ...] = QUEUES) -> list[DeadLetter]:
    """Every dead letter of ``queues``, oldest first."""
    out: list[DeadLetter] = []
    for queue in queues:
        entries = cast(
            list[tuple[bytes, float]], client.zrange(_xq(namespace, queue), 0, -1, withscores=True)
        )
        if not entries:
            continue
        ids = [rid for rid, _ in entries]
        datas = cast(list[bytes | None], client.hmget(_xq(namespace, queue) + ".msgs", ids))
        notes = cast(list[bytes | None], client.hmget(dlq_notes_key(namespace, queue), ids))
        for (rid, score), data, note in zip(entries, datas, notes, strict=True):
            if data is None:
                continue
            message = Message.decode(data)
            info = json.loads(note) if note else {}
            out.append(
                DeadLetter(
                    queue=queue,
                    redis_id=rid.decode(),
                    message_id=message.message_id,
                    job=message.actor_name,
                    kwargs=dict(message.kwargs),
                    failed_at=datetime.fromtimestamp(score / 1000, UTC),
                    attempts=int(info.get("attempts", message.options.get("retries", 0))),
                    error=info.get("error") or _last_line(message.options.get("traceback")) or "failed",
                    traceback=info.get("traceback") or message.options.get("traceback") or "",
                    data=data,
                )
            )
    out.sort(key=lambda d: d.failed_at)
    return out


def _last_line(tb: str | None) -> str:
    lines = [line for line in (tb or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def select(letters: list[DeadLetter], ids: list[str] | None) -> list[DeadLetter]:
    """The dead letters whose message id starts with one of ``ids`` (all when None). A
    blank id matches nothing: only None means every letter."""
    if ids is None:
        return list(letters)
    wanted = [i.strip() for i in ids if i.strip()]
    return [d for d in letters if any(d.message_id.startswith(i) for i in wanted)]


def _remove(client: redis.Redis, namespace: str, letter: DeadLetter) -> None:
    pipe = client.pipeline()
    pipe.zrem(_xq(namespace, letter.queue), letter.redis_id)
    pipe.hdel(_xq(namespace, letter.queue) + ".msgs", letter.redis_id)
    pipe.hdel(dlq_notes_key(namespace, letter.queue), letter.redis_id)
    pipe.execute()


def replay(client: redis.Redis, broker: Any, *, namespace: str, ids: list[str] | None) -> list[DeadLetter]:
    """Enqueue the chosen dead letters again as fresh messages; returns them."""
    done = []
    for letter in select(list_dead(client, namespace=namespace), ids):
        message = Message.decode(letter.data)
        options = {k: v for k, v in message.options.items() if k not in _ATTEMPT_OPTIONS}
        fresh = dataclasses.replace(message, queue_name=letter.queue, options=options)
        broker.enqueue(fresh)
        _remove(client, namespace, letter)
        done.append(letter)
    return done


def drop(client: redis.Redis, *, namespace: str, ids: list[str] | None) -> list[DeadLetter]:
    """Delete the chosen dead letters for good; returns them."""
    done = []
    for letter in select(list_dead(client, namespace=namespace), ids):
        _remove(client, namespace, letter)
        done.append(letter)
    return done
