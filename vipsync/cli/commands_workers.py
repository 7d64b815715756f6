"""Commands of the workers part: ``run``, ``scheduler``, ``worker``, ``web`` and ``dlq``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import typer
from rich.table import Table

from vipsync.bootstrap import get_context
from vipsync.cli.progress import console, err_console
from vipsync.errors import ConfigError

__all__ = ["register"]


def _print_step(store: str, status: str, detail: Any) -> None:
    if status == "failed":
        err_console.print(f"[red]{store}: failed[/] {detail}", highlight=False)
        return
    as_dict = getattr(detail, "as_dict", None)
    if callable(as_dict):
        counts = as_dict()
        shown = ", ".join(
            f"{k} {v}" for k, v in counts.items() if k not in {"store", "cursor"} and v not in (None, 0)
        )
        console.print(f"{store}: {status} ({shown or 'nothing new'})", highlight=False)
    else:
        console.print(
            f"{store}: {status}" + (f" ({detail})" if detail not in (None, "") else ""), highlight=False
        )


def run(
    loop: bool = typer.Option(
        False, "--loop", help="Keep running on the schedule (every VIPSYNC_SYNC_INTERVAL_S)."
    ),
    interval_s: int = typer.Option(
        0, "--interval-s", help="Seconds between syncs with --loop (default: the setting)."
    ),
    metrics_port: int = typer.Option(
        0, "--metrics-port", help="Serve Prometheus metrics on this port (0: off)."
    ),
) -> None:
    """Sync every store that has credentials or an endpoint, then tag units: inline, no Redis."""
    from vipsync.workers.runner import run_loop, run_once

    ctx = get_context()
    if metrics_port:
        from vipsync.workers.metrics import serve_metrics

        serve_metrics(port=metrics_port)
    if loop:
        with contextlib.suppress(KeyboardInterrupt, SystemExit):
            run_loop(ctx, interval_s=interval_s or None, on_step=_print_step)
        return
    report = run_once(ctx, on_step=_print_step)
    if not report.results and not report.errors:
        console.print("no store has credentials or an endpoint: nothing to sync (see the stores file)")
    if not report.ok:
        raise typer.Exit(2)  # an expected failure (see the exit codes in the README)


def scheduler(
    interval_s: int = typer.Option(
        0, "--interval-s", help="Seconds between syncs (default: VIPSYNC_SYNC_INTERVAL_S)."
    ),
) -> None:
    """Enqueue the scheduled jobs to the workers (Redis); safe to run twice."""
    from vipsync.workers.schedule import queue_scheduler

    ctx = get_context()
    sched = queue_scheduler(ctx, interval_s=interval_s or None)
    err_console.print(
        f"scheduler: syncing every {interval_s or ctx.settings.sync_interval_s} s", highlight=False
    )
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        sched.start()


def worker(
    processes: int = typer.Option(2, "--processes", "-p", help="Worker processes."),
    threads: int = typer.Option(4, "--threads", "-t", help="Threads per process."),
    queues: list[str] = typer.Option([], "--queue", "-Q", help="Only these queues (default: all)."),
) -> None:
    """Run dramatiq workers (the same as `dramatiq vipsync.workers.actors`)."""
    argv = ["dramatiq", "vipsync.workers.actors", "--processes", str(processes), "--threads", str(threads)]
    if queues:
        argv += ["--queues", *queues]
    sys.stdout.flush()
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


def web(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    enqueue: bool = typer.Option(
        False, "--enqueue/--inline", help="Hand webhooks and jobs to the workers (Redis) or run them inline."
    ),
) -> None:
    """Serve the HTTP API (vipsync.api.app:create_app) with uvicorn."""
    import uvicorn

    try:
        from vipsync.api.app import create_app
    except ImportError as exc:
        raise ConfigError(f"the HTTP API is not available: {exc}") from None
    ctx = get_context()
    if enqueue:
        from vipsync.workers.actors import install_dispatcher

        install_dispatcher(ctx)
    else:
        from vipsync.workers.runner import InlineDispatcher

        ctx.dispatcher = InlineDispatcher(ctx)
    uvicorn.run(create_app(ctx), host=host, port=port, log_level="warning")


def _dlq_client():
    """A broker whose Redis client gives up after a few seconds (a command, not a worker)."""
    import redis

    from vipsync.workers.broker import build_broker, redis_client

    settings = get_context().settings
    client = redis_client(settings.redis_url, retry_for_s=3)
    try:
        client.ping()
    except redis.RedisError:
        where = client.connection_pool.connection_kwargs
        raise ConfigError(
            f"cannot reach Redis at {where.get('host', '?')}:{where.get('port', '?')} (VIPSYNC_REDIS_URL)"
        ) from None
    return build_broker(settings, client=client), client, settings.broker_namespace


def dlq_list(as_json: bool = typer.Option(False, "--json", help="One JSON object per line.")) -> None:
    """Messages that failed for good: job, ids, error."""
    from vipsync.workers.dlq import list_dead

    _, client, ns = _dlq_client()
    letters = list_dead(client, namespace=ns)
    if as_json:
        for d in letters:
            typer.echo(json.dumps(d.as_dict(), sort_keys=True))
        return
    if not letters:
        console.print("the dead-letter queue is empty")
        return
    table = Table(title=f"dead letters ({len(letters)})")
    for col in ("id", "failed at", "job", "ids", "attempts", "error"):
        table.add_column(col)
    for d in letters:
        table.add_row(
            d.message_id[:8],
            d.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            d.job,
            json.dumps(d.kwargs, sort_keys=True),
            str(d.attempts),
            d.error,
        )
    console.print(table)


def _chosen(ids: list[str], all_: bool) -> list[str] | None:
    if all_:
        return None
    if any(not i.strip() for i in ids):
        raise ConfigError("an empty dead-letter id matches every message: name them, or pass --all")
    if not ids:
        raise ConfigError(
            "name the dead letters (ids from `vipsync dlq list`, a prefix is enough) or pass --all"
        )
    return ids


def dlq_replay(
    ids: list[str] = typer.Argument(None, help="Message ids (or prefixes)."),
    all_: bool = typer.Option(False, "--all", help="Every dead letter."),
) -> None:
    """Enqueue dead letters again (after the fix), as fresh messages."""
    from vipsync.workers.dlq import replay

    broker, client, ns = _dlq_client()
    done = replay(client, broker, namespace=ns, ids=_chosen(ids or [], all_))
    console.print(f"replayed {len(done)} message(s)")


def dlq_drop(
    ids: list[str] = typer.Argument(None, help="Message ids (or prefixes)."),
    all_: bool = typer.Option(False, "--all", help="Every dead letter."),
) -> None:
    """Delete dead letters for good."""
    from vipsync.workers.dlq import drop

    _, client, ns = _dlq_client()
    done = drop(client, namespace=ns, ids=_chosen(ids or [], all_))
    console.print(f"dropped {len(done)} message(s)")


def register(groups) -> None:
    """Add this module's commands to the CLI groups."""
    groups.app.command("run")(run)
    groups.app.command("scheduler")(scheduler)
    groups.app.command("worker")(worker)
    groups.app.command("web")(web)
    groups.dlq.command("list")(dlq_list)
    groups.dlq.command("replay")(dlq_replay)
    groups.dlq.command("drop")(dlq_drop)
