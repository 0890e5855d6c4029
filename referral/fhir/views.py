"""The ``/fhir`` blueprint: metadata, read and search, and every error as OperationOutcome.

Every path under ``/fhir`` is routed into this blueprint (a catch-all answers unknown
paths 404 and other methods 405), so its error handlers, not the JSON API's or the
pages', answer every failure under ``/fhir``: refused requests, rate limits (429),
database outages (503) and unexpected errors (500).
"""

from __future__ import annotations

import contextlib
import logging

from flask import Blueprint, current_app, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from ..extensions import db
from ..models import Clinic, Provider, utcnow
from ..security import limit_searches
from . import terms
from .capability import capability_statement, catalog
from .kinds import KINDS, RESOURCE_ID, ResourceLoader
from .outcome import FhirError, error_response, fhir_response
from .paging import search_bundle
from .params import JSON_FORMATS, wants_strict
from .resources import instant
from .visibility import Snapshot, has_location, is_public

log = logging.getLogger(__name__)

fhir = Blueprint("fhir", __name__, url_prefix="/fhir")

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
CATALOG_TYPES = ("CodeSystem", "StructureDefinition")


def current_snapshot() -> Snapshot:
    """The moment and freshness settings of this request."""
    config = current_app.config
    return Snapshot(now=utcnow(), hidden_after_days=config["HIDDEN_AFTER_DAYS"],
                    stale_after_days=config["STALE_AFTER_DAYS"],
                    base_url=request.url_root.rstrip("/") + "/fhir")


@fhir.before_request
def _negotiate():
    """Only JSON is served: ``Accept`` or ``_format`` asking for anything else is 406."""
    wanted = request.args.get("_format")
    if wanted and wanted not in JSON_FORMATS:
        raise FhirError(406, f"_format {wanted!r} is not served; this server speaks "
                             "application/fhir+json only.")
    if request.headers.get("Accept"):
        accepted = request.accept_mimetypes
        if not any(accepted[kind] for kind in (terms.MEDIA_TYPE, "application/json",
                                               "application/json+fhir")):
            raise FhirError(406, "This server answers application/fhir+json only.")


@fhir.get("/metadata")
@limit_searches
def metadata():
    """The CapabilityStatement."""
    snapshot = current_snapshot()
    return fhir_response(capability_statement(instant(snapshot.now), snapshot.base_url))


def _search(resource_type: str, pairs: list[tuple[str, str]]):
    strict = wants_strict(request.headers.get("Prefer"))
    if resource_type in CATALOG_TYPES:
        return fhir_response(_catalog_bundle(resource_type, pairs, strict))
    kind = KINDS.get(resource_type)
    if kind is None:
        raise FhirError(404, f"This server has no resource type {resource_type!r}.")
    bundle = search_bundle(kind, pairs, strict, current_snapshot(),
                           current_app.config["SECRET_KEY"])
    db.session.rollback()  # read-only: end the transaction (a snapshot on PostgreSQL)
    return fhir_response(bundle)


@fhir.get("/<resource_type>")
@limit_searches
def search(resource_type: str):
    """Search one resource type (``GET [base]/[type]?params``)."""
    return _search(resource_type, list(request.args.items(multi=True)))


@fhir.post("/<resource_type>/_search")
@limit_searches
def search_by_post(resource_type: str):
    """Search with form-encoded parameters (``POST [base]/[type]/_search``)."""
    pairs = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
    return _search(resource_type, pairs)


