"""Configuration of the referral service, read from environment variables.

Every variable is declared once, in ``load_config``, with its type and default, and
read when an app is built (``create_app``), so a test may set variables and then build
an app. A value that does not parse or is out of range stops start-up with a
``ConfigError`` naming each variable at fault (never its value: some are secrets).

Development defaults are safe and embedded: a SQLite file and a whoosh index
directory inside the Flask instance folder. Production (``REFERRAL_ENV=production``)
refuses to start without ``SECRET_KEY`` and ``DATABASE_URL``.

Switches (``bool``) accept ``1``/``0``, ``true``/``false``, ``yes``/``no``, ``on``/``off``
(also ``t``/``f``, ``y``/``n``), in any letter case. Counts (``int``) are whole numbers of
at least 1. An empty string variable counts as unset; an empty switch or count is an error.

Environment variables:

- ``REFERRAL_ENV`` (str): ``development`` (default) or ``production``.
- ``DATABASE_URL`` (str): SQLAlchemy URL; ``postgresql://...`` uses psycopg 3.
  Default: ``sqlite:///<instance>/referral.sqlite3``.
- ``INDEX_DIR`` (str): whoosh index directory. Default: ``<instance>/index``.
- ``SECRET_KEY`` (str): Flask secret key (signs session cookies). Default: a
  development-only value.
- ``GEOCODER`` (str): ``zip`` (default, offline ZIP centroids) or ``nominatim``
  (online, street-level, needs ``GEOCODER_USER_AGENT``; never used in tests).
- ``GEOCODER_USER_AGENT`` (str): how ``nominatim`` requests name the service (default empty).
- ``MAX_CONTENT_LENGTH`` (int): largest accepted request body in bytes (default 5 MiB).
- ``BULK_MAX_ROWS`` (int): most listings in one bulk upload (default 5000).
- ``STALE_AFTER_DAYS`` (int): days after which a listing counts as stale (default 90).
- ``HIDDEN_AFTER_DAYS`` (int): days after which search hides an unverified listing
  (default 365).
- ``SEARCH_LISTING_CACHE`` (bool, default on): keep rendered listings per process, reused
  while their version matches the index; off renders every result from the database.
- ``SEARCH_SYNC_ON_COMMIT`` (bool, default on): bring this process's search index up to
  date after each commit that changed listings; off leaves that to the next search
  (bulk loads and benchmarks switch it off).
- ``DB_CONNECT_TIMEOUT`` (int, seconds, default 3): how long opening a PostgreSQL
  connection may take.
- ``DB_STATEMENT_TIMEOUT`` (int, seconds, default 30): PostgreSQL's own
  ``statement_timeout`` on every connection (CLI imports included).
- ``DB_REQUEST_TIMEOUT`` (int, seconds, default 5): during a web request, a PostgreSQL
  statement without an answer for this long is abandoned (its connection is cut) and the
  request answers 503, so a frozen database never holds a worker; a pooled connection's
  liveness check gets one second. SQLite writers wait at most this long for a lock.
- ``CLINIC_SESSION_HOURS`` (int, default 12): a clinic-pages sign-in ends after this long.
- ``RATE_LIMITS`` (bool, default on): off switches every rate limit off.
- ``RATELIMIT_STORAGE_URI`` (str): where limit counters live (default ``memory://``; e.g.
  ``redis://127.0.0.1:6379`` to share them between processes and nodes).
- ``RATELIMIT_SEARCH`` (str): limit of public searches per client address
  (default ``120 per minute``), one budget for the search page, the search API, pairs and
  the prescriber finder together.
- ``RATELIMIT_WRITE`` (str): limit of writes per clinic token (default ``60 per minute``).
- ``RATELIMIT_AUTH_FAILURES`` (str): failed sign-ins and bad API tokens per client address
  (default ``10 per minute``); past it every authentication from that address answers 429.
- ``RATELIMIT_KEY_PREFIX`` (str): prefix of the counters' keys in the shared storage
  (default ``referral``), so several services can share one Redis.
"""

from __future__ import annotations

import os

import limits
from environs import Env, EnvValidationError
from marshmallow import ValidationError
from marshmallow.validate import Length, OneOf, Range

ENVIRONMENTS = ("development", "production")
GEOCODERS = ("zip", "nominatim")
DEVELOPMENT_SECRET_KEY = "dev-only-not-secret"


class ConfigError(RuntimeError):
    """The environment configures the service wrongly; the message names each variable."""


