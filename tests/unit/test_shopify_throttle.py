"""Pure pieces of the Shopify connector: cost bucket, backoff, paging, validation, signatures."""

from __future__ import annotations

import random
from datetime import UTC

import pytest

from vipsync.connectors.shopify.queries import (
    MAX_QUERY_COST,
    ORDERS_COUNTED_PAGE_QUERY,
    ORDERS_PAGE_QUERY,
    REFUNDS_PER_ORDER,
    bulk_above,
    orders_page_cost,
    page_size_for_cost,
    updated_between,
)
from vipsync.connectors.shopify.streams import Paginator, needs_full_fetch, valid_orders_page, window_count
from vipsync.connectors.shopify.throttle import CostBucket, backoff_s
from vipsync.connectors.shopify.webhooks import (
    SIXTY_DAY_NOTE,
    lacks_all_orders,
    sign,
    topic_action,
    verify_hmac,
)
from vipsync.errors import PermanentSourceError

STATUS = {"throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 300.0, "restoreRate": 100.0}}


def test_bucket_waits_until_the_requested_cost_has_refilled():
    bucket = CostBucket(safety_points=0)
    bucket.update(STATUS, now_s=10.0)
    assert bucket.wait_for(250, now_s=10.0) == 0
    assert bucket.wait_for(500, now_s=10.0) == pytest.approx(2.0)
    assert bucket.wait_for(500, now_s=11.0) == pytest.approx(1.0)
    assert bucket.wait_for(500, now_s=13.0) == 0


def test_bucket_never_refills_past_its_maximum_and_counts_what_we_spend():
    bucket = CostBucket(safety_points=0)
    bucket.update(STATUS, now_s=0.0)
    assert bucket.estimate(now_s=1000.0) == 2000.0
    bucket.spend(1900, now_s=1000.0)
    assert bucket.wait_for(1000, now_s=1000.0) == pytest.approx(9.0)


def test_unknown_bucket_does_not_wait():
    assert CostBucket().wait_for(900, now_s=0.0) == 0


def test_backoff_grows_exponentially_and_is_capped():
    rng = random.Random(1)
    delays = [backoff_s(a, base_s=1, cap_s=10, jitter=0, rng=rng) for a in range(1, 7)]
    assert delays == [1, 2, 4, 8, 10, 10]


def test_page_size_keeps_requested_cost_under_the_single_query_maximum():
    size = page_size_for_cost()
    assert orders_page_cost(size, counted=True) <= MAX_QUERY_COST < orders_page_cost(size + 1, counted=True)
    assert orders_page_cost(size, counted=True) == orders_page_cost(size) + 1  # the Count object
    assert "ordersCount(query: $query)" in ORDERS_COUNTED_PAGE_QUERY
    assert "ordersCount" not in ORDERS_PAGE_QUERY
    assert "sortKey: UPDATED_AT" in ORDERS_PAGE_QUERY and "currentQuantity" in ORDERS_PAGE_QUERY


def test_bulk_takes_over_past_the_pages_a_full_bucket_pays_for():
    size = page_size_for_cost()
    assert bulk_above(2000.0, size) == 2 * size  # standard plan: two pages of 996 points
    assert bulk_above(20_000.0, size) == 20 * size  # a larger bucket keeps more on pages
    assert bulk_above(500.0, size) == size  # never less than the first page
    assert bulk_above(None, size) == 2 * size  # bucket not known yet


@pytest.mark.parametrize(
    ("data", "count"),
    [
        ({"ordersCount": {"count": 412, "precision": "EXACT"}}, 412),
        ({"ordersCount": {"count": 10_000, "precision": "AT_LEAST"}}, 10_000),
        ({"ordersCount": None}, None),
        ({"ordersCount": {"count": "12"}}, None),
        ({"ordersCount": {"count": True}}, None),
        ({"ordersCount": {"count": -1}}, None),
        ({}, None),
        (None, None),
    ],
)
def test_window_count_is_taken_only_when_it_is_a_count(data, count):
    assert window_count({"data": data}) == count


def test_incremental_filter_is_inclusive_on_both_ends():
    from datetime import datetime

    since = datetime(2025, 1, 1, 12, 0, 0, 900, tzinfo=UTC)
    assert updated_between(since, None) == "updated_at:>='2025-01-01T12:00:00Z'"
    assert " AND updated_at:<=" in updated_between(since, since)


def test_paginator_stops_on_a_repeated_cursor():
    p = Paginator()
    p.advance({"hasNextPage": True, "endCursor": "a"})
    p.advance({"hasNextPage": True, "endCursor": "b"})
    with pytest.raises(PermanentSourceError, match="loop"):
        p.advance({"hasNextPage": True, "endCursor": "a"})


def test_paginator_refuses_next_page_without_cursor_and_ends_on_last_page():
    with pytest.raises(PermanentSourceError):
        Paginator().advance({"hasNextPage": True, "endCursor": None})
    p = Paginator()
    p.advance({"hasNextPage": False, "endCursor": None})
    assert p.done


def test_incomplete_pages_are_not_valid():
    good = {
        "data": {
            "orders": {
                "pageInfo": {"hasNextPage": False, "endCursor": None},
                "nodes": [{"id": "gid://shopify/Order/1", "updatedAt": "2025-01-01T00:00:00Z"}],
            }
        }
    }
    assert valid_orders_page(good) is not None
    assert valid_orders_page({"data": None}) is None
    assert valid_orders_page({"data": {"orders": {"nodes": []}}}) is None
    no_update = {"data": {"orders": {"pageInfo": {"hasNextPage": False}, "nodes": [{"id": "x"}]}}}
    assert valid_orders_page(no_update) is None


def test_order_with_more_lines_or_refunds_than_the_page_holds_is_fetched_whole():
    assert needs_full_fetch({"lineItems": {"pageInfo": {"hasNextPage": True}, "nodes": []}, "refunds": []})
    full = [{}] * REFUNDS_PER_ORDER  # a full refunds list may hold more: read whole
    assert needs_full_fetch({"lineItems": {"pageInfo": {"hasNextPage": False}}, "refunds": full})
    assert not needs_full_fetch({"lineItems": {"pageInfo": {"hasNextPage": False}}, "refunds": full[1:]})
    one_refund_more_lines = [{"refundLineItems": {"pageInfo": {"hasNextPage": True}}}]
    assert needs_full_fetch(
        {"lineItems": {"pageInfo": {"hasNextPage": False}}, "refunds": one_refund_more_lines}
    )


def test_webhook_signature_is_accepted_only_for_the_exact_body_and_secret():
    body = b'{"id": 1}'
    header = sign("s3cret", body)
    assert verify_hmac("s3cret", body, header)
    assert not verify_hmac("s3cret", body + b" ", header)
    assert not verify_hmac("other", body, header)
    assert not verify_hmac("s3cret", body, None)
    assert not verify_hmac("s3cret", body, "not-base64-ü")


def test_every_subscribed_topic_has_an_action():
    for topic in (
        "orders/create",
        "orders/updated",
        "orders/cancelled",
        "orders/edited",
        "orders/delete",
        "refunds/create",
        "customers/data_request",
        "customers/redact",
        "shop/redact",
    ):
        assert topic_action(topic) is not None, topic
    assert topic_action("products/update") is None


def test_missing_read_all_orders_scope_gives_the_plain_sixty_day_warning():
    assert lacks_all_orders({"read_orders"}) and not lacks_all_orders({"read_orders", "read_all_orders"})
    assert "60 days" in SIXTY_DAY_NOTE
