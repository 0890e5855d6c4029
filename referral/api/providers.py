"""Provider listing endpoints: read (public) and write (the owning clinic's token).

One listing answers with its row version as a strong ``ETag``; a write to it
(PATCH, DELETE, verify) may send ``If-Match`` with that ETag and is then made only
if the listing is still at that version (412 otherwise). Without ``If-Match`` a
write is still refused (409) when another change to the listing is saved while
it is being made.
"""

from __future__ import annotations

from flask import current_app, g, request
from flask.views import MethodView
from flask_limiter.util import get_remote_address

from .. import listings, reports
from ..auth import clinic_required
from ..bulk import upload_listings
from ..errors import Invalid
from ..queries import patient_search, prescriber_finder
from ..schemas.errors import BulkErrorSchema
from ..schemas.listings import (
    AuditEntrySchema,
    BulkQuerySchema,
    BulkResultSchema,
    ListingPatchSchema,
    ListingSchema,
    ProviderListQuerySchema,
    ProviderPageSchema,
    ProviderSchema,
)
from ..schemas.matching import FinderAnswerSchema, PrescriberFinderQuerySchema
from ..schemas.reports import ClinicReportSchema, ReportReceiptSchema, ReportSchema, ResolveSchema
from ..schemas.search import SearchAnswerSchema, SearchQuerySchema
from ..security import limit_reports, limit_searches, limit_writes
from ..services import geocoder
from . import Blueprint

blp = Blueprint("providers", __name__, url_prefix="/providers",
                description="Therapist and prescriber listings.")
blp.url_prefix = "/providers"
limit_writes(blp)

CLINIC_AUTH = [{"clinicToken": []}]
WRITE_ERRORS = (401, 404, 422)
ETAG_HEADER = {"ETag": {"description": "The listing's version; send it back in If-Match to "
                                       "change exactly this version.",
                        "schema": {"type": "string"}}}
IF_MATCH = {"parameters": [{
    "in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
    "description": "The listing's ETag as read: the change is made only if the listing is "
                   "still at that version (412 otherwise)."}]}
CONFLICT = "Another change to the listing was saved first; nothing was written."
STALE = "If-Match names a version that is no longer current; nothing was written."


def with_etag(provider):
    """The listing with its version as the ``ETag`` header, for flask-smorest to dump."""
    return provider, 200, {"ETag": f'"{provider.version}"'}


def expected_versions() -> set[int] | None:
    """The listing versions the request's ``If-Match`` names (None: no header, or ``*``).

    Weak ETags never match (``If-Match`` compares strongly), nor do ones not made here,
    nor does a header that names none.
    """
    if_match = request.if_match
    if "If-Match" not in request.headers or if_match.star_tag:
        return None
    return {int(tag) for tag in if_match.as_set() if tag and tag.isdigit() and len(tag) < 12}


@blp.route("")
class ProviderCollection(MethodView):
    """All listings."""

    @blp.arguments(ProviderListQuerySchema, location="query")
    @blp.response(200, ProviderPageSchema)
    def get(self, query):
        """List active listings, with simple filters (full search: /providers/search)."""
        page, per_page = query.pop("page"), query.pop("per_page")
        return listings.list_providers(query, page, per_page)

    @clinic_required
    @blp.doc(security=CLINIC_AUTH)
    @blp.arguments(ListingSchema)
    @blp.response(201, ProviderSchema)
    @blp.alt_response(401, description="Missing or bad clinic token.")
    @blp.alt_response(409, description="The NPI is listed already.")
    def post(self, values):
        """Create a listing for the caller's clinic (it counts as verified now)."""
        return listings.create_provider(g.clinic, values, geocoder())


@blp.route("/search", methods=["GET"])
@limit_searches
@blp.arguments(SearchQuerySchema, location="query")
@blp.response(200, SearchAnswerSchema)
def search(params):
    """Search listings for a patient: needs, location or telehealth state, cost, insurance.

    Listings not verified in 90 days rank after verified ones and say ``stale``;
    those not verified in a year are hidden unless ``include_stale=true``. Text that
    signals a crisis brings the 988 notice first.
    """
    answer = patient_search(params)
    # Items are listings already dumped by ProviderSchema (and cached) plus plain extras,
    # so the answer goes out as it is rather than through the schema a second time.
    return current_app.json.response(answer)


@blp.route("/<int(min=1, max=2147483647):provider_id>/prescribers", methods=["GET"])
@limit_searches
@blp.arguments(PrescriberFinderQuerySchema, location="query")
@blp.response(200, FinderAnswerSchema)
@blp.alt_response(404, description="No active therapist with this id.")
def prescribers(params, provider_id):
    """Prescribers a therapist can refer this patient to: they accept coordinated care and
    new patients and can see the patient; ranked with their responsiveness."""
    answer = prescriber_finder(provider_id, params)
    return current_app.json.response(answer)


