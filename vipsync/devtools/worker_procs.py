"""Helpers for the workers' tests and benchmark: a private ``redis-server``, dramatiq
worker and scheduler processes, Redis key namespaces, free ports.

Nothing here touches the shared Redis beyond the keys of the namespace it was given.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "Proc",
    "RedisServer",
    "delete_namespace",
    "free_port",
    "new_namespace",
    "scrape_metrics",
    "start_workers",
    "wait_until",
    "worker_env",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_namespace(prefix: str = "vipsync-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def delete_namespace(client: Any, namespace: str) -> int:
    """Delete every key of ``namespace`` (and only those)."""
    n = 0
    for k in client.scan_iter(match=f"{namespace}:*", count=1000):
        n += client.delete(k)
    return n


def wait_until(
    predicate: Callable[[], Any], *, timeout_s: float, interval_s: float = 0.1, what: str = "condition"
):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


class RedisServer:
    """A ``redis-server`` of our own on a free port, persisting to an append-only file so
    a restart keeps the queues (as production Redis must)."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        wait_until(lambda: _ping(client), timeout_s=10, what="redis-server to start")
        return self

    def stop(self) -> None:
        """A clean shutdown (what a restart or a failover does)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, *, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def scrape_metrics(port: int, *, timeout_s: float = 2.0) -> str | None:
    """The Prometheus text served on ``port``, or None when nothing answers yet."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as resp:
            return resp.read().decode()
    except OSError:
        return None


def _ping(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def worker_env(
    *,
    database_url: str,
    redis_url: str,
    namespace: str,
    metrics_dir: Path,
    metrics_port: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict:
    """The environment of a worker or scheduler process: fast failure detection for drills,
    and the Prometheus exposition server on a port and directory of its own."""
    Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "dramatiq_prom_port": str(metrics_port or free_port()),
            "dramatiq_prom_host": "127.0.0.1",
            "dramatiq_prom_db": str(metrics_dir),
            "VIPSYNC_DATABASE_URL": database_url,
            "VIPSYNC_REDIS_URL": redis_url,
            "VIPSYNC_BROKER_NAMESPACE": namespace,
            "VIPSYNC_WORKER_HEARTBEAT_TIMEOUT_S": "2",
            "VIPSYNC_WORKER_MAINTENANCE_CHANCE": "1000000",
            "VIPSYNC_LOCK_TTL_S": "20",
            "VIPSYNC_RETRY_MIN_BACKOFF_MS": "200",
            "VIPSYNC_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Drills and benchmarks on PostgreSQL need a PII key like production does; a fixed,
    # public one is fine for their throwaway databases.
    env.setdefault("VIPSYNC_PII_KEY", "devtools-only-pii-key-for-drills-and-benchmarks")
    env.update(extra or {})
    return env


class Proc:
    """A process group we started (killed as a whole)."""

    def __init__(self, argv: list[str], *, env: Mapping[str, str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = Path(log_path)
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            argv, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill9(self) -> None:
        """Kill the whole process group at once, like a crashed machine."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, *, timeout_s: float = 20) -> None:
        if self.popen.poll() is None:
            # The main process forwards the signal to its children and waits for them.
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def start_workers(
    *,
    env: Mapping[str, str],
    log_path: Path,
    processes: int = 1,
    threads: int = 2,
    modules: tuple[str, ...] = (),
) -> Proc:
    """``dramatiq vipsync.workers.actors [modules]`` as a process group."""
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "vipsync.workers.actors",
        *modules,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    return Proc(argv, env=env, log_path=log_path)
