"""The ops dashboard in a real browser (headless Debian Chromium driven by selenium):
the figures it shows equal the views', its classify action works, every asset comes from
the app, and a screenshot is kept under tests/artifacts/."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select, text

from vipsync.api.app import create_app
from vipsync.api.auth import new_token
from vipsync.bootstrap import Context
from vipsync.config.settings import Settings
from vipsync.devtools.factories import order_record
from vipsync.store.models import CatalogDecision, Unit, UnitTag
from vipsync.store.repository import Repository
from vipsync.workers.results import SyncResult
from vipsync.workers.sync_health import tracked
from vipsync.workers.tagging import tag_pending

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN, ENTRY = new_token("ops-desk", "support")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def seeded_web(pg_url, tmp_path, monkeypatch) -> Iterator[tuple[Context, str]]:
    monkeypatch.setenv("VIPSYNC_API_TOKENS", ENTRY)
    ctx = Context(settings=Settings(data_dir=tmp_path / "data"), database_url=pg_url)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    records = [
        order_record(
            i,
            store_key=("shopify-us", "shopify-eu", "shopify-jp")[i % 3],
            country=("US", "DE", "JP")[i % 3],
            purchased_at=today - timedelta(days=300 + 4 * i),
            lines=(("HKS0401A3U", 1 + i % 2), ("ZZ-NEW-7", 1)) if i % 4 == 0 else (("HKS0401A3U", 1),),
        )
        for i in range(1, 40)
    ]
    with ctx.session_factory() as s:
        Repository(s).upsert_orders(records)
        s.commit()
    tag_pending(ctx)
    tracked(
        ctx, "shopify-us", lambda c, store_key: SyncResult(store_key=store_key, mode="incremental", read=39)
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(250):
        if server.started:
            break
        time.sleep(0.02)
    yield ctx, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)
    ctx.dispose()


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    assert shutil.which(CHROMEDRIVER) and Path(CHROMIUM).exists(), (
        "the browser test needs Debian's chromium and chromium-driver: `make test` installs them "
        "(apt-get install -y chromium chromium-driver)"
    )
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,2200",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _table(driver, table_id: str) -> dict[str, int]:
    out = {}
    for row in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        out[row.get_attribute("data-key")] = int(cells[-1].text)
    return out


def _view_counts(ctx, column: str) -> dict[str, int]:
    with ctx.session_factory() as s:
        rows = s.execute(text(f"SELECT {column}, COUNT(*) FROM ops_units GROUP BY {column}")).all()
    return {("none" if k is None else str(k)): n for k, n in rows}


def _loaded(driver, previous: str | None = None) -> str:
    def ready(d):
        stamp = d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
        return stamp if stamp and stamp != previous else False

    return WebDriverWait(driver, 30).until(ready)


def test_the_dashboard_shows_the_views_figures_and_classifies(seeded_web, browser):
    ctx, url = seeded_web
    browser.get(f"{url}/dashboard")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    stamp = _loaded(browser)

    for dimension in ("benefit_status", "store", "country"):
        shown = _table(browser, f"counts-{dimension}")
        assert shown == _view_counts(ctx, dimension), dimension
        assert browser.execute_script(
            f"return Chart.getChart(document.getElementById('chart-{dimension}')).data.datasets[0].data"
        ) == list(shown.values())
    with ctx.session_factory() as s:
        closing = dict(
            s.execute(
                text(
                    "SELECT window_kind, COUNT(*) FROM ops_windows_closing WHERE days_left <= 30 GROUP BY window_kind"
                )
            ).all()
        )
        deadlines = s.execute(
            text("SELECT COUNT(*) FROM ops_registration_deadlines WHERE days_left <= 30")
        ).scalar_one()
    assert _table(browser, "windows-by-kind") == closing and closing
    assert int(browser.find_element(By.ID, "registrations-total").text) == deadlines
    health = browser.find_element(By.CSS_SELECTOR, "#sync-health tbody tr[data-key='shopify-us']").text
    assert "shopify-us" in health and " s" in health  # lag in seconds since the last success

    row = browser.find_element(By.CSS_SELECTOR, "#unclassified tbody tr[data-key='ZZ-NEW-7']")
    assert row.find_elements(By.TAG_NAME, "td")[3].text == "9"
    Select(row.find_element(By.TAG_NAME, "select")).select_by_value("accessory")
    row.find_element(By.CSS_SELECTOR, "button.classify").click()
    _loaded(browser, stamp)
    assert not browser.find_elements(By.CSS_SELECTOR, "#unclassified tbody tr[data-key='ZZ-NEW-7']")
    assert "re-tagged" in browser.find_element(By.ID, "status").text
    with ctx.session_factory() as s:
        decision = s.execute(select(CatalogDecision)).scalar_one()
        categories = set(
            s.execute(select(UnitTag.category).join(Unit).where(Unit.sku == "ZZ-NEW-7")).scalars()
        )
    assert (decision.sku, decision.category, decision.decided_by) == ("ZZ-NEW-7", "accessory", "api:ops-desk")
    assert categories == {"accessory"}
    assert _table(browser, "counts-benefit_status") == _view_counts(ctx, "benefit_status")

    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(url) for r in resources), resources
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
