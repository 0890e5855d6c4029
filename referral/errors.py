"""Domain errors and the one JSON error shape of the API.

Every error answer is ``{"code", "status", "message", "errors"}``: ``code`` is
the HTTP status, ``status`` its name, ``message`` a sentence for a person and
``errors`` an object with details (per-field messages for validation errors,
``{"rows": [...]}`` for a bulk upload). Domain errors raised by the plain
business functions are mapped to HTTP here, in one place.

So are writes the database refuses: a concurrent writer saved the row first
(``StaleDataError`` from the row-version check, see ``referral.models``) or a
constraint failed (``IntegrityError``: a unique key taken meanwhile, a check
constraint). Both answer 409 with nothing written. Database errors are logged by
class, SQLSTATE, table and constraint only, never by their message: on PostgreSQL
that carries the failing row (``DETAIL: Failing row contains ...``), which may be
a referral (health information).
"""

from __future__ import annotations

import logging
import re
import traceback

from flask import Flask, render_template, request
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.exceptions import NotFound as NotFoundError
from werkzeug.http import HTTP_STATUS_CODES

from .extensions import db
from .i18n import N_, gettext

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A business rule said no; ``status`` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class NotFound(DomainError):
    """The thing does not exist, or the caller may not see it."""

    status = 404


class Conflict(DomainError):
    """The request conflicts with the current state (e.g. an NPI listed already)."""

    status = 409


class Forbidden(DomainError):
    """The caller is known but may not do this (a role, or a clinic not approved yet)."""

    status = 403


class Gone(DomainError):
    """A one-time link that was used already or has expired."""

    status = 410


class Invalid(DomainError):
    """The input is well-formed but breaks a rule."""

    status = 422


class PreconditionFailed(DomainError):
    """The caller's ``If-Match`` names a version that is no longer the current one."""

    status = 412


# ---------------------------------------------------------------------------
# Writes the database refused, and database errors in logs

CONCURRENT_CHANGE = ("Another change to this {subject} was saved first; nothing was written. "
                     "Reload and try again.")
#: What a table's rows are called in messages (the first name found in the error wins).
SUBJECTS = (("referral", "referral"), ("provider", "listing"))


def database_conflict(error: StaleDataError | IntegrityError) -> Conflict:
    """The 409 a refused write means (logged by class and constraint, never by values).

    Roll the session back before calling this.
    """
    details = describe_database_error(error)
    log.warning("write refused, nothing saved: %s", details)
    subject = next((name for word, name in SUBJECTS if word in details), "record")
    return Conflict(CONCURRENT_CHANGE.format(subject=subject))


def describe_database_error(error: BaseException) -> str:
    """Class, SQLSTATE, table and constraint of a database error: never its message.

    For a ``StaleDataError`` (whose message holds no values) the table it names.
    """
    if isinstance(error, StaleDataError):
        table = re.search(r"on table '([\w.]+)'", str(error))
        return f"StaleDataError (table {table[1] if table else 'unknown'})"
    original = getattr(error, "orig", None)
    parts = [type(error).__name__]
    if original is not None:
        parts.append(f"{type(original).__module__}.{type(original).__name__}")
    diag = getattr(original, "diag", None)  # psycopg: identifiers only, never the row
    if diag is not None:
        parts += [f"{label} {value}" for label, value in (
            ("sqlstate", diag.sqlstate), ("table", diag.table_name),
            ("constraint", diag.constraint_name)) if value]
    elif original is not None:  # sqlite3: "CHECK constraint failed: ck_provider_fee_range"
        parts.append(getattr(original, "sqlite_errorname", "") or "")
        failed = re.match(r"^([A-Z ]+) constraint failed: ([\w., ]+)$", str(original))
        if failed:
            parts.append(f"constraint {failed[2]}")
    return " ".join(part for part in parts if part)


def scrubbed_traceback(error: BaseException) -> str:
    """The stack of ``error`` and the errors it came from, each named by its class only
    (database errors also by ``describe_database_error``): no message, so no row values."""
    lines: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = (describe_database_error(current) if isinstance(current, DBAPIError)
                else f"{type(current).__module__}.{type(current).__name__}")
        lines.append("".join(traceback.format_tb(current.__traceback__)) + name)
        current = current.__cause__ or current.__context__
    return "\n-- which came from --\n".join(lines)


def _carries_database_error(error: BaseException | None) -> bool:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, DBAPIError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class ScrubDatabaseErrors(logging.Filter):
    """Rewrite a log record whose exception is (or came from) a database error: the stack
    and the error's class and constraint stay, its message (the failing row) goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; never drops it."""
        error = record.exc_info[1] if record.exc_info else None
        if _carries_database_error(error):
            record.msg = f"{record.getMessage()}\n{scrubbed_traceback(error)}"
            record.args = ()
            record.exc_info = record.exc_text = None
        return True


def handle_database_conflict(error: StaleDataError | IntegrityError):
    """A concurrent writer saved first, or a constraint refused the write: 409, nothing kept."""
    db.session.rollback()
    conflict = database_conflict(error)
    return error_answer(conflict.status, conflict.message, conflict.errors), conflict.status


def error_payload(status: int, message: str, errors: dict | None = None) -> dict:
    """The one error shape of the API."""
    return {"code": status, "status": HTTP_STATUS_CODES.get(status, "Error"),
            "message": message, "errors": errors or {}}


