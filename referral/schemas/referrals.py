"""Referral schemas: a new referral (minimum health information), a status change, and a
referral with its history as its two clinics see it."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from ..referrals import (
    CONTACT_PREFERENCES,
    PATIENT_REF_PATTERN,
    REJECTION_REASONS,
    REQUESTABLE_STATUSES,
    URGENCIES,
)
from .fields import ID_RANGE, CleanString, Term
from .paging import PageInfoSchema, PageQuerySchema


class ReferralCreateSchema(Schema):
    """A referral from one of the caller's therapists to a prescriber (minimum PHI)."""

    class Meta:
        unknown = RAISE

    therapist_id = fields.Integer(required=True, validate=ID_RANGE)
    prescriber_id = fields.Integer(required=True, validate=ID_RANGE)
    patient_ref = CleanString(required=True, validate=validate.Regexp(
        PATIENT_REF_PATTERN,
        error="An opaque reference: letters, digits and _.:- only, up to 64; never a name."),
        metadata={"description": "Your clinic's opaque reference for the patient; no names."})
    patient_state = Term("state", required=True)
    concerns = fields.List(Term("concern"), load_default=list)
    urgency = fields.String(load_default="routine", validate=validate.OneOf(URGENCIES))
    contact_preference = fields.String(required=True,
                                       validate=validate.OneOf(CONTACT_PREFERENCES))
    consent_to_coordinate = fields.Boolean(required=True, metadata={
        "description": "Must be true: the patient's recorded consent to coordinate care."})


class ReferralStatusSchema(Schema):
    """A status change."""

    class Meta:
        unknown = RAISE

    status = fields.String(required=True, validate=validate.OneOf(REQUESTABLE_STATUSES))
    reason = fields.String(validate=validate.OneOf(REJECTION_REASONS),
                           metadata={"description": "Required to reject."})


class ReferralEventSchema(Schema):
    """One status change: who (clinic id; none for the system) and when."""

    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    clinic_id = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    at = fields.DateTime()


class ReferralSchema(Schema):
    """A referral as its two clinics see it, with its history."""

    id = fields.Integer()
    therapist_id = fields.Integer()
    prescriber_id = fields.Integer()
    sender_clinic_id = fields.Integer()
    receiver_clinic_id = fields.Integer()
    patient_ref = fields.String()
    patient_state = fields.String()
    concerns = fields.List(fields.String())
    urgency = fields.String()
    contact_preference = fields.String()
    consent_to_coordinate = fields.Boolean()
    status = fields.String()
    reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    responded_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()
    history = fields.List(fields.Nested(ReferralEventSchema), attribute="events")


class ReferralListQuerySchema(PageQuerySchema):
    """Which box to list."""

    box = fields.String(required=True, validate=validate.OneOf(("sent", "received")))


class ReferralPageSchema(PageInfoSchema):
    """One page of referrals."""

    items = fields.List(fields.Nested(ReferralSchema))
