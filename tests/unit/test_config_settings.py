"""Settings and the official stores file: bad values stop the program with a clear message."""

from __future__ import annotations

import pytest

from vipsync.config.settings import CONFIG_DIR, load_settings
from vipsync.config.stores import load_stores
from vipsync.errors import ConfigError


def test_default_database_is_a_sqlite_file_in_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("VIPSYNC_DATABASE_URL", raising=False)
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path))
    url = load_settings().effective_database_url
    assert url == f"sqlite:///{tmp_path / 'vipsync.sqlite3'}"


def test_postgresql_url_uses_the_psycopg3_driver(monkeypatch):
    monkeypatch.setenv("VIPSYNC_DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().effective_database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("VIPSYNC_DATABASE_URL", "mysql://x"),
        ("VIPSYNC_REDIS_URL", "http://localhost"),
        ("VIPSYNC_SYNC_INTERVAL_S", "soon"),
        ("VIPSYNC_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_setting_names_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert var in str(err.value)


def test_default_stores_file_lists_the_official_stores():
    stores = load_stores(CONFIG_DIR / "stores.toml")
    assert {s.key for s in stores.of_kind("shopify")} == {"shopify-us", "shopify-eu", "shopify-jp"}
    codes = {m.code for s in stores.of_kind("amazon") for m in s.marketplaces}
    assert codes == {"US", "CA", "MX", "DE", "FR", "IT", "ES", "NL", "SE", "PL", "BE", "IE", "UK", "JP"}
    assert stores.amazon("amazon-eu").marketplace_by_channel("Amazon.co.uk").country == "GB"
    for store in stores:
        assert store.official
        # The file names environment variables, never secrets.
        assert all(v.startswith("VIPSYNC_") and v.isupper() for v in store.credentials.values())


def test_stores_file_error_names_file_store_and_key(tmp_path):
    path = tmp_path / "stores.toml"
    path.write_text(
        '[stores.web]\nkind = "shopify"\nshop_domain = "x.myshopify.com"\ntimezone = "Mars/Olympus"\ncountry = "US"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_stores(path)
    msg = str(err.value)
    assert str(path) in msg and "stores.web" in msg and "timezone" in msg


def test_unknown_marketplace_code_is_refused(tmp_path):
    path = tmp_path / "stores.toml"
    path.write_text('[stores.a]\nkind = "amazon"\nregion = "EU"\nmarketplaces = ["XX"]\n')
    with pytest.raises(ConfigError, match="unknown marketplace code 'XX'"):
        load_stores(path)


def test_credentials_come_from_the_named_environment_variable(monkeypatch):
    stores = load_stores(CONFIG_DIR / "stores.toml")
    shop = stores.shopify("shopify-us")
    monkeypatch.delenv("VIPSYNC_SHOPIFY_US_ACCESS_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="VIPSYNC_SHOPIFY_US_ACCESS_TOKEN"):
        shop.credential("access_token")
    monkeypatch.setenv("VIPSYNC_SHOPIFY_US_ACCESS_TOKEN", "tok")
    assert shop.credential("access_token") == "tok"
