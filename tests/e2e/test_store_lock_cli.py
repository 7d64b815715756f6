"""Every way a sync starts honours the store lock the workers take, when Redis is configured;
``vipsync dlq drop|replay`` refuse an empty id."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from vipsync.devtools.fake_shopify import FakeShopify
from vipsync.devtools.worker_procs import delete_namespace, new_namespace
from vipsync.workers.locks import StoreLock, lock_key

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
VIPSYNC = [sys.executable, "-m", "vipsync.cli.main"]
KEY = "shopify-us"


def _run(*args: str, env) -> subprocess.CompletedProcess:
    return subprocess.run([*VIPSYNC, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def fake():
    with FakeShopify(orders=20, seed=4, restore_rate=5000) as server:
        yield server


@pytest.fixture
def setup(fake, sqlite_url, tmp_path):
    ns = new_namespace()
    client = redis.Redis.from_url(REDIS_URL)
    stores = tmp_path / "stores.toml"
    stores.write_text(fake.stores_toml(key=KEY))
    env = dict(
        os.environ,
        VIPSYNC_DATABASE_URL=sqlite_url,
        VIPSYNC_DATA_DIR=str(tmp_path / "data"),
        VIPSYNC_STORES_FILE=str(stores),
        VIPSYNC_REDIS_URL=REDIS_URL,
        VIPSYNC_BROKER_NAMESPACE=ns,
        VIPSYNC_FAKE_SHOPIFY_ACCESS_TOKEN=fake.access_token,
        CI="true",
        COLUMNS="200",
    )
    yield env, client, ns
    delete_namespace(client, ns)
    client.close()


def test_a_cli_sync_is_refused_while_a_worker_holds_the_store_lock(fake, setup):
    env, client, ns = setup
    with StoreLock(client, lock_key(ns, f"sync:{KEY}"), ttl_s=30, message_id="worker-message"):
        busy = _run("sync", "shopify", "--store", KEY, env=env)
        assert busy.returncode == 2, busy.stderr
        assert "being synced elsewhere" in busy.stderr and "Traceback" not in busy.stderr
        assert fake.counters["graphql"] == 0
        run = _run("run", env=env)  # the embedded runner skips the busy store
        assert run.returncode == 0, run.stderr
        assert f"{KEY}: skipped" in run.stdout + run.stderr
        assert fake.counters["graphql"] == 0
    done = _run("sync", "shopify", "--store", KEY, env=env)
    assert done.returncode == 0, done.stderr
    assert fake.counters["graphql"] > 0
    assert client.get(lock_key(ns, f"sync:{KEY}")) is None  # released after the sync


@pytest.mark.parametrize("command", ["drop", "replay"])
def test_dlq_commands_refuse_an_empty_id(setup, command):
    env, _client, _ns = setup
    out = _run("dlq", command, "", env=env)
    assert out.returncode == 2 and "empty dead-letter id" in out.stderr
