"""Configuration from the environment (typed, validated, read at start-up), and the
wiring it feeds: an extensions module free of project imports, and SQLite tuning that
touches only the app's own engines."""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

import config
from referral import create_app
from referral.extensions import db

VARIABLES = (
    "REFERRAL_ENV", "DATABASE_URL", "INDEX_DIR", "SECRET_KEY", "GEOCODER", "GEOCODER_USER_AGENT",
    "MAX_CONTENT_LENGTH", "BULK_MAX_ROWS", "STALE_AFTER_DAYS", "HIDDEN_AFTER_DAYS",
    "SEARCH_LISTING_CACHE", "SEARCH_SYNC_ON_COMMIT", "RATE_LIMITS", "RATELIMIT_STORAGE_URI",
    "RATELIMIT_SEARCH", "RATELIMIT_WRITE", "RATELIMIT_KEY_PREFIX", "TRUSTED_PROXIES",
)
FALSE_SPELLINGS = ["0", "false", "False", "FALSE", "no", "No", "off", "OFF", "f", "n"]
TRUE_SPELLINGS = ["1", "true", "True", "yes", "YES", "on", "On", "t", "y"]


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch):
    """No configuration variable set, whatever the machine running the tests has."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults(tmp_path):
    settings = config.load_config(str(tmp_path))
    assert settings["REFERRAL_ENV"] == "development"
    assert settings["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/referral.sqlite3"
    assert settings["INDEX_DIR"] == str(tmp_path / "index")
    assert settings["SECRET_KEY"] and not settings["SESSION_COOKIE_SECURE"]
    assert (settings["GEOCODER"], settings["GEOCODER_USER_AGENT"]) == ("zip", "")
    assert settings["MAX_CONTENT_LENGTH"] == 5 * 1024 * 1024
    assert (settings["BULK_MAX_ROWS"], settings["STALE_AFTER_DAYS"],
            settings["HIDDEN_AFTER_DAYS"]) == (5000, 90, 365)
    assert settings["SEARCH_LISTING_CACHE"] is True
    assert settings["SEARCH_SYNC_ON_COMMIT"] is True
    assert settings["RATE_LIMITS"] is True
    assert settings["RATELIMIT_STORAGE_URI"] == "memory://"
    assert settings["RATELIMIT_SEARCH"] == "120 per minute"
    assert settings["RATELIMIT_WRITE"] == "60 per minute"
    assert settings["RATELIMIT_KEY_PREFIX"] == "referral"
    assert settings["TRUSTED_PROXIES"] == 0
    assert settings["RATELIMIT_ACCOUNT_FAILURES"] == "10 per hour"
    assert (settings["RESET_LINK_MINUTES"], settings["CONFIRM_LINK_HOURS"]) == (60, 48)
    assert "JSON_SORT_KEYS" not in settings


def test_values_are_typed(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://user@db.internal:5432/directory")
    monkeypatch.setenv("INDEX_DIR", "/srv/index")
    monkeypatch.setenv("GEOCODER", "nominatim")
    monkeypatch.setenv("BULK_MAX_ROWS", "250")
    monkeypatch.setenv("STALE_AFTER_DAYS", "30")
    monkeypatch.setenv("RATELIMIT_SEARCH", "10 per second; 1000 per day")
    settings = config.load_config(str(tmp_path))
    assert settings["SQLALCHEMY_DATABASE_URI"] == (
        "postgresql+psycopg://user@db.internal:5432/directory")
    assert settings["INDEX_DIR"] == "/srv/index"
    assert settings["GEOCODER"] == "nominatim"
    assert (settings["BULK_MAX_ROWS"], settings["STALE_AFTER_DAYS"]) == (250, 30)
    assert settings["RATELIMIT_SEARCH"] == "10 per second; 1000 per day"


@pytest.mark.parametrize("name", ["RATE_LIMITS", "SEARCH_LISTING_CACHE",
                                  "SEARCH_SYNC_ON_COMMIT"])
@pytest.mark.parametrize("spelling", FALSE_SPELLINGS)
def test_every_usual_spelling_switches_off(tmp_path, monkeypatch, name, spelling):
    monkeypatch.setenv(name, spelling)
    assert config.load_config(str(tmp_path))[name] is False


@pytest.mark.parametrize("spelling", TRUE_SPELLINGS)
def test_every_usual_spelling_switches_on(tmp_path, monkeypatch, spelling):
    monkeypatch.setenv("RATE_LIMITS", spelling)
    assert config.load_config(str(tmp_path))["RATE_LIMITS"] is True


@pytest.mark.parametrize("name, value", [
    ("BULK_MAX_ROWS", "lots"),
    ("BULK_MAX_ROWS", "0"),
    ("MAX_CONTENT_LENGTH", "5MB"),
    ("STALE_AFTER_DAYS", "-1"),
    ("HIDDEN_AFTER_DAYS", "1.5"),
    ("RATE_LIMITS", "maybe"),
    ("RATE_LIMITS", ""),
    ("SEARCH_LISTING_CACHE", "sometimes"),
    ("REFERRAL_ENV", "staging"),
    ("GEOCODER", "google"),
    ("RATELIMIT_SEARCH", "lots"),
    ("RATELIMIT_WRITE", "60 each minute"),
    ("RATELIMIT_STORAGE_URI", ""),
    ("RATELIMIT_ACCOUNT_FAILURES", "often"),
    ("RESET_LINK_MINUTES", "0"),
    ("CONFIRM_LINK_HOURS", "two days"),
])
def test_a_bad_value_is_refused_by_name(tmp_path, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(config.ConfigError, match=name):
        config.load_config(str(tmp_path))


def test_every_bad_value_is_named_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("BULK_MAX_ROWS", "lots")
    monkeypatch.setenv("RATE_LIMITS", "maybe")
    with pytest.raises(config.ConfigError) as refused:
        config.load_config(str(tmp_path))
    assert "BULK_MAX_ROWS" in str(refused.value) and "RATE_LIMITS" in str(refused.value)
    assert "lots" not in str(refused.value)  # values may be secrets: never echoed


def test_production_refuses_to_start_without_secret_key_and_database(tmp_path, monkeypatch):
    monkeypatch.setenv("REFERRAL_ENV", "production")
    with pytest.raises(config.ConfigError, match="SECRET_KEY, DATABASE_URL"):
        config.load_config(str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    with pytest.raises(config.ConfigError, match="DATABASE_URL"):
        config.load_config(str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "")
    with pytest.raises(config.ConfigError, match="DATABASE_URL"):
        config.load_config(str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://user@db.internal/directory")
    # issue 12: messages are encrypted at rest, so production also needs a key
    with pytest.raises(config.ConfigError, match="ENCRYPTION_KEYS"):
        config.load_config(str(tmp_path))
    monkeypatch.setenv("ENCRYPTION_KEYS", Fernet.generate_key().decode())
    settings = config.load_config(str(tmp_path))
    assert settings["SECRET_KEY"] == "s3cret" and settings["SESSION_COOKIE_SECURE"] is True


def test_encryption_keys_and_smtp_url_are_checked_without_echoing_them(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCRYPTION_KEYS", "not-a-fernet-key-hunter2")
    monkeypatch.setenv("SMTP_URL", "http://mail.example:25")
    with pytest.raises(config.ConfigError) as refused:
        config.load_config(str(tmp_path))
    assert "ENCRYPTION_KEYS" in str(refused.value) and "SMTP_URL" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("ENCRYPTION_KEYS", f"{first}, {second}")
    monkeypatch.setenv("SMTP_URL", "smtp://user:p%40ss@mail.example:587?starttls=true")
    settings = config.load_config(str(tmp_path))
    assert (settings["MAIL_BACKEND"], settings["MAIL_SERVER"], settings["MAIL_PORT"],
            settings["MAIL_USERNAME"], settings["MAIL_PASSWORD"], settings["MAIL_USE_TLS"],
            settings["MAIL_USE_SSL"]) == ("smtp", "mail.example", 587, "user", "p@ss", True,
                                          False)
    monkeypatch.delenv("SMTP_URL")
    assert config.load_config(str(tmp_path))["MAIL_BACKEND"] == "referral.mailer.OutboxEmailBackend"


def test_a_bad_value_stops_create_app(monkeypatch):
    monkeypatch.setenv("BULK_MAX_ROWS", "lots")
    with pytest.raises(config.ConfigError, match="BULK_MAX_ROWS"):
        create_app()


def test_rate_limits_off_in_the_environment_switch_limits_off(app, database, monkeypatch):
    url, engine_options = database
    monkeypatch.setenv("RATE_LIMITS", "off")
    monkeypatch.setenv("RATELIMIT_SEARCH", "1 per minute")
    unlimited = create_app({
        "TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": {**engine_options},
        "INDEX_DIR": tempfile.mkdtemp(prefix="referral-index-")})
    client = unlimited.test_client()
    statuses = [client.get("/api/v1/providers/search").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    with unlimited.app_context():
        db.engine.dispose()


def test_extensions_import_nothing_from_the_project():
    import referral.extensions

    tree = ast.parse(Path(referral.extensions.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("referral"), \
                ast.unparse(node)
        elif isinstance(node, ast.Import):
            assert not any(alias.name.startswith("referral") for alias in node.names), \
                ast.unparse(node)


def journal_mode(engine) -> str:
    """``PRAGMA journal_mode`` on a new connection of ``engine``."""
    with engine.connect() as connection:
        return connection.execute(text("PRAGMA journal_mode")).scalar()


def test_sqlite_tuning_touches_only_the_apps_engines(tmp_path):
    apps = [create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/{name}.sqlite3",
                        "INDEX_DIR": str(tmp_path / f"{name}-index")})
            for name in ("first", "second")]
    bare = create_engine(f"sqlite:///{tmp_path}/bare.sqlite3")
    try:
        for app, name in zip(apps, ("first", "second"), strict=False):
            with app.app_context():
                assert db.engine.url.database == f"{tmp_path}/{name}.sqlite3"
                assert journal_mode(db.engine) == "wal"
                with db.engine.connect() as connection:
                    assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
                    assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        assert journal_mode(bare) == "delete"
    finally:
        bare.dispose()
        for app in apps:
            with app.app_context():
                db.engine.dispose()


def test_start_up_runs_no_query(tmp_path):
    nowhere = "postgresql+psycopg://nobody@127.0.0.1:9/none"  # refuses any connection
    app = create_app({"SQLALCHEMY_DATABASE_URI": nowhere, "INDEX_DIR": str(tmp_path / "index")})
    with app.app_context():
        assert db.engine.url.port == 9
