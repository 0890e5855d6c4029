"""Errors of the FHIR API, answered as OperationOutcome resources.

Every error under ``/fhir`` (unknown id, bad parameter, deactivated listing,
unknown path, wrong method, rate limit, database outage, unexpected failure) is
an OperationOutcome with the matching HTTP status and ``application/fhir+json``.
"""

from __future__ import annotations

import json
import logging

from flask import Response

from .terms import MEDIA_TYPE

log = logging.getLogger(__name__)

#: OperationOutcome issue type for each HTTP status we answer.
ISSUE_TYPES = {400: "invalid", 404: "not-found", 405: "not-supported", 406: "not-supported",
               410: "deleted", 413: "too-costly", 429: "throttled", 500: "exception",
               503: "transient"}


class FhirError(Exception):
    """A request the FHIR API refuses: HTTP ``status`` and an OperationOutcome issue."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 expression: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or ISSUE_TYPES.get(status, "processing")
        self.expression = expression
        self.headers = headers or {}


def operation_outcome(issues: list[dict]) -> dict:
    """An OperationOutcome resource with ``issues`` (each ``{severity, code, diagnostics}``)."""
    return {"resourceType": "OperationOutcome", "issue": issues}


def issue(severity: str, code: str, message: str, expression: str | None = None) -> dict:
    """One OperationOutcome issue."""
    found = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        found["expression"] = [expression]
    return found


def fhir_response(resource: dict, status: int = 200, headers: dict | None = None) -> Response:
    """A response with one FHIR resource as ``application/fhir+json``."""
    body = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
    response = Response(body, status=status, content_type=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: FhirError) -> Response:
    """The OperationOutcome answer for a refused request."""
    outcome = operation_outcome([issue("error", error.code, error.message, error.expression)])
    return fhir_response(outcome, error.status, error.headers)
