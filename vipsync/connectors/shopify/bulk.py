"""Backfill through a bulk operation: start it, poll it to the end, stream the JSONL
result to disk (the standard library's ``urllib``, as the Admin API client: no second HTTP
library loaded for one download, about 5 MiB), then parse it in constant memory.

Outcomes handled: another bulk query already running for this app and shop (we wait for it
to finish, then start ours: Shopify runs one at a time); ``FAILED``, ``CANCELED`` and
``EXPIRED`` operations (a clear error, nothing half-applied); ``COMPLETED`` without a
``url`` (Shopify's way of saying zero objects matched).
"""

from __future__ import annotations

import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.records import OrderRecord, Rejected
from vipsync.connectors.shopify.client import ShopifyClient
from vipsync.connectors.shopify.files import read_orders_file
from vipsync.connectors.shopify.queries import BULK_CURRENT_QUERY, BULK_ORDERS_QUERY, BULK_RUN_MUTATION
from vipsync.connectors.shopify.throttle import backoff_s
from vipsync.downloads import open_private
from vipsync.errors import PermanentSourceError, TransientSourceError

__all__ = [
    "TERMINAL_STATUSES",
    "BulkResult",
    "download_result",
    "iter_bulk_file",
    "refunds_without_lines",
    "run_bulk_query",
]

log = logging.getLogger(__name__)

RUNNING_STATUSES = frozenset({"CREATED", "RUNNING", "CANCELING"})
TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})


@dataclass
class BulkResult:
    """A finished bulk operation: its id, object count and the downloaded file (None when
    the operation matched nothing)."""

    operation_id: str
    object_count: int
    path: Path | None
    waited_for_other: bool = False


def _current(client: ShopifyClient) -> dict | None:
    doc = client.execute(BULK_CURRENT_QUERY, cost=1)
    op = (doc.get("data") or {}).get("currentBulkOperation")
    return op if isinstance(op, dict) else None