def handle_http_exception(error: HTTPException):
    """Answer any HTTP error (including unhandled exceptions, as 500) in the error shape."""
    if isinstance(error, InternalServerError) or error.code >= 500:
        db.session.rollback()
        original = getattr(error, "original_exception", None)
        if original is not None:
            # The stack trace goes to the log; request bodies never do, nor the rows a
            # database error quotes (ScrubDatabaseErrors).
            log.error("unhandled error", exc_info=original)
    data = getattr(error, "data", None) or {}
    message = data.get("message") or _message_for(error)
    errors = data.get("errors") or data.get("messages") or {}
    headers = dict(data.get("headers") or {})
    allowed = getattr(error, "valid_methods", None)
    if error.code == 405 and allowed:
        headers["Allow"] = ", ".join(allowed)
    if error.code == 401 and request.path.startswith("/api/"):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="clinic"')
    return error_answer(error.code, message, errors), error.code, headers


#: A rate limit in words: ``120 per minute`` (one period), ``10 every 5 minutes``.
LIMIT_WORDS = {
    "second": (lambda amount: gettext("%(amount)s per second", amount=amount),
             lambda amount, num: gettext("%(amount)s every %(num)s seconds",
                                         amount=amount, num=num)),
    "minute": (lambda amount: gettext("%(amount)s per minute", amount=amount),
             lambda amount, num: gettext("%(amount)s every %(num)s minutes",
                                         amount=amount, num=num)),
    "hour": (lambda amount: gettext("%(amount)s per hour", amount=amount),
             lambda amount, num: gettext("%(amount)s every %(num)s hours",
                                         amount=amount, num=num)),
    "day": (lambda amount: gettext("%(amount)s per day", amount=amount),
             lambda amount, num: gettext("%(amount)s every %(num)s days",
                                         amount=amount, num=num)),
    "month": (lambda amount: gettext("%(amount)s per month", amount=amount),
             lambda amount, num: gettext("%(amount)s every %(num)s months",
                                         amount=amount, num=num)),
    "year": (lambda amount: gettext("%(amount)s per year", amount=amount),
             lambda amount, num: gettext("%(amount)s every %(num)s years",
                                         amount=amount, num=num)),
}


def limit_text(error: HTTPException) -> str:
    """The limit a 429 names, in the request's language (Flask-Limiter says ``120 per 1
    minute`` in English whatever the page)."""
    item = getattr(getattr(error, "limit", None), "limit", None)
    words = LIMIT_WORDS.get(getattr(getattr(item, "GRANULARITY", None), "name", None))
    if words is None:
        return error.description
    one, many = words
    return one(item.amount) if item.multiples == 1 else many(item.amount, item.multiples)


def _message_for(error: HTTPException) -> str:
    if error.code >= 500:
        return gettext("The server could not complete the request. Nothing was changed.")
    if error.code == 422:
        return gettext("The input is not valid.")
    if error.code == 429:
        return gettext("Too many requests (the limit is %(limit)s). Please wait a minute and "
                       "try again.", limit=limit_text(error))
    if error.code == 404 and error.description == NotFoundError.description:
        return gettext("There is no page at this address. Check it, or start a new search.")
    return (error.description or error.name).strip()


#: The names of the statuses a patient may meet, for the error page's title.
STATUS_NAMES = {400: N_("Bad Request"), 403: N_("Forbidden"), 404: N_("Not Found"),
                405: N_("Method Not Allowed"), 409: N_("Conflict"),
                413: N_("Request Entity Too Large"), 422: N_("Unprocessable Entity"),
                429: N_("Too Many Requests"), 500: N_("Internal Server Error"),
                503: N_("Service Unavailable")}


def error_answer(status: int, message: str, errors: dict | None = None):
    """The error shape for the API; an HTML error page anywhere else."""
    if not request.path.startswith("/api/"):
        name = STATUS_NAMES.get(status) or HTTP_STATUS_CODES.get(status, "")
        return render_template("error.html", code=status, name=gettext(name) if name else "",
                               message=message)
    return error_payload(status, message, errors)


def handle_domain_error(error: DomainError):
    """Answer a domain error in the error shape, with nothing of the transaction kept."""
    db.session.rollback()
    return error_answer(error.status, error.message, error.errors), error.status


def init_app(app: Flask) -> None:
    """Answer every error of ``app`` in the error shape (HTML pages outside ``/api``).

    Call after ``api.init_app(app)``: Flask keeps one handler per exception class, so
    this ``HTTPException`` handler replaces the one flask-smorest registers.
    """
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(StaleDataError, handle_database_conflict)
    app.register_error_handler(IntegrityError, handle_database_conflict)


def scrub_logs(app: Flask) -> None:
    """Put ``ScrubDatabaseErrors`` on Flask's logger and on every logger of this package.

    A logger's filters see only the records logged on that very logger, not those of its
    children, so each module's logger needs its own: every module of the package (the
    migrations aside) is imported first, also those only the worker or a command uses.
    """
    import importlib
    import pkgutil

    import referral

    for module in pkgutil.walk_packages(referral.__path__, "referral."):
        if not module.name.startswith("referral.migrations"):
            importlib.import_module(module.name)
    names = [name for name in logging.root.manager.loggerDict
             if name == "referral" or name.startswith("referral.")]
    for logger in (app.logger, *(logging.getLogger(name) for name in names)):
        if not any(isinstance(f, ScrubDatabaseErrors) for f in logger.filters):
            logger.addFilter(ScrubDatabaseErrors())
