"""The Shopify jobs, as plain functions (run inline by the CLI or inside a dramatiq actor).

``sync_shop``: the incremental sync (or, with ``backfill``, a bulk-operation backfill) of one
shop. The bookmark (sync cursor ``orders``) is the newest ``updatedAt`` of the committed
pages, capped at the sync's start minus an overlap: it moves only after a page is
committed, so a crash re-reads at most one page, and orders updated while a sync runs are
read by the next one. Re-reading the overlap is harmless (idempotent upserts). A window
larger than a full bucket pays for at once is read by one bulk operation after its first
page (the first page counts the window); the bookmark then moves once, when all of it is
committed.

``process_webhook``: apply one stored delivery (table ``webhook_deliveries``). Idempotent: a
delivery already done is left alone; an older version of an order never replaces a newer
one, so duplicated and out-of-order deliveries settle on the newest.

Neither job enqueues another: the workers layer runs tagging after them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.limits import check_fact, map_or_reject
from vipsync.connectors.records import OrderFact, OrderRecord, Rejected
from vipsync.connectors.shopify.bulk import iter_bulk_file, refunds_without_lines, run_bulk_query
from vipsync.connectors.shopify.client import ShopifyClient
from vipsync.connectors.shopify.exchanges import edit_facts, returns_unread
from vipsync.connectors.shopify.mapping import legacy_id, map_graphql_order, map_rest_order
from vipsync.connectors.shopify.queries import bulk_above, page_size_for_cost, shopify_time, updated_between
from vipsync.connectors.shopify.scopes import fetch_access_scopes
from vipsync.connectors.shopify.streams import fetch_order, iter_order_pages
from vipsync.connectors.shopify.webhooks import SIXTY_DAY_NOTE, lacks_all_orders, topic_action, verify_hmac
from vipsync.downloads import workspace
from vipsync.errors import ConfigError, RecordError, StoreError, TransientSourceError
from vipsync.store.models import WebhookDelivery
from vipsync.store.repository import Repository, utcnow
from vipsync.store.writer import is_unavailable, write_page
from vipsync.workers.results import SyncResult
from vipsync.workers.runs import follow_growth, older_objects_frozen

__all__ = [
    "DEFAULT_OVERLAP_S",
    "STREAM",
    "list_deliveries",
    "make_client",
    "process_webhook",
    "replay_delivery",
    "sync_shop",
    "verify_delivery",
]

log = logging.getLogger(__name__)

STREAM = "orders"
DEFAULT_OVERLAP_S = 120.0
WAITED_NOTE = "another bulk operation was running on this shop; it was waited for, not cancelled"
Progress = Callable[..., None]


def make_client(shop: ShopifyShop, **kwargs: Any) -> ShopifyClient:
    """A GraphQL client for ``shop`` with its access token from the environment."""
    return ShopifyClient(shop, access_token=shop.credential("access_token"), **kwargs)


def _parse_bookmark(value: str | None) -> datetime | None:
    if not value:
        return None
    ts = datetime.fromisoformat(value)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _since_start(since: str | date | None, shop: ShopifyShop) -> datetime | None:
    """``--since DATE``: the start of that day in the shop's zone."""
    if since is None or since == "":
        return None
    day = since if isinstance(since, date) else date.fromisoformat(str(since))
    return datetime.combine(day, time(0), tzinfo=shop.tz)


def _write_page(
    ctx, shop: ShopifyShop, records: list[OrderRecord], rejected: Iterable[Rejected], result: SyncResult
) -> None:
    """Commit one page through the one writer: a bad order is rejected alone; the
    planner's statistics follow what the sync has inserted."""
    before = result.inserted
    result.add_page(
        write_page(ctx.session_factory, [*records, *rejected], source="shopify", store_key=shop.key)
    )
    follow_growth(ctx.session_factory, before, result.inserted)


