"""Referral schemas: a new referral (minimum health information), a status change, and a
referral with its history as its two clinics see it."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from ..limits import MAX_MESSAGE_LENGTH
from ..referrals import (
    CANCELLATION_REASONS,
    CONTACT_PREFERENCES,
    OUTCOMES,
    PATIENT_REF_PATTERN,
    REASONS,
    REJECTION_REASONS,
    REQUESTABLE_STATUSES,
    TIME_ZONES,
    URGENCIES,
)
from .fields import ID_RANGE, CleanLines, CleanString, Term
from .paging import PageInfoSchema, PageQuerySchema


def note_field(**metadata) -> CleanLines:
    """Free text for the coordination thread (cleaned like every text field, line breaks
    kept; 4,000 at most)."""
    return CleanLines(validate=validate.Length(max=MAX_MESSAGE_LENGTH), metadata=metadata)


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
    note = note_field(description="Optional: the first message of the coordination thread "
                                  "(encrypted, seen only by the two clinics).")


class ReferralStatusSchema(Schema):
    """A status change."""

    class Meta:
        unknown = RAISE

    status = fields.String(required=True, validate=validate.OneOf(REQUESTABLE_STATUSES))
    reason = fields.String(validate=validate.OneOf(REASONS), metadata={
        "description": "Required to reject (" + ", ".join(REJECTION_REASONS) + ") and to "
                       "cancel (" + ", ".join(CANCELLATION_REASONS) + ")."})
    appointment_at = fields.AwareDateTime(metadata={
        "description": "Required to schedule (and to change the time): a future time with "
                       "its UTC offset."})
    appointment_time_zone = fields.String(validate=validate.OneOf(TIME_ZONES), metadata={
        "description": "Optional when scheduling: the zone the appointment is booked in; "
                       "both clinics' pages show the time in it (else in UTC)."})
    outcome = fields.String(validate=validate.OneOf(OUTCOMES), metadata={
        "description": "Optional when completing."})
    note = note_field(description="Optional free text beside the change; it goes to the "
                                  "coordination thread.")


class ReferralEventSchema(Schema):
    """One status change: who (clinic id; none for the system) and when."""

    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    clinic_id = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    appointment_at = fields.DateTime(allow_none=True)
    appointment_time_zone = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    at = fields.DateTime()


class CounterpartSchema(Schema):
    """The other clinic of a referral, shown to each side once the referral is accepted."""

    id = fields.Integer()
    name = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)


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
    appointment_at = fields.DateTime(allow_none=True)
    appointment_time_zone = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    counterpart = fields.Nested(CounterpartSchema, allow_none=True, metadata={
        "description": "The other clinic (name, contact), once the referral is accepted."})
    history = fields.List(fields.Nested(ReferralEventSchema), attribute="events")


class ReferralListQuerySchema(PageQuerySchema):
    """Which box to list."""

    box = fields.String(required=True, validate=validate.OneOf(("sent", "received")))


class ReferralPageSchema(PageInfoSchema):
    """One page of referrals."""

    items = fields.List(fields.Nested(ReferralSchema))


class MessageCreateSchema(Schema):
    """A message to the other clinic of a referral."""

    class Meta:
        unknown = RAISE

    text = CleanLines(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE_LENGTH),
                      metadata={"description": "Up to 4,000 characters; encrypted at rest."})


class MessageSchema(Schema):
    """One message of a referral's coordination thread."""

    id = fields.Integer()
    referral_id = fields.Integer()
    author_clinic_id = fields.Integer()
    text = fields.String()
    created_at = fields.DateTime()


class MessageListSchema(Schema):
    """A referral's thread, oldest first."""

    items = fields.List(fields.Nested(MessageSchema))
