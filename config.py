"""Configuration of the referral service, read from environment variables.

Development defaults are safe and embedded: a SQLite file and a whoosh index
directory inside the Flask instance folder. Production (``REFERRAL_ENV=production``)
refuses to start without ``SECRET_KEY`` and ``DATABASE_URL``.

Environment variables:

- ``REFERRAL_ENV``: ``development`` (default) or ``production``.
- ``DATABASE_URL``: SQLAlchemy URL; ``postgresql://...`` uses psycopg 3.
  Default: ``sqlite:///<instance>/referral.sqlite3``.
- ``INDEX_DIR``: whoosh index directory. Default: ``<instance>/index``.
- ``SECRET_KEY``: Flask secret key (signs session cookies).
- ``GEOCODER``: ``zip`` (default, offline ZIP centroids) or ``nominatim``
  (online, street-level, needs ``GEOCODER_USER_AGENT``; never used in tests).
- ``MAX_CONTENT_LENGTH``: largest accepted request body in bytes (default 5 MiB).
- ``BULK_MAX_ROWS``: most listings in one bulk upload (default 5000).
- ``RATE_LIMITS`` (default 1; 0 switches limits off), ``RATELIMIT_STORAGE_URI`` (``memory://``; e.g.
  ``redis://127.0.0.1:6379`` to share counters between processes and nodes),
  ``RATELIMIT_SEARCH`` (``120 per minute`` per client address), ``RATELIMIT_WRITE``
  (``60 per minute`` per clinic token).
- ``STALE_AFTER_DAYS``: days after which a listing counts as stale (default 90).
- ``HIDDEN_AFTER_DAYS``: days after which search hides an unverified listing (default 365).
- ``SEARCH_LISTING_CACHE``: ``1`` (default) keeps rendered listings per process, reused
  while their version matches the index; ``0`` renders every result from the database.
"""

from __future__ import annotations

import os


def normalize_database_url(url: str) -> str:
    """Return ``url`` with PostgreSQL URLs pointed at the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def load_config(instance_path: str) -> dict:
    """Build the configuration mapping for an app whose instance folder is ``instance_path``."""
    env = os.environ.get("REFERRAL_ENV", "development")
    database_url = os.environ.get("DATABASE_URL") or (
        "sqlite:///" + os.path.join(instance_path, "referral.sqlite3")
    )
    secret_key = os.environ.get("SECRET_KEY")
    if env == "production":
        missing = [n for n, v in (("SECRET_KEY", secret_key),
                                  ("DATABASE_URL", os.environ.get("DATABASE_URL"))) if not v]
        if missing:
            raise RuntimeError(
                "REFERRAL_ENV=production needs these environment variables: " + ", ".join(missing))
    return {
        "REFERRAL_ENV": env,
        "SECRET_KEY": secret_key or "dev-only-not-secret",
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        # hide_parameters: SQL logs and database errors never show values (referrals are PHI)
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "hide_parameters": True},
        "INDEX_DIR": os.environ.get("INDEX_DIR") or os.path.join(instance_path, "index"),
        "GEOCODER": os.environ.get("GEOCODER", "zip"),
        "GEOCODER_USER_AGENT": os.environ.get("GEOCODER_USER_AGENT", ""),
        "MAX_CONTENT_LENGTH": _int_env("MAX_CONTENT_LENGTH", 5 * 1024 * 1024),
        "BULK_MAX_ROWS": _int_env("BULK_MAX_ROWS", 5000),
        "STALE_AFTER_DAYS": _int_env("STALE_AFTER_DAYS", 90),
        "HIDDEN_AFTER_DAYS": _int_env("HIDDEN_AFTER_DAYS", 365),
        "SEARCH_LISTING_CACHE": os.environ.get("SEARCH_LISTING_CACHE", "1") not in ("0", "false"),
        # flask-smorest / OpenAPI document
        "API_TITLE": "Mental-health provider directory",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "JSON_SORT_KEYS": False,
        # Clinic pages: signed session cookie, CSRF-protected forms
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env == "production",
        "WTF_CSRF_TIME_LIMIT": None,
        # Rate limits (Flask-Limiter); RATELIMIT_STORAGE_URI=redis://... shares them
        "RATE_LIMITS": os.environ.get("RATE_LIMITS", "1") not in ("0", "false"),
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_SEARCH": os.environ.get("RATELIMIT_SEARCH", "120 per minute"),
        "RATELIMIT_WRITE": os.environ.get("RATELIMIT_WRITE", "60 per minute"),
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": os.environ.get("RATELIMIT_KEY_PREFIX", "referral"),
    }
