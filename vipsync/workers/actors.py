"""The dramatiq actors: one thin actor per job of :mod:`vipsync.workers.registry`.

Run the workers with ``dramatiq vipsync.workers.actors`` (or ``vipsync worker``).

An actor takes the job's ids as keyword arguments (strings, numbers, booleans: never
objects), and:

1. takes the store's lock for a sync (one sync per store anywhere; an incremental sync
   that finds its store busy is skipped, since the running one or the next tick covers
   it; a backfill waits and retries);
2. runs the job with the process's :class:`~vipsync.bootstrap.Context`, whose dispatcher
   enqueues (a job's own follow-ups go to the queue, never inline);
3. after the job returned (its writes are committed), enqueues the follow-ups
   (``tag_pending`` after a sync or a webhook). The jobs never chain themselves.

Every job is idempotent (upserts keyed by source and id, bookmarks capped at the sync's
start), so a message delivered twice, after a crash or a Redis restart, is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage

from vipsync.config.settings import Settings
from vipsync.errors import LockNotAcquired, RateLimited
from vipsync.workers import metrics
from vipsync.workers.broker import key
from vipsync.workers.locks import StoreLock, lock_key
from vipsync.workers.retry import backoff_ms, classify, error_summary
from vipsync.workers.specs import SPECS, JobSpec

__all__ = [
    "ACTORS",
    "SPECS",
    "ActorTable",
    "JobSpec",
    "QueueDispatcher",
    "broker",
    "declare_actors",
    "install_dispatcher",
    "register_job",
    "worker_context",
]

log = logging.getLogger(__name__)


def _pending_key(namespace: str, job: str) -> str:
    return key(namespace, "pending", job)


def _check_ids(job: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Messages carry ids, never objects."""
    for name, value in kwargs.items():
        if value is not None and not isinstance(value, (str, int, bool)):
            raise TypeError(
                f"job {job}: argument {name!r} must be an id (str, int, bool), not {type(value).__name__}"
            )
    return dict(kwargs)


class QueueDispatcher:
    """A :attr:`Context.dispatcher` that enqueues a dramatiq message (call it only after
    the commit the job depends on)."""

    def __init__(
        self, actors: Mapping[str, dramatiq.Actor], *, client: redis.Redis | None, namespace: str
    ) -> None:
        self.actors = actors
        self.client = client
        self.namespace = namespace

    def __call__(self, job: str, kwargs: dict[str, Any]) -> dramatiq.Message | None:
        try:
            actor = self.actors[job]
        except KeyError:
            raise KeyError(f"unknown job {job!r}") from None
        kwargs = _check_ids(job, kwargs)
        spec = SPECS.get(job, JobSpec())
        # One waiting message is enough: it will see every commit made before it starts.
        if (
            spec.coalesce
            and self.client is not None
            and not self.client.set(_pending_key(self.namespace, job), "1", nx=True, ex=600)
        ):
            return None
        return actor.send_with_options(kwargs=kwargs)


def worker_context(dispatcher: Callable[[str, dict[str, Any]], Any]):
    """The process's context, with follow-up jobs going to the queue."""
    from vipsync.bootstrap import get_context

    ctx = get_context()
    if ctx.dispatcher is None:
        ctx.dispatcher = dispatcher
    return ctx


