"""The dramatiq broker: Redis at ``VIPSYNC_REDIS_URL``, built once per process.

Nothing else lives in a worker process: every message names its job and the ids it works
on, and any worker on any machine can take it. The broker's middleware, in order:

- ``AgeLimit``, ``TimeLimit`` (per actor), ``ShutdownNotifications``, ``Callbacks``,
  ``Pipelines``: dramatiq's defaults;
- :class:`DeadLetterNotes`: keeps the error of a message that goes to the dead-letter
  queue (dramatiq stores the message as it was enqueued, without the error);
- ``Retries`` with :func:`vipsync.workers.retry.should_retry` as its predicate;
- ``CurrentMessage`` (a job's lock names the message that holds it);
- ``Prometheus`` (worker processes only: the exposition server on ``dramatiq_prom_port``).

The Redis client retries a dropped connection with backoff for about half a minute, so a
Redis restart does not fail the enqueue, fetch or ack that was under way.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as RedisRetry

from vipsync.config.settings import Settings
from vipsync.workers.retry import error_summary, should_retry

__all__ = [
    "QUEUES",
    "DeadLetterNotes",
    "build_broker",
    "build_stub_broker",
    "dlq_notes_key",
    "key",
    "make_middleware",
    "redis_client",
    "setup_broker",
]

log = logging.getLogger(__name__)

#: Long syncs and backfills run on ``sync``; webhooks and tagging on ``default``, so a
#: webhook never waits behind an hour-long backfill.
QUEUES = ("default", "sync")

#: Dead letters are kept this long (dramatiq's default is 7 days).
DEAD_MESSAGE_TTL_MS = 30 * 86_400_000

_lock = threading.Lock()
_broker: dramatiq.Broker | None = None


def key(namespace: str, *parts: str) -> str:
    """A Redis key of ours, under the broker's namespace (``dramatiq:lock:sync:shopify-us``)."""
    return ":".join((namespace, *parts))


def dlq_notes_key(namespace: str, queue_name: str) -> str:
    """The hash of the errors of the dead letters of ``queue_name`` (by Redis message id)."""
    return key(namespace, f"{queue_name}.XQ.notes")


def redis_client(url: str, *, retry_for_s: float = 30.0) -> redis.Redis:
    """A Redis client that rides out a restart: retries connection errors with backoff."""
    retries = max(1, int(retry_for_s / 1.0))
    return redis.Redis.from_url(
        url,
        retry=RedisRetry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=15,
        socket_connect_timeout=5,
        socket_keepalive=True,
    )


class DeadLetterNotes(Middleware):
    """Writes why a message was dead-lettered next to it: ``<queue>.XQ.notes``."""

    def __init__(self, client: redis.Redis | None, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._errors: dict[str, str] = {}

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is None:
            return
        # Runs after Retries (after-hooks run in reverse order): ``failed`` is final.
        if message.failed:
            self._errors[message.message_id] = error_summary(exception)

    def after_skip_message(self, broker, message):
        if message.failed:
            self._errors[message.message_id] = "skipped: age limit exceeded"

    def after_nack(self, broker, message):
        error = self._errors.pop(message.message_id, "failed")
        if self.client is None:
            return
        note = {
            "error": error,
            "failed_at_ms": int(time.time() * 1000),
            "attempts": message.options.get("retries", 0),  # failed attempts, this one included
            "traceback": (message.options.get("traceback") or "")[-4000:],
        }
        queue = message.queue_name.removesuffix(".DQ")
        try:
            self.client.hset(
                dlq_notes_key(self.namespace, queue), message.options["redis_message_id"], json.dumps(note)
            )
        except redis.RedisError:  # the message is in the DLQ anyway; only the note is lost
            log.warning("could not store a dead letter's error", extra={"message_id": message.message_id})


def _prometheus_middleware() -> Middleware:
    """dramatiq's Prometheus middleware, harmless in a process that only enqueues (its
    metrics exist only after a worker process boots)."""
    from dramatiq.middleware.prometheus import Prometheus

    class SafePrometheus(Prometheus):
        def after_enqueue(self, broker, message, delay):
            if hasattr(self, "total_retried_messages"):
                super().after_enqueue(broker, message, delay)

        def after_nack(self, broker, message):
            if hasattr(self, "total_rejected_messages"):
                super().after_nack(broker, message)

    return SafePrometheus()


def make_middleware(
    settings: Settings, *, client: redis.Redis | None, prometheus: bool = False
) -> list[Middleware]:
    """vipsync's middleware stack (see the module docstring)."""
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        DeadLetterNotes(client, settings.broker_namespace),
        Retries(
            max_retries=settings.retry_max_retries,
            min_backoff=settings.retry_min_backoff_ms,
            max_backoff=15 * 60_000,
            retry_when=lambda retries, exc: should_retry(
                retries, exc, max_retries=settings.retry_max_retries
            ),
        ),
        CurrentMessage(),
    ]
    if prometheus:
        middleware.append(_prometheus_middleware())
    return middleware


def build_stub_broker(settings: Settings) -> dramatiq.Broker:
    """An in-memory broker with the same middleware, for unit tests."""
    from dramatiq.brokers.stub import StubBroker

    broker = StubBroker(middleware=make_middleware(settings, client=None))
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def build_broker(
    settings: Settings,
    *,
    client: redis.Redis | None = None,
    prometheus: bool = False,
) -> RedisBroker:
    """A Redis broker with vipsync's middleware (not installed as dramatiq's global)."""
    client = client or redis_client(settings.redis_url)
    middleware = make_middleware(settings, client=client, prometheus=prometheus)
    broker = RedisBroker(
        client=client,
        middleware=middleware,
        namespace=settings.broker_namespace,
        heartbeat_timeout=settings.worker_heartbeat_timeout_s * 1000,
        maintenance_chance=settings.worker_maintenance_chance,
        dead_message_ttl=DEAD_MESSAGE_TTL_MS,
    )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def _in_worker_process() -> bool:
    """True in a process started by the ``dramatiq`` command (it gets the metrics server)."""
    import sys

    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return (
        os.path.basename(sys.argv[0] or "") == "dramatiq"
        or getattr(main_spec, "name", "") == "dramatiq.__main__"
    )


def setup_broker(settings: Settings | None = None, *, prometheus: bool | None = None) -> dramatiq.Broker:
    """The process's broker, built on first call and installed as dramatiq's global."""
    global _broker
    with _lock:
        if _broker is None:
            if settings is None:
                from vipsync.bootstrap import get_context

                settings = get_context().settings
            if prometheus is None:
                prometheus = _in_worker_process()
            _broker = build_broker(settings, prometheus=prometheus)
            dramatiq.set_broker(_broker)
        return _broker


def broker_info(broker: Any) -> dict[str, Any]:
    """Namespace and queues, for the CLI."""
    return {"namespace": getattr(broker, "namespace", None), "queues": sorted(broker.get_declared_queues())}
