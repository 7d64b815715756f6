"""The store lock on the real Redis (keys under a namespace of this test only)."""

from __future__ import annotations

import os
import time

import pytest
import redis

from vipsync.devtools.worker_procs import delete_namespace, new_namespace
from vipsync.errors import LockNotAcquired
from vipsync.workers.locks import StoreLock, lock_key, read_holder

REDIS_URL = os.environ.get("VIPSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def client():
    c = redis.Redis.from_url(REDIS_URL)
    ns = new_namespace()
    c.ns = ns
    yield c
    delete_namespace(c, ns)
    c.close()


def test_a_second_sync_of_the_same_store_is_refused_while_the_first_runs(client):
    key = lock_key(client.ns, "sync:shopify-us")
    with StoreLock(client, key, ttl_s=5, message_id="m1"):
        with pytest.raises(LockNotAcquired, match="held by"):
            StoreLock(client, key, ttl_s=5, message_id="m2").acquire()
        assert read_holder(client, key).message_id == "m1"
    # Released: the next one gets it.
    with StoreLock(client, key, ttl_s=5, message_id="m2"):
        pass
    assert client.get(key) is None


def test_other_stores_are_not_blocked(client):
    with (
        StoreLock(client, lock_key(client.ns, "sync:a"), ttl_s=5),
        StoreLock(client, lock_key(client.ns, "sync:b"), ttl_s=5),
    ):
        pass


def test_a_crashed_holders_lock_expires_by_itself(client):
    key = lock_key(client.ns, "sync:shopify-eu")
    dead = StoreLock(client, key, ttl_s=1, message_id="m1")
    dead.acquire()
    dead._stop.set()  # the process died: nobody refreshes or releases
    with pytest.raises(LockNotAcquired):
        StoreLock(client, key, ttl_s=1, message_id="m2").acquire()
    time.sleep(1.2)
    with StoreLock(client, key, ttl_s=1, message_id="m2"):
        pass


def test_the_lock_stays_held_while_a_long_sync_runs(client):
    key = lock_key(client.ns, "sync:shopify-jp")
    with StoreLock(client, key, ttl_s=0.6, message_id="m1") as lock:
        time.sleep(1.5)  # well past the expiry: the refresher kept it
        with pytest.raises(LockNotAcquired):
            StoreLock(client, key, ttl_s=0.6, message_id="m2").acquire()
        assert not lock.lost


def test_the_same_message_redelivered_after_a_crash_takes_its_lock_over(client):
    key = lock_key(client.ns, "sync:amazon-na")
    dead = StoreLock(client, key, ttl_s=30, message_id="m1")
    dead.acquire()
    dead._stop.set()
    again = StoreLock(client, key, ttl_s=30, message_id="m1")
    again.acquire()
    assert again.took_over
    assert read_holder(client, key).owner == again.holder.owner
    again.release()
    assert client.get(key) is None
