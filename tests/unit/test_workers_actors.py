"""The actors on dramatiq's in-memory StubBroker: retries, dead letters, follow-ups."""

from __future__ import annotations

import pytest
from dramatiq import Worker

from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.errors import PermanentSourceError, RateLimited, TransientSourceError
from vipsync.workers import registry
from vipsync.workers.actors import SPECS, JobSpec, declare_actors
from vipsync.workers.broker import build_stub_broker
from vipsync.workers.results import SyncResult


@pytest.fixture
def harness(monkeypatch):
    """A stub broker, our actors on it, and jobs that record their calls."""
    calls: list[tuple[str, dict]] = []
    behaviour: dict[str, list] = {}

    def job(name):
        def run(ctx, **kwargs):
            calls.append((name, kwargs))
            plan = behaviour.get(name) or []
            outcome = plan.pop(0) if plan else None
            if isinstance(outcome, BaseException):
                raise outcome
            if name.startswith("sync"):
                return SyncResult(store_key=kwargs.get("store_key", "?"), mode="incremental", inserted=3)
            return outcome

        return run

    jobs = {
        name: job(name)
        for name in ("sync_shopify", "tag_pending", "process_shopify_webhook", "apply_trade_in_codes")
    }
    monkeypatch.setattr(registry, "resolve", lambda name: jobs[name])
    settings = Settings(retry_min_backoff_ms=1, retry_max_retries=4)
    broker = build_stub_broker(settings)
    table = {}

    def context():
        ctx = Context(settings=settings)
        ctx.dispatcher = table["t"].dispatcher
        return ctx

    table["t"] = declare_actors(broker, settings, client=None, context_factory=context, jobs=list(jobs))
    worker = Worker(broker, worker_timeout=20)
    worker.start()

    def drain():
        for _ in range(3):  # follow-ups land after the first join
            for queue in ("sync", "default"):
                broker.join(queue, fail_fast=False, timeout=10_000)
            worker.join()

    yield {"broker": broker, "actors": table["t"], "calls": calls, "behaviour": behaviour, "drain": drain}
    worker.stop()


def test_a_sync_enqueues_tagging_after_it_commits(harness):
    harness["actors"].dispatcher("sync_shopify", {"store_key": "shopify-us"})
    harness["drain"]()
    names = [name for name, _ in harness["calls"]]
    assert names[0] == "sync_shopify" and sorted(names[1:]) == ["apply_trade_in_codes", "tag_pending"]


def test_a_failed_sync_does_not_enqueue_tagging_and_is_retried_until_it_works(harness):
    harness["behaviour"]["sync_shopify"] = [TransientSourceError("502"), TransientSourceError("timeout")]
    harness["actors"].dispatcher("sync_shopify", {"store_key": "shopify-eu"})
    harness["drain"]()
    assert [name for name, _ in harness["calls"]] == ["sync_shopify"] * 3 + [
        "tag_pending",
        "apply_trade_in_codes",
    ]
    assert harness["broker"].dead_letters == []


def test_a_permanent_error_goes_to_the_dead_letter_queue_at_once(harness):
    harness["behaviour"]["sync_shopify"] = [PermanentSourceError("401 invalid token")]
    harness["actors"].dispatcher("sync_shopify", {"store_key": "shopify-jp"})
    harness["drain"]()
    assert [name for name, _ in harness["calls"]] == ["sync_shopify"]
    (dead,) = harness["broker"].dead_letters
    assert dead.actor_name == "sync_shopify" and dead.kwargs == {"store_key": "shopify-jp"}


def test_transient_errors_end_in_the_dead_letter_queue_after_max_retries(harness):
    harness["behaviour"]["process_shopify_webhook"] = [TransientSourceError("down")] * 10
    harness["actors"].dispatcher("process_shopify_webhook", {"delivery_id": 7})
    harness["drain"]()
    assert len(harness["calls"]) == 1 + 4
    assert [d.kwargs for d in harness["broker"].dead_letters] == [{"delivery_id": 7}]


def test_a_rate_limit_is_retried_after_the_delay_the_source_asked_for(harness):
    harness["behaviour"]["sync_shopify"] = [RateLimited("429", retry_after_s=0.05)]
    harness["actors"].dispatcher("sync_shopify", {"store_key": "shopify-us"})
    harness["drain"]()
    names = [name for name, _ in harness["calls"]]
    assert names[:2] == ["sync_shopify"] * 2 and sorted(names[2:]) == ["apply_trade_in_codes", "tag_pending"]


def test_messages_carry_ids_never_objects(harness):
    with pytest.raises(TypeError, match="must be an id"):
        harness["actors"].dispatcher("sync_shopify", {"store_key": object()})
    with pytest.raises(KeyError):
        harness["actors"].dispatcher("no_such_job", {})


def test_sync_jobs_run_on_their_own_queue_with_a_store_lock():
    assert SPECS["sync_shopify"].queue == "sync" and SPECS["sync_shopify"].lock_on == "store_key"
    assert SPECS["sync_shopify"].skip_when_busy({"store_key": "a"})
    assert not SPECS["sync_shopify"].skip_when_busy({"store_key": "a", "backfill": True})
    assert JobSpec().queue == "default"


def test_the_embedded_dispatcher_runs_a_webhook_then_its_tagging_inline(monkeypatch):
    from vipsync.workers.runner import InlineDispatcher

    calls = []
    jobs = {
        "process_shopify_webhook": lambda ctx, **kw: calls.append(("webhook", kw)),
        "tag_pending": lambda ctx, **kw: calls.append(("tag", kw)),
        "apply_trade_in_codes": lambda ctx, **kw: calls.append(("trade_ins", kw)),
    }
    monkeypatch.setattr(registry, "resolve", lambda name: jobs[name])
    ctx = Context(settings=Settings())
    ctx.dispatcher = InlineDispatcher(ctx)
    ctx.dispatch("process_shopify_webhook", delivery_id=3)
    assert calls == [("webhook", {"delivery_id": 3}), ("tag", {}), ("trade_ins", {})]
