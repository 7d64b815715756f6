"""Settings and the official stores file: bad values stop the program with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from vipsync.config.settings import CONFIG_DIR, Settings, load_settings
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


def test_a_value_given_wins_over_the_environment_which_wins_over_the_default(monkeypatch):
    monkeypatch.setenv("VIPSYNC_BATCH_SIZE", "250")
    monkeypatch.setenv("vipsync_lock_ttl_s", "90")  # the variables' names are read in any case
    monkeypatch.delenv("VIPSYNC_SYNC_INTERVAL_S", raising=False)
    settings = Settings(batch_size=100)
    assert (settings.batch_size, settings.lock_ttl_s, settings.sync_interval_s) == (100, 90, 300)
    assert {"batch_size", "lock_ttl_s"} <= settings.fields_set
    assert "sync_interval_s" not in settings.fields_set


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("VIPSYNC_BATCH_SIZE", "0", "at least 1"),
        ("VIPSYNC_BATCH_SIZE", "10001", "at most 10000"),
        ("VIPSYNC_PII_KEY_ID", "k" * 33, "at most 32 characters"),
        ("VIPSYNC_PROOF_MIN_DELAY_MS", "100", "proof_fetch_timeout_ms"),
        ("VIPSYNC_API_THREADS", "0", "at least 1"),
    ],
)
def test_a_value_out_of_its_bounds_names_the_variable_and_the_bound(monkeypatch, var, value, says):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=says) as err:
        load_settings()
    assert var in str(err.value)


def test_a_secret_setting_never_shows_in_a_repr(monkeypatch):
    monkeypatch.setenv("VIPSYNC_PII_KEY", "s3cret-value-" * 4)
    settings = load_settings()
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.pii_key)
    assert settings.pii_key is not None
    assert settings.pii_key.get_secret_value() == "s3cret-value-" * 4


def test_replace_checks_the_change_and_keeps_what_was_set(monkeypatch):
    monkeypatch.delenv("VIPSYNC_REDIS_URL", raising=False)
    settings = Settings(batch_size=100)
    changed = settings.replace(stores_file="other.toml")
    assert changed.stores_file == Path("other.toml") and changed.batch_size == 100
    assert changed.fields_set == settings.fields_set | {"stores_file"}
    with pytest.raises(ConfigError, match="VIPSYNC_REDIS_URL"):
        settings.replace(redis_url="http://x")


def test_stores_file_refuses_an_unknown_key_and_names_it(tmp_path):
    path = tmp_path / "stores.toml"
    path.write_text(
        '[stores.web]\nkind = "shopify"\nshop_domain = "x.myshopify.com"\ntimezone = "UTC"\n'
        'country = "US"\nreplacment_tag = "r"\n'
    )
    with pytest.raises(ConfigError, match=r"stores\.web\.replacment_tag: unknown key"):
        load_stores(path)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('kind = "shopify"\ntimezone = "UTC"\ncountry = "US"\n', "stores.s.shop_domain: required"),
        ('kind = "shopify"\nshop_domain = "x"\ntimezone = "UTC"\ncountry = "USA"\n', "stores.s.country"),
        ('kind = "shopify"\nshop_domain = "x"\ntimezone = "UTC"\ncountry = "US"\nofficial = 3\n', "official"),
        ('kind = "amazon"\nregion = "SA"\nmarketplaces = ["US"]\n', "stores.s.region: must be one of"),
        (
            'kind = "amazon"\nregion = "EU"\nmarketplaces = ["DE", { code = "FR", timezone = "Mars/X" }]\n',
            "stores.s.marketplaces.1.timezone",
        ),
        ('kind = "amazon"\nregion = "EU"\nmarketplaces = ["DE", "DE"]\n', "listed twice"),
    ],
)
def test_stores_file_errors_name_the_key_down_to_a_marketplace(tmp_path, body, where):
    path = tmp_path / "stores.toml"
    path.write_text("[stores.s]\n" + body)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_stores(path)


def test_a_store_made_in_code_is_checked_like_one_from_the_file():
    from vipsync.config.stores import AmazonAccount, Marketplace

    account = AmazonAccount(
        key="a",
        region="NA",
        marketplaces=(
            {
                "code": "US",
                "id": "ATVPDKIKX0DER",
                "sales_channel": "Amazon.com",
                "timezone": "America/Los_Angeles",
                "country": "us",
            },
        ),
    )
    assert isinstance(account.marketplaces[0], Marketplace) and account.marketplaces[0].country == "US"
    with pytest.raises(ValueError, match="timezone"):
        Marketplace(code="X", id="x", sales_channel="x", timezone="Nowhere/None", country="US")
