"""The operators' API: the directory's health (``referral.health``).

Operators authenticate with their signed-in session (the pages' session cookie, after
signing in on ``/clinic/sign-in``): there are no operator API tokens, and clinic tokens
are refused (403). The answer is read-only, so the cookie needs no CSRF token; the
endpoint is outside the public CORS list, so other sites cannot read it.
"""

from __future__ import annotations

from .. import health
from ..auth import operator_required
from ..schemas.health import HealthSchema
from ..schemas.paging import PageQuerySchema
from . import Blueprint

blp = Blueprint("operator_api", __name__, description="The directory's operators.")
blp.url_prefix = "/operator"

OPERATOR_AUTH = [{"operatorSession": []}]


@blp.route("/health", methods=["GET"])
@operator_required
@blp.doc(security=OPERATOR_AUTH)
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, HealthSchema)
@blp.alt_response(401, description="Not signed in as an operator.")
@blp.alt_response(403, description="Signed in, or a token, but not an operator.")
def directory_health(query):
    """The directory's health: overall, by state, a page of clinics (the least verified
    first, ``page`` and ``per_page``) and the verification age, computed by the database."""
    return health.directory_health(query["page"], query["per_page"])