def _poll_until_done(
    client: ShopifyClient,
    op_id: str | None,
    *,
    poll_s: float,
    timeout_s: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> dict | None:
    deadline = clock() + timeout_s
    while True:
        op = _current(client)
        if op is None or (op_id is not None and op.get("id") != op_id):
            return op
        if op.get("status") in TERMINAL_STATUSES:
            return op
        if clock() > deadline:
            raise TransientSourceError(
                f"shop {client.shop.key}: bulk operation {op.get('id')} still running after {timeout_s:.0f}s"
            )
        sleep(poll_s)


def run_bulk_query(
    client: ShopifyClient,
    *,
    search: str,
    dest_dir: Path,
    poll_s: float = 2.0,
    timeout_s: float = 6 * 3600,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> BulkResult:
    """Run the orders bulk query for ``search`` and download its result into ``dest_dir``."""
    key = client.shop.key
    waited = False
    running = _current(client)
    if running and running.get("status") in RUNNING_STATUSES:
        log.info("another bulk operation is running; waiting for it", extra={"store": key})
        waited = True
        _poll_until_done(
            client, running.get("id"), poll_s=poll_s, timeout_s=timeout_s, sleep=sleep, clock=clock
        )

    for attempt in range(1, 4):
        doc = client.execute(BULK_RUN_MUTATION, {"query": BULK_ORDERS_QUERY(search)}, cost=10)
        payload = (doc.get("data") or {}).get("bulkOperationRunQuery") or {}
        errors = payload.get("userErrors") or []
        op = payload.get("bulkOperation")
        if op and not errors:
            break
        in_progress = any(
            "in progress" in str(e.get("message", "")).lower() or e.get("code") == "OPERATION_IN_PROGRESS"
            for e in errors
        )
        if not in_progress or attempt == 3:
            text = "; ".join(str(e.get("message", ""))[:200] for e in errors) or "no operation returned"
            raise PermanentSourceError(f"shop {key}: bulkOperationRunQuery refused: {text}")
        waited = True
        other = _current(client)
        _poll_until_done(
            client,
            other.get("id") if other else None,
            poll_s=poll_s,
            timeout_s=timeout_s,
            sleep=sleep,
            clock=clock,
        )
    assert op is not None  # the loop ends on an operation or raises
    op_id = op["id"]
    final = _poll_until_done(client, op_id, poll_s=poll_s, timeout_s=timeout_s, sleep=sleep, clock=clock)
    if final is None or final.get("id") != op_id:
        raise TransientSourceError(f"shop {key}: bulk operation {op_id} is no longer the current one")
    status = final.get("status")
    if status != "COMPLETED":
        code = final.get("errorCode") or "no error code"
        raise (TransientSourceError if status == "EXPIRED" else PermanentSourceError)(
            f"shop {key}: bulk operation {op_id} ended {status} ({code}); nothing was imported from it"
        )
    count = int(final.get("objectCount") or 0)
    url = final.get("url")
    if not url:
        return BulkResult(operation_id=op_id, object_count=0, path=None, waited_for_other=waited)
    dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = dest_dir / f"bulk-{key}-{op_id.rsplit('/', 1)[-1]}.jsonl"
    expected = int(final["fileSize"]) if final.get("fileSize") not in (None, "") else None
    download_result(url, path, expected_bytes=expected, sleep=sleep)
    return BulkResult(operation_id=op_id, object_count=count, path=path, waited_for_other=waited)


def download_result(
    url: str,
    path: Path,
    *,
    expected_bytes: int | None = None,
    attempts: int = 4,
    timeout_s: float = 60.0,
    chunk_bytes: int = 1 << 16,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Stream ``url`` to ``path`` (never whole in memory); retry on a dropped or short
    download, a server error or 429. Returns the bytes written."""
    problem = ""
    for attempt in range(1, attempts + 1):
        tmp = path.with_suffix(path.suffix + ".part")
        try:
            with _get(url, timeout_s) as resp:
                written = 0
                with open_private(tmp) as out:
                    while chunk := resp.read(chunk_bytes):
                        out.write(chunk)
                        written += len(chunk)
            if expected_bytes is not None and written != expected_bytes:
                raise _Retry(f"short download ({written} of {expected_bytes} bytes)")
            os.replace(tmp, path)
            return written
        except (
            _Retry,
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
        ) as exc:
            # A dropped or timed-out connection, while connecting (URLError) or reading.
            problem = str(exc) if isinstance(exc, _Retry) else type(exc).__name__
            tmp.unlink(missing_ok=True)
            if attempt < attempts:
                sleep(backoff_s(attempt))
    raise TransientSourceError(f"bulk result download failed: {problem} after {attempts} attempts")


def _get(url: str, timeout_s: float) -> IO[bytes]:
    """The response to GET ``url``, open for reading; an error status raises: 429 and 5xx
    as worth retrying, any other as a permanent refusal."""
    try:
        return urllib.request.urlopen(urllib.request.Request(url), timeout=timeout_s)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code >= 500 or err.code == 429:
            raise _Retry(f"HTTP {err.code}") from None
        raise PermanentSourceError(f"bulk result download refused: HTTP {err.code}") from None


class _Retry(Exception):
    """Internal: this download attempt failed in a way worth retrying."""


def iter_bulk_file(
    path: Path, shop: ShopifyShop, *, skipped: Counter[str] | None = None
) -> Iterator[OrderRecord | Rejected]:
    """The orders of a downloaded bulk result, joined and mapped, in constant memory.
    ``skipped`` counts child lines of other types (never taken for line items)."""
    with open(path, "rb") as fh:
        yield from read_orders_file(fh, shop, skipped=skipped)


def refunds_without_lines(raw: object) -> bool:
    """True when an order node names refunds whose refunded lines it does not carry (a
    bulk result: its query cannot select them); the order is then read again whole."""
    refunds = raw.get("refunds") if isinstance(raw, dict) else None
    if not isinstance(refunds, list):
        return False
    return any(isinstance(r, dict) and "refundLineItems" not in r for r in refunds)
