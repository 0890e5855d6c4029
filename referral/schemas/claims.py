"""Claim schemas: searching the registry's unclaimed records, claiming them, and a claim
as its clinic sees it."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from ..limits import MAX_CLAIMS_PER_REQUEST, MAX_EVIDENCE_LENGTH
from .fields import CleanString, Npi, Term


class RegistryQuerySchema(Schema):
    """Search unclaimed registry records by NPI, or by name and optional state."""

    class Meta:
        unknown = RAISE

    npi = Npi(metadata={"description": "An exact NPI."})
    name = CleanString(validate=validate.Length(min=2, max=100), metadata={
        "description": "Words of the provider's or organization's name (all must match)."})
    state = Term("state", metadata={"description": "The practice state (listings only)."})


class RegistryRecordSchema(Schema):
    """An unclaimed record: a listing (a provider) or an organization."""

    kind = fields.String(metadata={"enum": ["listing", "organization"]})
    npi = fields.String()
    provider_id = fields.Integer()
    clinic_id = fields.Integer()
    name = fields.String()
    credentials = fields.String(allow_none=True)
    provider_type = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    state = fields.String(allow_none=True)


class ClaimCreateSchema(Schema):
    """Claim one or many registry records, attesting that they practice at the clinic."""

    class Meta:
        unknown = RAISE

    npis = fields.List(CleanString(validate=validate.Length(min=1, max=20)), required=True,
                       validate=validate.Length(min=1, max=MAX_CLAIMS_PER_REQUEST))
    attest = fields.Boolean(required=True, metadata={
        "description": "true: 'This provider practices at our clinic' (for an organization: "
                       "'Our clinic is this organization')."})
    evidence = CleanString(allow_none=True, validate=validate.Length(max=MAX_EVIDENCE_LENGTH),
                           metadata={"description": "What shows it, for the operator "
                                                    "(e.g. a staff page URL)."})


class ClaimSchema(Schema):
    """A claim and its decision."""

    id = fields.Integer()
    kind = fields.String()
    npi = fields.String()
    provider_id = fields.Integer(allow_none=True)
    status = fields.String(metadata={"enum": ["pending", "approved", "rejected"]})
    reason = fields.String(allow_none=True)
    attestation = fields.String()
    evidence = fields.String(allow_none=True)
    created_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)
