"""Claiming registry records: search the unclaimed ones, claim, see the clinic's claims,
release a listing back to the registry. Operators decide on the operator pages (or with
``referral operator decide-claim``)."""

from __future__ import annotations

from flask import g

from .. import claims
from ..auth import clinic_required
from ..schemas.claims import (
    ClaimCreateSchema,
    ClaimSchema,
    RegistryQuerySchema,
    RegistryRecordSchema,
)
from ..schemas.listings import ProviderSchema
from ..security import limit_writes
from . import Blueprint

blp = Blueprint("claims", __name__, description="Claiming unclaimed registry records.")
blp.url_prefix = ""
limit_writes(blp)

CLINIC_AUTH = [{"clinicToken": []}]


@blp.route("/registry/unclaimed", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(RegistryQuerySchema, location="query")
@blp.response(200, RegistryRecordSchema(many=True))
@blp.alt_response(401, description="Missing or bad clinic token.")
def unclaimed(query):
    """Unclaimed listings and organizations imported from NPPES (at most 50), by ``npi``
    or by ``name`` (and ``state``)."""
    return claims.unclaimed_records(**query)


@blp.route("/claims", methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(ClaimCreateSchema)
@blp.response(201, ClaimSchema(many=True))
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(403, description="The clinic is not approved yet.")
@blp.alt_response(404, description="An NPI is not in the registry.")
@blp.alt_response(409, description="An NPI is claimed already (or your claim is waiting).")
def create(values):
    """Claim records by NPI, all or nothing; each claim waits for an operator."""
    return claims.request_claims(g.clinic, values["npis"], attest=values["attest"],
                                 evidence=values.get("evidence"))


@blp.route("/claims", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, ClaimSchema(many=True))
@blp.alt_response(401, description="Missing or bad clinic token.")
def mine():
    """The clinic's claims, newest first, with each decision and its reason."""
    return claims.clinic_claims(g.clinic)


@blp.route("/providers/<int(min=1, max=2147483647):provider_id>/release", methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, ProviderSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not one of the clinic's listings.")
def release(provider_id):
    """Give a listing back to the registry (unclaimed, unverified, hidden from patients)."""
    return claims.release_listing(g.clinic, provider_id)