def normalize_database_url(url: str) -> str:
    """Return ``url`` with PostgreSQL URLs pointed at the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def rate_limit(value: str) -> None:
    """Validate a Flask-Limiter limit such as ``120 per minute`` (raises ``ValidationError``)."""
    try:
        limits.parse_many(value)
    except ValueError as error:
        raise ValidationError("Not a rate limit such as '120 per minute'.") from error


def load_config(instance_path: str) -> dict:
    """Build the configuration mapping for an app whose instance folder is ``instance_path``.

    Raises ``ConfigError`` when a variable has a bad value, or when production lacks
    ``SECRET_KEY`` or ``DATABASE_URL``.
    """
    env = Env(eager=False)  # collect every bad value, then report them together
    count = Range(min=1)
    referral_env = env.str("REFERRAL_ENV", "development", validate=OneOf(ENVIRONMENTS))
    database_url = env.str("DATABASE_URL", "")
    secret_key = env.str("SECRET_KEY", "")
    settings = {
        "INDEX_DIR": env.str("INDEX_DIR", "") or os.path.join(instance_path, "index"),
        "GEOCODER": env.str("GEOCODER", "zip", validate=OneOf(GEOCODERS)),
        "GEOCODER_USER_AGENT": env.str("GEOCODER_USER_AGENT", ""),
        "MAX_CONTENT_LENGTH": env.int("MAX_CONTENT_LENGTH", 5 * 1024 * 1024, validate=count),
        "BULK_MAX_ROWS": env.int("BULK_MAX_ROWS", 5000, validate=count),
        "STALE_AFTER_DAYS": env.int("STALE_AFTER_DAYS", 90, validate=count),
        "HIDDEN_AFTER_DAYS": env.int("HIDDEN_AFTER_DAYS", 365, validate=count),
        "SEARCH_LISTING_CACHE": env.bool("SEARCH_LISTING_CACHE", True),
        "SEARCH_SYNC_ON_COMMIT": env.bool("SEARCH_SYNC_ON_COMMIT", True),
        "CLINIC_SESSION_HOURS": env.int("CLINIC_SESSION_HOURS", 12, validate=count),
        "DB_CONNECT_TIMEOUT": env.int("DB_CONNECT_TIMEOUT", 3, validate=Range(min=2)),
        "DB_STATEMENT_TIMEOUT": env.int("DB_STATEMENT_TIMEOUT", 30, validate=count),
        "DB_REQUEST_TIMEOUT": env.int("DB_REQUEST_TIMEOUT", 5, validate=count),
        # Rate limits (Flask-Limiter); RATELIMIT_STORAGE_URI=redis://... shares them
        "RATE_LIMITS": env.bool("RATE_LIMITS", True),
        "RATELIMIT_STORAGE_URI": env.str("RATELIMIT_STORAGE_URI", "memory://",
                                         validate=Length(min=1)),
        "RATELIMIT_SEARCH": env.str("RATELIMIT_SEARCH", "120 per minute", validate=rate_limit),
        "RATELIMIT_WRITE": env.str("RATELIMIT_WRITE", "60 per minute", validate=rate_limit),
        "RATELIMIT_AUTH_FAILURES": env.str("RATELIMIT_AUTH_FAILURES", "10 per minute",
                                           validate=rate_limit),
        "RATELIMIT_KEY_PREFIX": env.str("RATELIMIT_KEY_PREFIX", "referral"),
    }
    try:
        env.seal()
    except EnvValidationError as error:
        raise ConfigError("Invalid environment variables: " + "; ".join(
            f"{name}: {' '.join(messages)}"
            for name, messages in error.error_messages.items())) from error
    if referral_env == "production":
        missing = [name for name, value in (("SECRET_KEY", secret_key),
                                            ("DATABASE_URL", database_url)) if not value]
        if missing:
            raise ConfigError(
                "REFERRAL_ENV=production needs these environment variables: " + ", ".join(missing))
    return {
        **settings,
        "REFERRAL_ENV": referral_env,
        "SECRET_KEY": secret_key or DEVELOPMENT_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(
            database_url or "sqlite:///" + os.path.join(instance_path, "referral.sqlite3")),
        # hide_parameters: SQL logs and database errors never show values (referrals are PHI).
        # Pooled connections are checked by referral.database (under the request deadline).
        "SQLALCHEMY_ENGINE_OPTIONS": {"hide_parameters": True},
        # flask-smorest / OpenAPI document
        "API_TITLE": "Mental-health provider directory",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        # Clinic pages: signed session cookie, CSRF-protected forms
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": referral_env == "production",
        "WTF_CSRF_TIME_LIMIT": None,
        "RATELIMIT_HEADERS_ENABLED": True,
    }