def _set_bookmark(ctx, shop: ShopifyShop, value: datetime, state: dict) -> None:
    with ctx.session_factory() as session:
        Repository(session).set_cursor(shop.key, STREAM, value.astimezone(UTC).isoformat(), state)
        session.commit()


def sync_shop(
    ctx,
    store_key: str,
    backfill: bool = False,
    since: str | None = None,
    progress: Progress | None = None,
    *,
    overlap_s: float = DEFAULT_OVERLAP_S,
    client: ShopifyClient | None = None,
    now: Callable[[], datetime] = utcnow,
    bulk_poll_s: float = 2.0,
    incremental_bulk: bool = True,
) -> SyncResult:
    """Sync one Shopify shop; returns what it did (see the module docstring).
    ``incremental_bulk``: an incremental window too large for the bucket is read by a bulk
    operation after its first page (False: page by page whatever its size)."""
    shop = ctx.stores.shopify(store_key)
    client = client or make_client(shop)
    started = now()
    cap = started - timedelta(seconds=overlap_s)
    result = SyncResult(store_key=store_key, mode="backfill" if backfill else "incremental")
    advance = progress or (lambda n=1, total=None: None)
    try:
        with older_objects_frozen():
            if backfill:
                _backfill(
                    ctx,
                    shop,
                    client,
                    result,
                    since=_since_start(since, shop),
                    started=started,
                    cap=cap,
                    progress=advance,
                    poll_s=bulk_poll_s,
                )
            else:
                _incremental(
                    ctx,
                    shop,
                    client,
                    result,
                    since=_since_start(since, shop),
                    started=started,
                    cap=cap,
                    progress=advance,
                    bulk=incremental_bulk,
                    poll_s=bulk_poll_s,
                )
    finally:
        result.api_calls = client.calls
        result.rate_limit_wait_s = client.wait_s
    log.info("shopify sync finished", extra=result.as_dict())
    return result


def _incremental(
    ctx, shop, client, result: SyncResult, *, since, started, cap, progress, bulk: bool, poll_s: float
) -> None:
    with ctx.session_factory() as session:
        cursor = Repository(session).get_cursor(shop.key, STREAM)
        stored = _parse_bookmark(cursor.value) if cursor else None
    bookmark = since if since is not None else stored
    result.cursor = stored.isoformat() if stored else None
    if bookmark is None and lacks_all_orders(fetch_access_scopes(client)):
        # A first sync reads "all" orders: say plainly when Shopify will stop at 60 days.
        result.notes.append(SIXTY_DAY_NOTE)
    pages = iter_order_pages(client, shop, since=bookmark, until=started, counted=bulk)
    for page in pages:
        _write_page(ctx, shop, page.records, page.rejected, result)
        result.pages += 1
        if page.max_updated_at is not None:
            new = min(page.max_updated_at, cap)
            if stored is None or new > stored:
                _set_bookmark(ctx, shop, new, {"mode": "incremental", "sync_started_at": started.isoformat()})
                stored = new
                result.cursor = new.isoformat()
                bookmark = new
        progress(len(page.records) + len(page.rejected))
        rest = (
            None if page.window_count is None else page.window_count - len(page.records) - len(page.rejected)
        )
        if rest is not None and rest > bulk_above(client.bucket.maximum, page_size_for_cost()):
            # Reading the rest page by page would wait for the bucket to refill: one bulk
            # operation reads it instead (about 10 points whatever its size).
            pages.close()
            _bulk_read(
                ctx,
                shop,
                client,
                result,
                search=updated_between(bookmark, started),
                started=started,
                cap=cap,
                progress=progress,
                poll_s=poll_s,
                mode="incremental",
            )
            result.notes.append(f"{rest} more orders in the window: read by a bulk operation")
            return


