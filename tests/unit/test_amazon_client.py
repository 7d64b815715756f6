"""Pacing, verification, retries and LWA refresh of the SP-API client, on a simulated clock
(the fake SP-API in-process, no sockets) and with respx at the HTTP level."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx
from sp_api.api.orders.orders_v0 import OrdersV0
from sp_api.base import Marketplaces

from vipsync.config.stores import load_stores
from vipsync.connectors.amazon.client import SpApiClient
from vipsync.connectors.amazon.pacing import USAGE_PLANS, Pacer, SimClock, TokenBucket, estimate
from vipsync.connectors.amazon.sync import iter_order_pages, safe_until
from vipsync.devtools.amazon_data import generate_orders
from vipsync.devtools.fake_spapi import SpApiSimulator
from vipsync.errors import PermanentSourceError, RateLimited, TransientSourceError

ROOT = Path(__file__).resolve().parents[2]
EU = load_stores(ROOT / "vipsync" / "config" / "stores.toml").amazon("amazon-eu")


def _sim(n=0, **kwargs):
    clock = SimClock()
    orders = (
        generate_orders(n, markets=("DE", "UK", "FR"), end=clock.now() - timedelta(minutes=10), seed=5)
        if n
        else []
    )
    sim = SpApiSimulator(orders=orders, clock=clock, **kwargs)
    client = SpApiClient(
        EU,
        refresh_token="r",
        lwa_app_id="a",
        lwa_client_secret="s",
        endpoint="http://fake",
        clock=clock,
        http=httpx.Client(transport=sim.transport()),
    )
    return sim, client, clock


def _all_pages(client, known=lambda ids: {}):
    now = client.clock.now()
    return list(
        iter_order_pages(
            client, EU, updated_after=now - timedelta(days=60), updated_before=safe_until(now), known=known
        )
    )


def test_token_bucket_allows_the_burst_then_one_call_per_interval():
    bucket = TokenBucket(rate_per_s=0.5, burst=30, now_s=0.0)
    assert [bucket.reserve(0.0) for _ in range(30)] == [0.0] * 30
    assert bucket.reserve(0.0) == pytest.approx(2.0)
    assert bucket.reserve(0.0) == pytest.approx(4.0)


def test_pacer_adopts_the_rate_limit_header():
    clock = SimClock()
    pacer = Pacer(clock, safety=1.0)
    for _ in range(20):
        pacer.acquire("getOrders")
    pacer.observe_rate("getOrders", "0.5")
    assert pacer.acquire("getOrders") == pytest.approx(2.0)


def test_saved_pacing_state_keeps_a_drained_burst_drained():
    clock = SimClock()
    pacer = Pacer(clock)
    for _ in range(20):
        pacer.acquire("getOrders")
    state = pacer.state()
    again = Pacer(clock, state=state)
    assert again.acquire("getOrders") > 50  # about one minute, not a fresh burst


def test_hundreds_of_calls_stay_within_the_documented_limits():
    sim, client, clock = _sim(450)
    pages = _all_pages(client)
    assert sum(len(p.records) for p in pages) == 450
    assert sim.total_violations == 0 and sim.rule_violations == []
    assert client.calls["getOrders"] == 5 and client.calls["getOrderItems"] == 450
    # 450 item calls with a burst of 30 at 0.5/s take at least (450 - 30) * 2 s of simulated time.
    assert clock.monotonic() >= (450 - 30) / USAGE_PLANS["getOrderItems"].rate_per_s


def test_last_updated_before_closer_than_two_minutes_is_never_sent():
    sim, client, clock = _sim(0)
    with pytest.raises(ValueError, match="2 minutes"):
        client.get_orders_page(
            marketplace_ids=["A1PA6795UKMFR9"],
            updated_after=clock.now() - timedelta(days=1),
            updated_before=clock.now() - timedelta(seconds=90),
        )
    assert sim.calls["getOrders"] == 0


@pytest.mark.parametrize("kind", ["429", "429_empty", "500", "503_html", "200_empty", "expired_token"])
def test_each_fault_is_retried_and_no_order_is_lost(kind):
    sim, client, _ = _sim(250)
    sim.inject(kind, op="getOrders", skip=1)
    sim.inject(kind, op="getOrderItems", skip=7)
    pages = _all_pages(client)
    ids = [r.external_id for p in pages for r in p.records]
    assert len(ids) == 250 and len(set(ids)) == 250
    assert sim.faults_served[kind] == 2
    assert sim.total_violations == 0


def test_expired_token_is_refreshed_once_and_the_call_repeated():
    sim, client, _ = _sim(10)
    _all_pages(client)
    sim.expire_tokens()
    _all_pages(client)
    assert client.token_refreshes_forced == 1 and sim.calls["lwa"] == 2


def test_access_token_is_refreshed_before_expires_in():
    sim, client, clock = _sim(5, token_ttl_s=600)
    _all_pages(client)
    clock.advance(700)
    _all_pages(client)
    assert sim.calls["lwa"] == 2 and client.token_refreshes_forced == 0


def test_undecodable_next_token_is_a_permanent_error():
    sim, client, _ = _sim(250)
    sim.inject("bad_next_token", op="getOrders")
    with pytest.raises(PermanentSourceError, match="NextToken"):
        _all_pages(client)


def test_throttling_past_the_retries_raises_rate_limited():
    sim, client, _ = _sim(5)
    sim.inject("429", op="getOrders", times=10)
    with pytest.raises(RateLimited):
        _all_pages(client)


def test_server_errors_past_the_retries_raise_a_transient_error():
    sim, client, _ = _sim(5)
    sim.inject("500", op="getOrders", times=10)
    with pytest.raises(TransientSourceError):
        _all_pages(client)


def test_library_returns_an_empty_response_on_a_429_without_errors_body():
    """Why the client verifies every response itself: python-amazon-sp-api does not raise."""
    with respx.mock(assert_all_called=True) as mock:
        mock.post("https://api.amazon.com/auth/o2/token").respond(
            200, json={"access_token": "t", "expires_in": 3600}
        )
        mock.get(url__startswith="https://sellingpartnerapi-eu.amazon.com/orders/v0/orders").respond(
            429, content=b""
        )
        client = OrdersV0(
            Marketplaces.DE,
            refresh_token="r",
            credentials={"refresh_token": "r", "lwa_app_id": "a", "lwa_client_secret": "s"},
        )
        res = client.get_orders(LastUpdatedAfter="2025-01-01T00:00:00Z")
        assert res.payload == {} and res.next_token is None


def test_our_client_refuses_the_same_429_instead_of_reading_it_as_no_orders():
    with respx.mock() as mock:
        mock.post("https://api.amazon.com/auth/o2/token").respond(
            200, json={"access_token": "t", "expires_in": 3600}
        )
        route = mock.get(url__startswith="https://sellingpartnerapi-eu.amazon.com/orders/v0/orders").respond(
            429, content=b""
        )
        clock = SimClock()
        client = SpApiClient(
            EU, refresh_token="r", lwa_app_id="a", lwa_client_secret="s", clock=clock, max_attempts=3
        )
        with pytest.raises(RateLimited):
            client.get_orders_page(
                marketplace_ids=["A1PA6795UKMFR9"],
                updated_after=clock.now() - timedelta(days=1),
                updated_before=safe_until(clock.now()),
            )
        assert route.call_count == 3
        sent = route.calls[0].request
        assert sent.url.params["MarketplaceIds"] == "A1PA6795UKMFR9"
        assert sent.headers["x-amz-access-token"] == "t"


def test_estimate_for_ten_thousand_orders_through_the_orders_api():
    est = estimate(orders=10_000, mode="orders_api")
    assert est.calls == {"getOrders": 100, "getOrderItems": 10_000}
    assert est.seconds == pytest.approx((10_000 - 30) / 0.5)


def _raw_get_orders(sim, clock, **params):
    _status, _, body = sim.handle(
        "POST",
        "/auth/o2/token",
        {},
        b"grant_type=refresh_token&refresh_token=r&client_id=a&client_secret=s",
        {},
    )
    token = __import__("json").loads(body)["access_token"]
    query = {"MarketplaceIds": ["A1PA6795UKMFR9"], "LastUpdatedAfter": ["2025-01-01T00:00:00Z"]}
    query.update({k: [v] for k, v in params.items()})
    return sim.handle("GET", "/orders/v0/orders", query, b"", {"x-amz-access-token": token})


def test_fake_counts_requests_beyond_the_burst_as_violations():
    clock = SimClock()
    sim = SpApiSimulator(clock=clock)
    statuses = [_raw_get_orders(sim, clock)[0] for _ in range(25)]
    assert statuses.count(200) == 20 and statuses.count(429) == 5 and sim.total_violations == 5
    clock.advance(61)
    assert _raw_get_orders(sim, clock)[0] == 200


def test_fake_refuses_last_updated_before_within_two_minutes():
    clock = SimClock()
    sim = SpApiSimulator(clock=clock)
    recent = (clock.now() - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, _, body = _raw_get_orders(sim, clock, LastUpdatedBefore=recent)
    assert status == 400 and b"InvalidInput" in body and sim.rule_violations


def test_next_token_paging_replays_the_official_sandbox_pages():
    """The documented form: page 2 is the same request plus NextToken (sandbox static[1], [2])."""
    import json

    fixtures = ROOT / "tests" / "fixtures" / "amazon"
    page1 = json.loads((fixtures / "sandbox_getOrders_200_next_token.json").read_text())
    page2 = json.loads((fixtures / "sandbox_getOrders_200_next_token_page2.json").read_text())
    items = json.loads((fixtures / "sandbox_getOrderItems_200.json").read_text())
    na = load_stores(ROOT / "vipsync" / "config" / "stores.toml").amazon("amazon-na")

    def orders(request):
        token = request.url.params.get("NextToken")
        if token is None:
            return httpx.Response(200, json=page1, headers={"x-amzn-RateLimit-Limit": "0.0167"})
        assert token == "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"
        return httpx.Response(200, json=page2, headers={"x-amzn-RateLimit-Limit": "0.0167"})

    with respx.mock() as mock:
        mock.post("https://api.amazon.com/auth/o2/token").respond(
            200, json={"access_token": "t", "expires_in": 3600}
        )
        route = mock.get("https://sellingpartnerapi-na.amazon.com/orders/v0/orders").mock(side_effect=orders)
        mock.get(url__regex=r".*/orderItems(\?.*)?$").respond(200, json=items)
        clock = SimClock()
        client = SpApiClient(na, refresh_token="r", lwa_app_id="a", lwa_client_secret="s", clock=clock)
        now = clock.now()
        pages = list(
            iter_order_pages(
                client,
                na,
                updated_after=now - timedelta(days=3),
                updated_before=safe_until(now),
                known=lambda ids: {},
            )
        )
    first, second = (c.request.url.params for c in route.calls)
    assert "NextToken" not in first and second["NextToken"] == "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"
    for name in ("MarketplaceIds", "LastUpdatedAfter", "LastUpdatedBefore", "MaxResultsPerPage"):
        assert first[name] == second[name]
    assert (
        first["MarketplaceIds"] == "ATVPDKIKX0DER,A2EUQ1WTGCTBG2,A1AM78C64UM0Y8"
    )  # all marketplaces at once
    assert [p.last for p in pages] == [False, True]
    assert [r.external_id for p in pages for r in p.records] == ["902-3159896-1390916"] * 2