def _perform(
    job: str,
    kwargs: dict[str, Any],
    *,
    settings: Settings,
    client: redis.Redis | None,
    context_factory: Callable[[], Any],
) -> None:
    from vipsync.workers.registry import run_job
    from vipsync.workers.results import SyncResult

    spec = SPECS.get(job, JobSpec())
    message = CurrentMessage.get_current_message()
    message_id = message.message_id if message is not None else None
    if spec.coalesce and client is not None:
        client.delete(_pending_key(settings.broker_namespace, job))
    lock: StoreLock | None = None
    if spec.lock_on and client is not None:
        name = f"{spec.queue}:{kwargs[spec.lock_on]}"
        lock = StoreLock(
            client,
            lock_key(settings.broker_namespace, name),
            ttl_s=settings.lock_ttl_s,
            message_id=message_id,
        )
        try:
            lock.acquire()
        except LockNotAcquired:
            if spec.skip_when_busy(kwargs):
                log.info("store busy; skipped", extra={"job": job, "lock": name})
                metrics.record_job(job, "skipped")
                return
            metrics.record_job(job, "retried", error_kind="transient")
            raise
    ctx = context_factory()
    try:
        result = run_job(ctx, job, **kwargs)
    except RateLimited as exc:
        metrics.record_job(job, "retried", error_kind="transient")
        retries = message.options.get("retries", 0) if message is not None else 0
        delay = backoff_ms(
            retries, min_backoff_ms=settings.retry_min_backoff_ms, retry_after_s=exc.retry_after_s
        )
        store = kwargs.get("store_key")
        if store and exc.retry_after_s:
            metrics.record_rate_limit_wait(str(store), exc.retry_after_s)
        raise dramatiq.Retry(error_summary(exc), delay=delay) from exc
    except Exception as exc:
        metrics.record_job(job, "failed", error_kind=classify(exc))
        log.warning("job failed", extra={"job": job, "error": error_summary(exc), "message_id": message_id})
        raise
    finally:
        if lock is not None:
            lock.release()
    if isinstance(result, SyncResult):
        metrics.record_sync(result)
    metrics.record_job(job, "done")
    for follow_up in spec.then:
        ctx.dispatch(follow_up)


class ActorTable(dict):
    """The actors of one broker by job name, with the dispatcher that enqueues to them."""

    dispatcher: QueueDispatcher


def declare_actors(
    broker: dramatiq.Broker,
    settings: Settings,
    *,
    client: redis.Redis | None = None,
    context_factory: Callable[[], Any] | None = None,
    jobs: list[str] | None = None,
    into: ActorTable | None = None,
) -> ActorTable:
    """One actor per job, on ``broker``. ``client`` is the Redis of the locks (None: no
    locks, for the stub broker); ``context_factory`` builds the job's context (default:
    the process's, with the table's dispatcher); ``into`` adds to an existing table."""
    from vipsync.workers.registry import JOBS

    if into is None:
        into = ActorTable()
        into.dispatcher = QueueDispatcher(into, client=client, namespace=settings.broker_namespace)
    dispatcher = into.dispatcher
    factory = context_factory or (lambda: worker_context(dispatcher))

    def make(job: str) -> dramatiq.Actor:
        spec = SPECS.get(job, JobSpec())

        def run(**kwargs: Any) -> None:
            _perform(job, kwargs, settings=settings, client=client, context_factory=factory)

        run.__name__ = run.__qualname__ = job
        declare = dramatiq.actor(
            actor_name=job, queue_name=spec.queue, broker=broker, time_limit=spec.time_limit_ms
        )
        return declare(run)

    for job in jobs or list(JOBS):
        if job not in into:
            into[job] = make(job)
    return into


def register_job(name: str, target: str, spec: JobSpec | None = None) -> dramatiq.Actor:
    """Add a job (``"module:function"``) to the registry and declare its actor on the
    process's broker (test and demo jobs; the real ones are in the registry)."""
    from vipsync.workers.registry import JOBS

    JOBS[name] = target
    SPECS[name] = spec or JobSpec()
    declare_actors(broker, _settings(), client=getattr(broker, "client", None), jobs=[name], into=ACTORS)
    return ACTORS[name]


def install_dispatcher(ctx: Any) -> None:
    """Make ``ctx.dispatch`` enqueue to the workers (the web app and the scheduler)."""
    ctx.dispatcher = ACTORS.dispatcher


def _settings() -> Settings:
    from vipsync.bootstrap import get_context

    return get_context().settings


# The process's broker and actors (what ``dramatiq vipsync.workers.actors`` loads).
from vipsync.workers.broker import setup_broker  # noqa: E402

broker = setup_broker()
ACTORS: ActorTable = declare_actors(broker, _settings(), client=getattr(broker, "client", None))
