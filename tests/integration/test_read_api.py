"""The read API, the ops decision routes, /healthz and /metrics through HTTP (FastAPI's
test client over the real app and databases)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from vipsync.api.app import create_app
from vipsync.api.auth import new_token
from vipsync.bootstrap import Context, set_context
from vipsync.config.settings import Settings
from vipsync.devtools.factories import order_record
from vipsync.store.models import CatalogDecision
from vipsync.store.ops_queries import UNIT_COLUMNS
from vipsync.store.repository import Repository
from vipsync.workers.results import SyncResult
from vipsync.workers.sync_health import tracked
from vipsync.workers.tagging import tag_pending

READ, READ_ENTRY = new_token("grafana", "read")
SUPPORT, SUPPORT_ENTRY = new_token("desk", "support")
WEBSITE, WEBSITE_ENTRY = new_token("shop", "website")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api_ctx(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VIPSYNC_API_TOKENS", ",".join((READ_ENTRY, SUPPORT_ENTRY, WEBSITE_ENTRY)))
    ctx = Context(settings=Settings(), database_url=db_url)
    set_context(ctx)
    yield ctx
    set_context(None)


@pytest.fixture
def client(api_ctx):
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    with api_ctx.session_factory() as s:
        Repository(s).upsert_orders(
            [
                order_record(
                    i,
                    purchased_at=today - timedelta(days=330 + 5 * i),
                    lines=(("HKS0401A3U", 1), ("ZZ-9", 1)),
                )
                for i in range(1, 6)
            ]
            + [
                order_record(
                    99, store_key="shopify-eu", country="DE", purchased_at=today - timedelta(days=30)
                )
            ]
        )
        s.commit()
    tag_pending(api_ctx)
    with TestClient(create_app(api_ctx)) as c:
        yield c


def _view(ctx, sql: str):
    with ctx.session_factory() as s:
        return s.execute(text(sql)).all()


def test_units_come_in_keyset_pages_with_filters(client, api_ctx):
    seen, after = [], 0
    while True:
        page = client.get("/v1/units", params={"limit": 4, "after": after}, headers=_auth(READ)).json()
        seen += [u["unit_id"] for u in page["units"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 11
    eu = client.get("/v1/units", params={"store": "shopify-eu"}, headers=_auth(READ)).json()["units"]
    assert [(u["store"], u["country"]) for u in eu] == [("shopify-eu", "DE")]
    kvm = client.get(
        "/v1/units", params={"category": "kvm_switch", "eligible": "true"}, headers=_auth(READ)
    ).json()
    assert len(kvm["units"]) == 6 and all(u["eligible"] is True for u in kvm["units"])
    assert set(kvm["units"][0]) == set(UNIT_COLUMNS)


def test_counts_equal_the_views_figures(client, api_ctx):
    body = client.get("/v1/units/counts", params={"by": "store,country"}, headers=_auth(READ)).json()
    expected = {
        (r.store, r.country): r.n
        for r in _view(api_ctx, "SELECT store, country, COUNT(*) AS n FROM ops_units GROUP BY store, country")
    }
    assert {(r["store"], r["country"]): r["units"] for r in body["counts"]} == expected
    assert body["total"] == 11
    bad = client.get("/v1/units/counts", params={"by": "email"}, headers=_auth(READ))
    assert bad.status_code == 422 and "email" in bad.json()["detail"]


def test_the_csv_export_streams_every_unit(client):
    with client.stream("GET", "/v1/units.csv", headers=_auth(READ)) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        data = "".join(resp.iter_text())
    rows = list(csv.DictReader(io.StringIO(data)))
    assert len(rows) == 11 and list(rows[0]) == list(UNIT_COLUMNS)


def test_panels_answer_from_the_views(client, api_ctx):
    windows = client.get("/v1/windows/closing", params={"days": 60}, headers=_auth(READ)).json()
    in_view = _view(api_ctx, "SELECT COUNT(*) FROM ops_windows_closing WHERE days_left <= 60")[0][0]
    assert sum(windows["by_window"].values()) == in_view > 0
    keys = [(r["closes_on"], r["unit_id"]) for r in windows["rows"]]
    first = _view(api_ctx, "SELECT closes_on, unit_id FROM ops_windows_closing WHERE days_left <= 60")
    assert keys == sorted((str(d), u) for d, u in first)[: len(keys)] and len(keys) == min(100, in_view)
    regs = client.get("/v1/registrations/upcoming", params={"days": 60}, headers=_auth(READ)).json()
    assert (
        regs["units"]
        == _view(api_ctx, "SELECT COUNT(*) FROM ops_registration_deadlines WHERE days_left <= 60")[0][0]
    )
    items = client.get("/v1/unclassified", headers=_auth(READ)).json()["items"]
    assert [(i["sku"], i["units"]) for i in items] == [("ZZ-9", 5)]
    assert client.get("/v1/errors", headers=_auth(READ)).json() == {"errors": []}


def test_tokens_and_scopes_are_enforced(client):
    for headers in ({}, _auth("nope"), _auth(WEBSITE)):
        assert client.get("/v1/units", headers=headers).status_code == 401
    assert client.get("/v1/units", headers=_auth(SUPPORT)).status_code == 200
    body = {"sku": "ZZ-9", "category": "accessory"}
    assert client.post("/v1/ops/catalog/classify", json=body, headers=_auth(READ)).status_code == 401
    assert client.get("/docs").status_code == 200
    assert "/v1/units" in client.get("/openapi.json").json()["paths"]


def test_classify_and_policy_decisions_over_http(client, api_ctx):
    dry = client.post(
        "/v1/ops/catalog/classify",
        json={"sku": "zz-9", "category": "accessory", "dry_run": True},
        headers=_auth(SUPPORT),
    ).json()
    assert dry["dry_run"] and dry["affected_units"] == 5
    bad = client.post(
        "/v1/ops/catalog/classify", json={"sku": "zz-9", "category": "toaster"}, headers=_auth(SUPPORT)
    )
    assert bad.status_code == 422 and "toaster" in bad.json()["detail"]
    done = client.post(
        "/v1/ops/catalog/classify",
        json={"sku": "zz-9", "category": "accessory", "note": "cable"},
        headers=_auth(SUPPORT),
    ).json()
    assert done["decision_id"] and done["tagged"]["scanned"] >= 5
    assert client.get("/v1/unclassified", headers=_auth(READ)).json()["items"] == []
    with api_ctx.session_factory() as s:
        assert s.execute(select(CatalogDecision.decided_by)).scalar_one() == "api:desk"
    policies = client.get("/v1/ops/policies", headers=_auth(SUPPORT)).json()["policies"]
    assert {p["version"]: p["enabled"] for p in policies} == {
        "vip-2024": True,
        "tesmart-id-2025-11-01": False,
    }
    what_if = client.post(
        "/v1/ops/policies/tesmart-id-2025-11-01/enable", json={"dry_run": True}, headers=_auth(SUPPORT)
    ).json()
    assert what_if["affected_units"] == 1  # the EU unit bought after 2025-11-01 only
    refused = client.post("/v1/ops/policies/vip-2024/disable", json={}, headers=_auth(SUPPORT))
    assert refused.status_code == 422 and "no enabled policy" in refused.json()["detail"]


def test_healthz_reports_database_and_redis(client, api_ctx, monkeypatch):
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "redis": "ok"}
    api_ctx.settings = Settings(redis_url="redis://127.0.0.1:1/0")
    down = client.get("/healthz")
    assert (
        down.status_code == 503
        and down.json()["redis"].startswith("error")
        and down.json()["database"] == "ok"
    )


def test_metrics_on_the_web_process_carry_the_lag_from_the_store(client, api_ctx):
    def quiet(ctx, store_key, **_):
        return SyncResult(store_key=store_key, mode="incremental", cursor="2020-01-01T00:00:00+00:00")

    tracked(api_ctx, "shopify-us", quiet)
    body = client.get("/metrics").text
    line = next(
        ln for ln in body.splitlines() if ln.startswith('vipsync_sync_lag_seconds{store="shopify-us"}')
    )
    assert 0 <= float(line.split()[-1]) < 60  # since the last success, not since 2020
    assert body.count("# TYPE vipsync_sync_lag_seconds ") == 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "store",
                "country",
                "sku",
                "benefit_status",
                "eligible",
                "after",
                "limit",
                "purchased_from",
                "by",
            ]
        ),
        st.text(max_size=300),
        max_size=5,
    )
)
def test_hostile_query_parameters_get_an_answer_never_a_500(client, params):
    for path in ("/v1/units", "/v1/units/counts"):
        resp = client.get(path, params=params, headers=_auth(READ))
        assert resp.status_code in (200, 422), (path, params, resp.text)


def test_counts_follow_new_units_and_tag_runs(client, api_ctx):
    def total_by_category() -> dict[str, int]:
        body = client.get("/v1/units/counts", params={"by": "category"}, headers=_auth(READ)).json()
        return {r["category"]: r["units"] for r in body["counts"]}

    assert total_by_category() == {"kvm_switch": 6, "unknown": 5}
    with api_ctx.session_factory() as s:
        Repository(s).upsert_orders([order_record(50, lines=(("HKS0401A3U", 2),))])
        s.commit()
    assert total_by_category() == {"kvm_switch": 6, "unknown": 5, "untagged": 2}  # a new unit moves it
    api_ctx.dispatch("tag_pending")  # the job refreshes the summary itself
    with api_ctx.session_factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM unit_counts")).scalar_one() > 0
    assert total_by_category() == {"kvm_switch": 8, "unknown": 5}
    expected = dict(_view(api_ctx, "SELECT category, COUNT(*) FROM ops_units GROUP BY category"))
    assert total_by_category() == expected


def test_an_old_summary_is_rebuilt_even_when_its_marker_did_not_move(client, api_ctx):
    from vipsync.store import ops_queries

    with api_ctx.session_factory() as s:
        assert ops_queries.refresh_counts(s) in (True, False)
        assert ops_queries.refresh_counts(s) is False  # fresh: nothing to do
        s.execute(text("UPDATE unit_counts SET units = units + 100"))  # what a stale summary looks like
        s.execute(
            text("UPDATE unit_counts_state SET refreshed_at = :t"),
            {"t": datetime.now(UTC) - timedelta(seconds=ops_queries.COUNTS_MAX_AGE_S + 5)},
        )
        s.commit()
    body = client.get("/v1/units/counts", params={"by": "store"}, headers=_auth(READ)).json()
    assert body["total"] == 11


_ANY = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=600), st.lists(st.text(max_size=5), max_size=3)
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.dictionaries(
        st.sampled_from(["sku", "title", "category", "note", "dry_run", "stores", "countries"]),
        _ANY,
        max_size=5,
    ),
    version=st.sampled_from(["tesmart-id-2025-11-01", "vip-2024", "nope", "x" * 70]),
)
def test_hostile_decision_bodies_are_answered_never_a_500(client, body, version):
    body = {**body, "dry_run": True} if "dry_run" not in body else body
    for path in ("/v1/ops/catalog/classify", f"/v1/ops/policies/{version}/enable"):
        resp = client.post(path, json=body, headers=_auth(SUPPORT))
        assert resp.status_code in (200, 422), (path, body, resp.text)
        if resp.status_code == 422:
            assert resp.json()["detail"]
