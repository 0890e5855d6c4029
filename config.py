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
- ``SEARCH_SYNC_ON_COMMIT`` (bool, default on): after each commit that changed listings,
  wake this process's background applier, which brings the text index up to date off
  the request path (the request returns after its commit); off leaves that to the next
  text search, an import's catch-up or another process (bulk loads and benchmarks
  switch it off). Either way a text search applies pending changes before it reads.
- ``DB_CONNECT_TIMEOUT`` (int, seconds, default 3): how long opening a PostgreSQL
  connection may take.
- ``DB_STATEMENT_TIMEOUT`` (int, seconds, default 30): PostgreSQL's own
  ``statement_timeout`` on every connection (CLI imports included).
- ``DB_REQUEST_TIMEOUT`` (int, seconds, default 5): during a web request, a PostgreSQL
  statement without an answer for this long is abandoned (its connection is cut) and the
  request answers 503, so a frozen database never holds a worker; a pooled connection's
  liveness check gets one second. SQLite writers wait at most this long for a lock.
- ``TRUSTED_PROXIES`` (int, default 0): how many reverse proxies stand in front of the
  service; with 1 or more, the client address, scheme and host are taken from their
  ``X-Forwarded-For``/``-Proto``/``-Host`` headers (the last that many hops only). Leave 0
  when clients reach the service directly: the headers could then be forged.
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
- ``RATELIMIT_ACCOUNT_FAILURES`` (str): failed password (or second-factor) sign-ins per
  account, from any address (default ``10 per hour``); past it that account's sign-in
  answers 429 until the window passes.
- ``RATELIMIT_REPORTS_ADDRESS`` (str): patients' reports on listings per client address,
  the report page and API together (default ``10 per hour``).
- ``RATELIMIT_REPORTS_LISTING`` (str): reports on one listing, from anyone (default
  ``20 per day``), so that nobody floods one clinic's listing.
- ``RESET_LINK_MINUTES`` (int): how long an emailed password-reset link works (default 60;
  it works once).
- ``CONFIRM_LINK_HOURS`` (int): how long an email-confirmation link works (default 48).
- ``RATELIMIT_KEY_PREFIX`` (str): prefix of the counters' keys in the shared storage
  (default ``referral``), so several services can share one Redis.

Notifications and the coordination thread (issue 12):

- ``ENCRYPTION_KEYS`` (str): comma-separated Fernet keys (``referral new-key`` makes one);
  the first encrypts, all decrypt (rotation: put a new key first, run
  ``referral rotate-keys``, then drop the old one). Production refuses to start without
  one; development derives one from ``SECRET_KEY``.
- ``SMTP_URL`` (str): where email goes, ``smtp://user:password@host:587?starttls=true`` or
  ``smtps://host:465``; empty (default): emails are kept in the local outbox, which the
  clinic pages show (development and the demo).
- ``MAIL_FROM`` (str): the sender address of notification emails
  (default ``referrals@localhost``).
