"""Protections around every request: rate limits, security headers, CORS for public
reads only, and a 503 (in the error shape) while the database is unreachable.

Rate limits use Flask-Limiter: in memory by default, Redis (or any ``limits``
storage) when ``RATELIMIT_STORAGE_URI`` is set, so several processes and nodes
share the counters (gunicorn refuses to start several workers on in-memory
counters: ``gunicorn.conf.py``). Public searches, pages and API alike, share one
budget per client address; writes are limited per clinic token (or address when
there is none); failed authentications (sign-in page, bearer tokens) per address, and
failed password sign-ins per account as well; patients' reports on listings per client
address and per listing (the report page and API share both budgets).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re

import limits
from flask import Flask, current_app, request
from flask_limiter.util import get_remote_address
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import RequestURITooLarge, ServiceUnavailable

from .errors import handle_http_exception
from .extensions import db, limiter
from .limits import MAX_URL_BYTES

log = logging.getLogger(__name__)

#: Read endpoints anyone may call from another origin.
PUBLIC_READ = re.compile(
    r"^(/api/v1/(providers(/search|/\d+(/prescribers)?)?|match|vocabularies|openapi\.json)"
    r"|/fhir(/.*)?)$")
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")

CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                           "script-src 'self'; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")


def search_limit() -> str:
    """The configured limit of public searches per client."""
    return current_app.config["RATELIMIT_SEARCH"]


def write_limit() -> str:
    """The configured limit of writes per clinic token."""
    return current_app.config["RATELIMIT_WRITE"]


def writer_key() -> str:
    """Writes are counted per token (hashed), else per address."""
    header = request.headers.get("Authorization", "")
    if header:
        return "token:" + hashlib.sha256(header.encode()).hexdigest()[:32]
    return "addr:" + get_remote_address()


def limits_off() -> bool:
    """Limits are switched off for this app (``RATE_LIMITS=off``, e.g. benchmarks and tests)."""
    return not current_app.config["RATE_LIMITS"]


def limit_searches(view):
    """Decorate a public search view with the search limit: one budget per client address
    shared by every search-like view (pages and API)."""
    return limiter.shared_limit(search_limit, scope="search", exempt_when=limits_off)(view)


def _reported_listing() -> str:
    """Reports are also counted per listing, whoever sends them."""
    return "listing:" + str((request.view_args or {}).get("provider_id"))


def limit_reports(view):
    """Decorate a view that files a patient's report with the two report limits."""
    per_address = limiter.shared_limit(
        lambda: current_app.config["RATELIMIT_REPORTS_ADDRESS"], scope="reports-address",
        exempt_when=limits_off)
    per_listing = limiter.shared_limit(
        lambda: current_app.config["RATELIMIT_REPORTS_LISTING"], scope="reports-listing",
        key_func=_reported_listing, exempt_when=limits_off)
    return per_address(per_listing(view))


def _auth_failures() -> tuple:
    limit = limits.parse(current_app.config["RATELIMIT_AUTH_FAILURES"])
    return limit, current_app.config["RATELIMIT_KEY_PREFIX"], "auth-failures", \
        get_remote_address()


def auth_failures_exhausted() -> bool:
    """Whether this client address has failed to authenticate too often just now."""
    if limits_off():
        return False
    limit, *key = _auth_failures()
    return not limiter.limiter.test(limit, *key)


def record_auth_failure() -> None:
    """Count a failed sign-in or a bad token against this client address."""
    if not limits_off():
        limit, *key = _auth_failures()
        limiter.limiter.hit(limit, *key)


def _account_failures(email: str) -> tuple:
    limit = limits.parse(current_app.config["RATELIMIT_ACCOUNT_FAILURES"])
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return limit, current_app.config["RATELIMIT_KEY_PREFIX"], "account-failures", account


def account_failures_exhausted(email: str) -> bool:
    """Whether sign-ins to this account (by email) have failed too often lately, from any
    address: a password guessed from many addresses is stopped too."""
    if limits_off():
        return False
    limit, *key = _account_failures(email)
    return not limiter.limiter.test(limit, *key)


def record_account_failure(email: str) -> None:
    """Count a failed sign-in (bad password or code) against this account."""
    if not limits_off():
        limit, *key = _account_failures(email)
        limiter.limiter.hit(limit, *key)


def limit_writes(blueprint) -> None:
    """Apply the write limit to every writing method of a blueprint."""
    limiter.limit(write_limit, key_func=writer_key, methods=list(WRITE_METHODS),
                  exempt_when=limits_off)(blueprint)


def _headers(response):
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "geolocation=(), camera=(), microphone=()")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if current_app.config.get("REFERRAL_ENV") == "production":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.path.startswith(("/clinic", "/operator", "/api/v1/referrals", "/api/v1/clinics",
                                "/api/v1/claims", "/api/v1/registry", "/api/v1/operator")):
        headers["Cache-Control"] = "no-store"
    if request.method in ("GET", "HEAD", "OPTIONS") and PUBLIC_READ.match(request.path):
        headers["Access-Control-Allow-Origin"] = "*"
        if request.method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
            headers["Access-Control-Allow-Headers"] = "Content-Type"
            headers["Access-Control-Max-Age"] = "600"
    return response


def _database_unavailable(error: DBAPIError):
    """The database did not answer: 503 in the error shape; the pool reconnects by itself."""
    if not isinstance(error, OperationalError) and not error.connection_invalidated:
        raise error
    with contextlib.suppress(Exception):  # the connection is gone; discarded at teardown
        db.session.rollback()
    log.warning("database unavailable: %s", type(error.orig).__name__ if error.orig else "")
    unavailable = ServiceUnavailable()
    unavailable.data = {"message": "The directory's database is unavailable; try again shortly.",
                        "headers": {"Retry-After": "5"}}
    return handle_http_exception(unavailable)


def _url_length() -> None:
    """URLs longer than ``MAX_URL_BYTES`` answer 414 in the error shape (gunicorn's own
    request-line limit is lifted so that the answer comes from here)."""
    url = request.environ.get("RAW_URI") or request.full_path
    if len(url.encode("utf-8", "surrogateescape")) > MAX_URL_BYTES:
        raise RequestURITooLarge(f"The URL is longer than {MAX_URL_BYTES:,} bytes.")


def init_app(app: Flask) -> None:
    """Install limits, headers, CORS and the database-outage answer on ``app``."""
    app.before_request(_url_length)
    limiter.init_app(app)
    app.after_request(_headers)
    app.register_error_handler(DBAPIError, _database_unavailable)