@fhir.get("/<resource_type>/<resource_id>")
@limit_searches
def read(resource_type: str, resource_id: str):
    """Read one resource; a deactivated listing is 410 Gone."""
    if resource_type in CATALOG_TYPES:
        found = catalog()[resource_type].get(resource_id)
        if found is None:
            raise FhirError(404, f"No {resource_type} has id {resource_id!r}.")
        return fhir_response(found)
    kind = KINDS.get(resource_type)
    if kind is None:
        raise FhirError(404, f"This server has no resource type {resource_type!r}.")
    snapshot = current_snapshot()
    not_found = FhirError(404, f"No {resource_type} has id {resource_id!r}.")
    if not RESOURCE_ID.match(resource_id):
        raise not_found
    number = int(resource_id)
    if kind.name == "Organization":
        if db.session.get(Clinic, number) is None:
            raise not_found
    else:
        provider = db.session.get(Provider, number)
        if provider is None:
            raise not_found
        if not provider.active:
            raise FhirError(410, f"{resource_type}/{resource_id} was a listing that its clinic "
                                 "or the NPI registry deactivated; it is no longer offered.")
        if not is_public(provider, snapshot) or (
                kind.name == "Location" and not has_location(provider)):
            raise not_found
    rendered = ResourceLoader(snapshot).render(kind.name, [number])
    db.session.rollback()
    if not rendered:
        raise not_found
    resource = rendered[0][1]
    return fhir_response(resource, headers={"Last-Modified": _http_date(resource)})


def _http_date(resource: dict) -> str:
    import datetime as dt
    from email.utils import format_datetime

    moment = dt.datetime.strptime(resource["meta"]["lastUpdated"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return format_datetime(moment.replace(tzinfo=dt.UTC), usegmt=True)


def _catalog_bundle(resource_type: str, pairs: list[tuple[str, str]], strict: bool) -> dict:
    """A search of our CodeSystems or StructureDefinitions by ``url`` and ``_id`` (one page)."""
    found = list(catalog()[resource_type].values())
    ignored = []
    for key, value in pairs:
        if value == "" or key in ("_count", "_format", "_pretty"):
            continue
        if key == "url":
            found = [r for r in found if r["url"] in value.split(",")]
        elif key == "_id":
            found = [r for r in found if r["id"] in value.split(",")]
        else:
            ignored.append(key)
    if strict and ignored:
        raise FhirError(400, "Unknown or unsupported search parameters (Prefer: "
                             "handling=strict): " + ", ".join(ignored) + ".",
                        code="not-supported")
    base = request.url_root.rstrip("/") + "/fhir"
    return {"resourceType": "Bundle", "type": "searchset", "total": len(found),
            "link": [{"relation": "self", "url": request.url}],
            "entry": [{"fullUrl": f"{base}/{resource_type}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in found]}


@fhir.route("", methods=ALL_METHODS)
@fhir.route("/", methods=ALL_METHODS)
@fhir.route("/<path:rest>", methods=ALL_METHODS)
def elsewhere(rest: str = ""):
    """Anything else under /fhir: 405 when the path exists for GET, else 404."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, _ = adapter.match(request.path, method="GET")
    except HTTPException:
        endpoint = None
    if endpoint and endpoint != "fhir.elsewhere":
        raise FhirError(405, f"{request.method} is not supported: this FHIR API is read-only.",
                        headers={"Allow": "GET, HEAD"})
    raise FhirError(404, f"Nothing is served at {request.path}; see /fhir/metadata.")


# ---------------------------------------------------------------------------
# Errors


@fhir.errorhandler(FhirError)
def _refused(error: FhirError):
    return error_response(error)


@fhir.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    if isinstance(error, (NotFound, MethodNotAllowed)) and error.code in (404, 405):
        message = "Nothing is served here." if error.code == 404 else "Method not allowed."
    else:
        message = (error.description or error.name or "").strip() or "The request failed."
    if error.code and error.code >= 500:
        db.session.rollback()
    return error_response(FhirError(error.code or 500, message))


@fhir.errorhandler(DBAPIError)
def _database_error(error: DBAPIError):
    with contextlib.suppress(Exception):  # the connection is gone; discarded at teardown
        db.session.rollback()
    if isinstance(error, OperationalError) or error.connection_invalidated:
        log.warning("database unavailable: %s", type(error.orig).__name__ if error.orig else "")
        return error_response(FhirError(503, "The directory's database is unavailable; try "
                                             "again shortly.", headers={"Retry-After": "5"}))
    log.error("database error under /fhir", exc_info=error)
    return error_response(FhirError(500, "The server could not complete the request."))


@fhir.errorhandler(Exception)
def _unexpected(error: Exception):
    with contextlib.suppress(Exception):
        db.session.rollback()
    log.error("unhandled error under /fhir", exc_info=error)
    return error_response(FhirError(500, "The server could not complete the request."))
