"""Domain errors and the one JSON error shape of the API.

Every error answer is ``{"code", "status", "message", "errors"}``: ``code`` is
the HTTP status, ``status`` its name, ``message`` a sentence for a person and
``errors`` an object with details (per-field messages for validation errors,
``{"rows": [...]}`` for a bulk upload). Domain errors raised by the plain
business functions are mapped to HTTP here, in one place.
"""

from __future__ import annotations

import logging

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

from .extensions import db

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
            # The stack trace goes to the log; request bodies never do.
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


def _message_for(error: HTTPException) -> str:
    if error.code >= 500:
        return "The server could not complete the request. Nothing was changed."
    if error.code == 422:
        return "The input is not valid."
    if error.code == 429:
        return (f"Too many requests (the limit is {error.description}). "
                "Please wait a minute and try again.")
    return (error.description or error.name).strip()


def error_answer(status: int, message: str, errors: dict | None = None):
    """The error shape for the API; an HTML error page anywhere else."""
    if not request.path.startswith("/api/"):
        return render_template("error.html", code=status,
                               name=HTTP_STATUS_CODES.get(status, ""), message=message)
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
