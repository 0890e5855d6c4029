"""The calling clinic's own view: its profile, its listings, its stale ones, its tokens."""

from __future__ import annotations

from flask import current_app, g

from .. import clinics, listings, reports
from ..auth import clinic_required
from ..schemas.clinics import ClinicSchema, NewTokenSchema, TokenCreateSchema, TokenSchema
from ..schemas.listings import ProviderPageSchema
from ..schemas.paging import PageQuerySchema
from ..schemas.reports import ClinicReportQuerySchema, ClinicReportSchema
from ..security import limit_writes
from . import Blueprint

blp = Blueprint("clinics", __name__, description="The calling clinic.")
blp.url_prefix = "/clinics"
limit_writes(blp)

CLINIC_AUTH = [{"clinicToken": []}]


@blp.route("/me", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, ClinicSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
def me():
    """The clinic that holds the token."""
    return g.clinic


@blp.route("/me/providers", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, ProviderPageSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
def my_providers(query):
    """All of the clinic's listings, deactivated ones included."""
    return listings.clinic_listings(g.clinic, query["page"], query["per_page"])


@blp.route("/me/reports", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(ClinicReportQuerySchema, location="query")
@blp.response(200, ClinicReportSchema(many=True))
@blp.alt_response(401, description="Missing or bad clinic token.")
def my_reports(query):
    """Patients' reports on the clinic's listings, newest first (open ones by default)."""
    found = reports.clinic_reports(g.clinic, open_only=query["status"] == "open")
    return [reports.readable(report) for report in found]


@blp.route("/me/stale", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, ProviderPageSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
def stale(query):
    """The clinic's active listings not verified in the last 90 days, oldest first."""
    return listings.stale_listings(g.clinic, current_app.config["STALE_AFTER_DAYS"],
                                   query["page"], query["per_page"])


@blp.route("/me/tokens", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, TokenSchema(many=True))
@blp.alt_response(401, description="Missing or bad clinic token.")
def tokens():
    """The clinic's tokens (prefixes only; the tokens themselves are never stored)."""
    return clinics.clinic_tokens(g.clinic)


@blp.route("/me/tokens", methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(TokenCreateSchema)
@blp.response(201, NewTokenSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
def create_token(values):
    """Issue another token (rotation: issue a new one, switch to it, revoke the old one).

    The token is in this answer only.
    """
    row, plaintext = clinics.new_token(g.clinic, label=values.get("label"))
    return {"id": row.id, "prefix": row.prefix, "label": row.label,
            "created_at": row.created_at, "token": plaintext}


@blp.route("/me/tokens/<int(min=1, max=2147483647):token_id>", methods=["DELETE"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, TokenSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not one of the clinic's tokens.")
def revoke(token_id):
    """Revoke one of the clinic's tokens (the calling one included)."""
    return clinics.revoke_clinic_token(token_id, g.clinic)