- ``PUBLIC_BASE_URL`` (str): the site's address, for links in emails
  (default ``http://127.0.0.1:5000``).
- ``WEBHOOK_TIMEOUT`` (float): seconds for one webhook request (default 5).
- ``WEBHOOK_RETRY_BASE`` (float): seconds before the first retry; each retry waits twice
  as long, at most ``WEBHOOK_RETRY_MAX`` (float, default 6 hours) (default 5).
- ``WEBHOOK_MAX_ATTEMPTS`` (int): attempts before a delivery is given up (default 17, which
  spans more than 24 hours with the default delays).
- ``WORKER_CONCURRENCY`` (int): deliveries in flight per worker (default 16).
- ``WORKER_POLL`` (float): seconds between looks for due deliveries (default 0.25).
- ``WORKER_LEASE`` (float): seconds a claimed delivery stays with its worker (default 60);
  a worker that dies loses its claims after this and another worker retries them.
- ``IN_PROCESS_WORKER`` (bool, default off): run a delivery worker thread inside the web
  process (single-process set-ups; ``make demo`` runs ``referral worker`` beside it).

Reminders and directory health (issue 14):

- ``REMINDER_LINK_DAYS`` (int): how long a digest's one-click "Still current" link works
  (default 14, two digest weeks; it works once).
- ``WORKER_DAILY_JOBS`` (bool, default on): delivery workers also run the daily jobs
  (expire referrals, send reminders), at most once per UTC day per directory, and fold
  the health tally every minute (``referral.health_tally``).
"""

from __future__ import annotations

import os

import limits
from cryptography.fernet import Fernet
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


def fernet_keys(value: str) -> None:
    """Validate comma-separated Fernet keys (raises ``ValidationError``, never showing them)."""
    for key in (part.strip() for part in value.split(",")):
        try:
            Fernet(key)
        except (ValueError, TypeError) as error:
            raise ValidationError("Each key must be a Fernet key (32 url-safe base64 bytes; "
                                  "make one with 'referral new-key').") from error


def smtp_url(value: str) -> None:
    """Validate an SMTP URL: ``smtp://`` or ``smtps://`` with a host."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValidationError("An SMTP URL such as smtp://user:password@host:587?starttls=true.")
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as error:
        raise ValidationError("The SMTP URL's port is not a number.") from error


def mail_settings(url: str, sender: str) -> dict:
    """Flask-Mailman settings for ``SMTP_URL`` (empty: the local outbox backend)."""
    from urllib.parse import parse_qs, unquote, urlsplit

    if not url:
        return {"MAIL_BACKEND": "referral.mailer.OutboxEmailBackend", "MAIL_DEFAULT_SENDER": sender}
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes", "on")
    return {"MAIL_BACKEND": "smtp", "MAIL_SERVER": parts.hostname,
            "MAIL_PORT": parts.port or (465 if parts.scheme == "smtps" else 25),
            "MAIL_USERNAME": unquote(parts.username) if parts.username else None,
            "MAIL_PASSWORD": unquote(parts.password) if parts.password else None,
            "MAIL_USE_SSL": parts.scheme == "smtps", "MAIL_USE_TLS": starttls,
            "MAIL_TIMEOUT": 10, "MAIL_DEFAULT_SENDER": sender}


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
        "TRUSTED_PROXIES": env.int("TRUSTED_PROXIES", 0, validate=Range(min=0, max=5)),
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
        "RATELIMIT_ACCOUNT_FAILURES": env.str("RATELIMIT_ACCOUNT_FAILURES", "10 per hour",
                                              validate=rate_limit),
        # Patients' reports on listings (issue 14)
        "RATELIMIT_REPORTS_ADDRESS": env.str("RATELIMIT_REPORTS_ADDRESS", "10 per hour",
                                             validate=rate_limit),
        "RATELIMIT_REPORTS_LISTING": env.str("RATELIMIT_REPORTS_LISTING", "20 per day",
                                             validate=rate_limit),
        # People: one-time links (issue 13)
        "RESET_LINK_MINUTES": env.int("RESET_LINK_MINUTES", 60, validate=count),
        "CONFIRM_LINK_HOURS": env.int("CONFIRM_LINK_HOURS", 48, validate=count),
        "RATELIMIT_KEY_PREFIX": env.str("RATELIMIT_KEY_PREFIX", "referral"),
        # Notifications, the coordination thread and the delivery worker (issue 12)
        "ENCRYPTION_KEYS": env.str("ENCRYPTION_KEYS", "", validate=lambda v: not v or
                                   fernet_keys(v) is None),
        "SMTP_URL": env.str("SMTP_URL", "", validate=lambda v: not v or smtp_url(v) is None),
        "MAIL_FROM": env.str("MAIL_FROM", "referrals@localhost", validate=Length(min=3)),
        "PUBLIC_BASE_URL": env.str("PUBLIC_BASE_URL", "http://127.0.0.1:5000",
                                   validate=Length(min=8)),
        "WEBHOOK_TIMEOUT": env.float("WEBHOOK_TIMEOUT", 5.0, validate=Range(min=0.1, max=30)),
        "WEBHOOK_RETRY_BASE": env.float("WEBHOOK_RETRY_BASE", 5.0, validate=Range(min=0.01)),
        "WEBHOOK_RETRY_MAX": env.float("WEBHOOK_RETRY_MAX", 6 * 3600.0,
                                       validate=Range(min=0.01)),
        "WEBHOOK_MAX_ATTEMPTS": env.int("WEBHOOK_MAX_ATTEMPTS", 17, validate=count),
        "WORKER_CONCURRENCY": env.int("WORKER_CONCURRENCY", 16,
                                      validate=Range(min=1, max=256)),
        "WORKER_POLL": env.float("WORKER_POLL", 0.25, validate=Range(min=0.01, max=60)),
        "WORKER_LEASE": env.float("WORKER_LEASE", 60.0, validate=Range(min=1)),
        "IN_PROCESS_WORKER": env.bool("IN_PROCESS_WORKER", False),
        # Reminders and directory health (issue 14)
        "REMINDER_LINK_DAYS": env.int("REMINDER_LINK_DAYS", 14, validate=count),
        "WORKER_DAILY_JOBS": env.bool("WORKER_DAILY_JOBS", True),
    }
    try:
        env.seal()
    except EnvValidationError as error:
        raise ConfigError("Invalid environment variables: " + "; ".join(
            f"{name}: {' '.join(messages)}"
            for name, messages in error.error_messages.items())) from error
    if referral_env == "production":
        missing = [name for name, value in (("SECRET_KEY", secret_key),
                                            ("DATABASE_URL", database_url),
                                            ("ENCRYPTION_KEYS", settings["ENCRYPTION_KEYS"]))
                   if not value]
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
        # Flask-Mailman, from SMTP_URL (empty: the local outbox)
        **mail_settings(settings["SMTP_URL"], settings["MAIL_FROM"]),
    }