def _bulk_read(
    ctx, shop, client, result: SyncResult, *, search, started, cap, progress, poll_s, mode, move_bookmark=True
) -> None:
    """Read ``search`` through one bulk operation and commit it; then (``move_bookmark``)
    the bookmark moves to the sync's start minus the overlap, never back."""
    # The bulk result (buyers' data) lives in a private workspace of the data folder,
    # removed once its orders are committed (or the job fails); see vipsync/downloads.py.
    with workspace(ctx.settings.data_dir) as dest:
        bulk = run_bulk_query(client, search=search, dest_dir=dest, poll_s=poll_s)
        _write_bulk(ctx, shop, client, bulk, result, progress)
    if bulk.waited_for_other:
        result.notes.append(WAITED_NOTE)
    if not move_bookmark:
        return
    with ctx.session_factory() as session:
        cursor = Repository(session).get_cursor(shop.key, STREAM)
        stored = _parse_bookmark(cursor.value) if cursor else None
    if stored is None or cap > stored:
        state = {"mode": mode, "bulk_operation": bulk.operation_id, "sync_started_at": started.isoformat()}
        _set_bookmark(ctx, shop, cap, state)
        stored = cap
    result.cursor = stored.isoformat()


def _write_bulk(ctx, shop, client, bulk, result: SyncResult, progress) -> None:
    result.pages += 1
    if bulk.path is None:
        return
    try:
        batch_size = ctx.settings.batch_size
        records: list[OrderRecord] = []
        rejected: list[Rejected] = []
        skipped: Counter[str] = Counter()
        refetched = 0
        for item in iter_bulk_file(bulk.path, shop, skipped=skipped):
            if isinstance(item, OrderRecord) and (
                refunds_without_lines(item.raw) or returns_unread(item.raw)
            ):
                # The bulk query cannot select refunded lines (a connection in the
                # refunds list) nor returns within its connection limits: the few orders
                # with refunds or returns are read again whole.
                item = _refetch(client, shop, item)
                refetched += 1
            (rejected if isinstance(item, Rejected) else records).append(item)  # type: ignore[arg-type]
            if len(records) + len(rejected) >= batch_size:
                _write_page(ctx, shop, records, rejected, result)
                progress(len(records) + len(rejected))
                records, rejected = [], []
        _write_page(ctx, shop, records, rejected, result)
        progress(len(records) + len(rejected))
        if refetched:
            result.notes.append(
                f"{refetched} orders with refunds or returns read again for their refunded lines and exchanges"
            )
        if skipped:
            kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(skipped.items()))
            result.notes.append(f"bulk result lines that are not order lines were skipped ({kinds})")
    finally:
        bulk.path.unlink(missing_ok=True)


def _backfill(ctx, shop, client, result: SyncResult, *, since, started, cap, progress, poll_s) -> None:
    scopes = fetch_access_scopes(client)
    if lacks_all_orders(scopes):
        result.notes.append(SIXTY_DAY_NOTE)
    search = f"updated_at:<='{shopify_time(started)}'"
    if since is not None:
        search += f" AND created_at:>='{shopify_time(since)}'"
    # A whole-history backfill covers everything updated before the sync started; a
    # partial one (--since) leaves the bookmark where it was.
    _bulk_read(
        ctx,
        shop,
        client,
        result,
        search=search,
        started=started,
        cap=cap,
        progress=progress,
        poll_s=poll_s,
        mode="backfill",
        move_bookmark=since is None,
    )


def _refetch(client: ShopifyClient, shop: ShopifyShop, record: OrderRecord) -> OrderRecord | Rejected:
    """The order read whole (refunds with their lines); the bulk version when it is gone."""
    node = fetch_order(client, f"gid://shopify/Order/{record.external_id}")
    if node is None:
        return record
    return map_or_reject(map_graphql_order, node, shop, record_id=record.external_id)