@blp.route("/<int(min=1, max=2147483647):provider_id>")
class ProviderItem(MethodView):
    """One listing."""

    @blp.response(200, ProviderSchema, headers=ETAG_HEADER)
    @blp.alt_response(404, description="No active listing with this id.")
    def get(self, provider_id):
        """Show an active listing (its version is the ETag)."""
        return with_etag(listings.public_provider(provider_id))

    @clinic_required
    @blp.doc(security=CLINIC_AUTH, **IF_MATCH)
    @blp.arguments(ListingPatchSchema(partial=True))
    @blp.response(200, ProviderSchema, headers=ETAG_HEADER)
    @blp.alt_response(401, description="Missing or bad clinic token.")
    @blp.alt_response(404, description="Not one of the caller's listings.")
    @blp.alt_response(409, description=CONFLICT)
    @blp.alt_response(412, description=STALE)
    def patch(self, changes, provider_id):
        """Change some fields of one of the caller's listings."""
        return with_etag(listings.update_provider(g.clinic, provider_id, changes, geocoder(),
                                                  expected_versions()))

    @clinic_required
    @blp.doc(security=CLINIC_AUTH, **IF_MATCH)
    @blp.response(200, ProviderSchema, headers=ETAG_HEADER)
    @blp.alt_response(401, description="Missing or bad clinic token.")
    @blp.alt_response(404, description="Not one of the caller's listings.")
    @blp.alt_response(409, description=CONFLICT)
    @blp.alt_response(412, description=STALE)
    def delete(self, provider_id):
        """Deactivate one of the caller's listings (hidden from patients, history kept)."""
        return with_etag(listings.deactivate_provider(g.clinic, provider_id,
                                                      expected_versions()))


@blp.route("/<int(min=1, max=2147483647):provider_id>/verify", methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH, **IF_MATCH)
@blp.response(200, ProviderSchema, headers=ETAG_HEADER)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not one of the caller's listings.")
@blp.alt_response(409, description=CONFLICT)
@blp.alt_response(412, description=STALE)
def verify(provider_id):
    """Attest that a listing is current (last_verified_at = now)."""
    return with_etag(listings.verify_provider(g.clinic, provider_id, expected_versions()))


@blp.route("/<int(min=1, max=2147483647):provider_id>/reports", methods=["POST"])
@limit_reports
@blp.arguments(ReportSchema)
@blp.response(201, ReportReceiptSchema)
@blp.alt_response(404, description="No active listing with this id.")
@blp.alt_response(429, description="Too many reports from this address, or on this listing.")
def report(values, provider_id):
    """Report that a listing is wrong (no sign-in). The listing's clinic is told and sees
    the text; it is never shown publicly. Reports from three different people within 30
    days mark the listing as reported until its clinic fixes or verifies it."""
    return reports.file_report(provider_id, values["reason"], values.get("text"),
                               get_remote_address())


@blp.route("/<int(min=1, max=2147483647):provider_id>/reports/"
           "<int(min=1, max=2147483647):report_id>/resolve", methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(ResolveSchema)
@blp.response(200, ClinicReportSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not a report on one of the caller's listings.")
@blp.alt_response(409, description="The report is resolved or decided already.")
def resolve_report(values, provider_id, report_id):
    """Resolve a report on one of the caller's listings: fixed or verified, with a note.
    The listing counts as verified now and every open report on it is resolved."""
    return reports.readable(reports.resolve(g.clinic, provider_id, report_id,
                                            values["resolution"], values["note"]))


@blp.route("/<int(min=1, max=2147483647):provider_id>/audit", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, AuditEntrySchema(many=True))
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not one of the caller's listings.")
def audit(provider_id):
    """The change history of one of the caller's listings, newest first."""
    return listings.audit_trail(g.clinic, provider_id)


_BULK_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": ListingSchema(many=True)},
        "text/csv": {"schema": {"type": "string", "description":
                                "Header of listing field names; list values separated by ';'."}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}}},
    },
}


def _upload() -> dict:
    """The uploaded listings: ``{"rows": [...]}`` from a JSON array, or ``{"csv": ...}`` from
    a CSV body or a multipart CSV file."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        return {"rows": request.get_json(silent=True)}
    if mimetype in ("text/csv", "application/csv"):
        return {"csv": request.get_data()}
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise Invalid("Attach the CSV file as the form field 'file'.",
                          {"file": ["Missing."]})
        return {"csv": upload.read()}
    raise Invalid("Send application/json, text/csv or multipart/form-data.",
                  {"content_type": [f"Unsupported: {mimetype or 'none'}."]})




@blp.route("/bulk", methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH, requestBody=_BULK_BODY)
@blp.arguments(BulkQuerySchema, location="query")
@blp.response(200, BulkResultSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(409, description="Another change to one of these listings (or its NPI) "
                                   "was saved first; nothing was written.")
@blp.alt_response(422, schema=BulkErrorSchema,
                  description="Some rows are invalid: errors.rows lists every row's "
                              "errors as {row, field, message}; nothing was written.")
def bulk(options):
    """Upsert the caller's listings by NPI from a JSON array or a CSV file, all or nothing."""
    return upload_listings(g.clinic, **_upload(), max_rows=current_app.config["BULK_MAX_ROWS"],
                           geocoder=geocoder(), dry_run=options["dry_run"],
                           verify=options["verify"])
