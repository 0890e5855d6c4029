"""The calling clinic's own view: its profile, all its listings and its stale ones."""

from __future__ import annotations

from flask import current_app, g

from .. import listings
from . import Blueprint
from ..auth import clinic_required
from ..schemas import ClinicSchema, PageQuerySchema, ProviderPageSchema

blp = Blueprint("clinics", __name__, description="The calling clinic.")
blp.url_prefix = "/clinics"

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