# ----------------------------------------------------------------------------- webhooks
def verify_delivery(shop: ShopifyShop, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` (``X-Shopify-Hmac-Sha256``) signs ``body`` with the shop's
    app secret. Raises ConfigError when the secret is not configured."""
    return verify_hmac(shop.credential("api_secret"), body, signature)


def _finish(ctx, delivery_id: int, status: str, error: str | None = None, *, payload: Any = None) -> None:
    values: dict[str, Any] = {
        "status": status,
        "error": error,
        "processed_at": utcnow(),
        "attempts": WebhookDelivery.attempts + 1,
    }
    if payload is not None:
        values["payload"] = payload
    with ctx.session_factory() as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))
        session.commit()


def process_webhook(ctx, delivery_id: int, *, client: ShopifyClient | None = None) -> dict[str, Any]:
    """Apply one stored webhook delivery (idempotent). A delivery that cannot be processed,
    for a reason a retry will not fix, is marked ``failed`` with its error and left alone
    until ops replay it (``vipsync webhooks replay``); a transient failure (Shopify or the
    database unavailable) raises and leaves it pending for a retry."""
    try:
        return _process(ctx, int(delivery_id), client=client)
    except Exception as exc:
        if isinstance(exc, TransientSourceError) or is_unavailable(exc):
            raise
        error = f"could not be processed: {type(exc).__name__}"
        log.warning(
            "webhook delivery failed", extra={"delivery_id": delivery_id, "error": type(exc).__name__}
        )
        _finish(ctx, int(delivery_id), "failed", error)
        return {"delivery_id": delivery_id, "status": "failed", "changed_order_ids": []}


def _process(ctx, delivery_id: int, *, client: ShopifyClient | None = None) -> dict[str, Any]:
    with ctx.session_factory() as session:
        row = session.get(WebhookDelivery, int(delivery_id))
        if row is None:
            return {"delivery_id": delivery_id, "status": "missing", "changed_order_ids": []}
        if row.status in ("done", "failed"):
            return {"delivery_id": delivery_id, "status": row.status, "changed_order_ids": []}
        topic, payload, store_key = row.topic, row.payload, row.store_key
    shop = ctx.stores.shopify(store_key)
    action = topic_action(topic)
    changed: list[int] = []
    status, error = "done", None
    if action == "upsert_order":
        changed, error = _write_one(ctx, shop, map_or_reject(map_rest_order, payload, shop))
        status = "failed" if error else "done"
    elif action == "refetch_order":
        order_id = _order_id_of(topic, payload)
        if order_id is None:
            status, error = "failed", f"{topic}: no order id in the payload"
        elif topic == "orders/edited" and (error := _edit_facts(ctx, shop, payload)) is not None:
            status = "failed"
        else:
            try:
                api = client or make_client(shop)
            except ConfigError as exc:
                status, error = "deferred", f"left to the scheduled sync: {exc}"
            else:
                node = fetch_order(api, f"gid://shopify/Order/{order_id}")
                if node is not None:
                    changed, error = _write_one(ctx, shop, map_or_reject(map_graphql_order, node, shop))
                    status = "failed" if error else "done"
    elif action == "order_deleted":
        status, error = _order_deleted(ctx, shop, payload)
    elif action == "compliance":
        from vipsync.workers.privacy_jobs import handle_compliance

        status = handle_compliance(ctx, shop, topic, payload, int(delivery_id))
    else:
        status, error = "ignored", f"topic {topic!r} is not handled"
    _finish(ctx, int(delivery_id), status, error)
    return {"delivery_id": delivery_id, "status": status, "changed_order_ids": changed}


def _write_one(ctx, shop: ShopifyShop, item: OrderRecord | Rejected) -> tuple[list[int], str | None]:
    """Store one order through the one writer: (changed order ids, the error when it was
    rejected; the reject itself is in ``import_errors``)."""
    outcome = write_page(ctx.session_factory, [item], source="shopify", store_key=shop.key)
    if outcome.rejected:
        if isinstance(item, Rejected):
            where = f"record {item.record_id}" + (f", field {item.field!r}" if item.field else "")
            return [], f"{where}: {item.message}"
        return [], f"record {item.external_id}: could not be stored (import error {outcome.error_ids[0]})"
    return outcome.changed_order_ids, None


def _order_deleted(ctx, shop: ShopifyShop, payload: Any) -> tuple[str, str | None]:
    """``orders/delete``: the order stays on record and is judged as cancelled from now on
    (POLICY.md); kept as a fact, so a deletion that arrives before its order counts too."""
    order_id = legacy_id(payload.get("id")) if isinstance(payload, dict) else None
    if not order_id:
        return "failed", "orders/delete: no order id in the payload"
    try:
        fact = check_fact(
            OrderFact(
                source="shopify",
                store_key=shop.key,
                order_external_id=order_id,
                kind="deleted",
                fact_key=order_id,
                posted_at=utcnow(),
                raw={"topic": "orders/delete", "id": order_id},
            )
        )
    except RecordError as exc:
        return "failed", f"orders/delete: {exc}"
    with ctx.session_factory() as session:
        Repository(session).record_facts([fact])
        session.commit()
    log.info(
        "shopify order deleted; kept in the store, judged cancelled",
        extra={"store": shop.key, "order": order_id},
    )
    return "done", None


def _edit_facts(ctx, shop: ShopifyShop, payload: Any) -> str | None:
    """``orders/edited``: the units the edit added, linked to those it removed, kept as
    facts through the one writer (they count whichever way the edit and the order's new
    version arrive); the error when the edit was rejected (kept in ``import_errors``)."""
    items = edit_facts(payload, shop)
    outcome = write_page(ctx.session_factory, items, source="shopify", store_key=shop.key)
    if outcome.rejected:
        bad = next((i for i in items if isinstance(i, Rejected)), None)
        if bad is not None:
            return f"orders/edited: record {bad.record_id}, field {bad.field!r}: {bad.message}"
        return f"orders/edited: could not be stored (import error {outcome.error_ids[0]})"
    return None


def _order_id_of(topic: str, payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    if topic == "refunds/create":
        value = payload.get("order_id")
    else:  # orders/edited: {"order_edit": {"order_id": ...}}
        edit = payload.get("order_edit")
        value = (edit.get("order_id") if isinstance(edit, dict) else None) or payload.get("order_id")
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return None
    text = str(value)
    return text if text.isdigit() and len(text) <= 20 else None


# ----------------------------------------------------------------------------- ops on deliveries
REPLAYABLE = ("failed", "deferred", "needs_ops", "pending")


def list_deliveries(ctx, *, status: str | None = "failed", limit: int = 200) -> list[dict[str, Any]]:
    """Stored webhook deliveries, newest first: ids, shop, topic, status and error (never
    the payload)."""
    q = select(
        WebhookDelivery.id,
        WebhookDelivery.webhook_id,
        WebhookDelivery.store_key,
        WebhookDelivery.topic,
        WebhookDelivery.status,
        WebhookDelivery.attempts,
        WebhookDelivery.received_at,
        WebhookDelivery.error,
    ).order_by(WebhookDelivery.id.desc())
    if status:
        q = q.where(WebhookDelivery.status == status)
    with ctx.session_factory() as session:
        return [dict(r._mapping) for r in session.execute(q.limit(limit))]


def replay_delivery(ctx, delivery_id: int, *, client: ShopifyClient | None = None) -> dict[str, Any]:
    """Process a stored delivery again (after a fix): it becomes pending, then is applied
    like a new one. Raises StoreError for an unknown id or a delivery already done."""
    with ctx.session_factory() as session:
        row = session.get(WebhookDelivery, int(delivery_id))
        if row is None:
            raise StoreError(f"no webhook delivery {delivery_id}")
        if row.status not in REPLAYABLE:
            raise StoreError(
                f"webhook delivery {delivery_id} is {row.status}; only {', '.join(REPLAYABLE)} replay"
            )
        if isinstance(row.payload, dict) and set(row.payload) == {"unparsed_body_bytes"}:
            raise StoreError(f"webhook delivery {delivery_id} has no body to replay: {row.error}")
        row.status, row.error = "pending", None
        session.commit()
    return process_webhook(ctx, int(delivery_id), client=client)
