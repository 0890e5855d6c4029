"""The directory-health answer (``GET /api/v1/operator/health``; ``referral.health``)."""

from __future__ import annotations

from marshmallow import Schema, fields

from .listings import ClinicRefSchema
from .paging import PageInfoSchema


class ReferralFiguresSchema(Schema):
    """Referrals sent in the window, by their receiving listing or clinic."""

    sent = fields.Integer()
    answered = fields.Integer()
    median_answer_hours = fields.Float(allow_none=True)
    due_an_answer = fields.Integer(metadata={
        "description": "answered, expired, or waiting for more than 2 business days"})
    answered_within_2_business_days = fields.Integer()
    answered_within_2_business_days_share = fields.Float(allow_none=True)


class FiguresSchema(Schema):
    """One group's figures (the whole directory, a state or a clinic)."""

    listings = fields.Integer()
    verified = fields.Integer()
    verified_share = fields.Float(allow_none=True)
    stale = fields.Integer()
    stale_share = fields.Float(allow_none=True)
    hidden = fields.Integer()
    hidden_share = fields.Float(allow_none=True)
    reported = fields.Integer()
    reported_share = fields.Float(allow_none=True)
    open_reports = fields.Integer()
    accepting_new_patients = fields.Integer()
    accepting_new_patients_share = fields.Float(allow_none=True)
    referrals = fields.Nested(ReferralFiguresSchema)


class StateFiguresSchema(FiguresSchema):
    """A practice state's figures (``state`` null: listings without one)."""

    state = fields.String(allow_none=True)


class ClinicFiguresSchema(FiguresSchema):
    """A clinic's figures."""

    clinic = fields.Nested(ClinicRefSchema)


class ClinicFiguresPageSchema(PageInfoSchema):
    """A page of clinics, the least verified first."""

    items = fields.List(fields.Nested(ClinicFiguresSchema))


class AgeBucketSchema(Schema):
    """Listings last verified ``from_days`` to ``to_days`` days ago (null: or more)."""

    from_days = fields.Integer()
    to_days = fields.Integer(allow_none=True)
    listings = fields.Integer()


class VerificationAgeSchema(Schema):
    """Listings by days since their last verification, in 30-day buckets."""

    buckets = fields.List(fields.Nested(AgeBucketSchema))
    never_verified = fields.Integer()


class HealthSchema(Schema):
    """The directory's health and the rules it was computed with."""

    as_of = fields.DateTime()
    stale_after_days = fields.Integer()
    hidden_after_days = fields.Integer()
    referral_window_days = fields.Integer()
    overall = fields.Nested(FiguresSchema)
    by_state = fields.List(fields.Nested(StateFiguresSchema))
    by_clinic = fields.Nested(ClinicFiguresPageSchema)
    verification_age = fields.Nested(VerificationAgeSchema)
