"""Matching schemas: a patient's needs for a pair, a referring therapist's patient for the
prescriber finder, and their answers."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..i18n import N_
from ..limits import FINDER_DEPTH, MAX_FEE, MAX_PAIRS
from ..vocab import PROVIDER_TYPES
from .fields import Term, WholeNumber
from .listings import ProviderSchema
from .paging import PageInfoSchema, page_field, per_page_field
from .search import LocationSchema, PatientLocationSchema, deepest

PRESCRIBER_TYPES = tuple(t for t, role in PROVIDER_TYPES.items() if role == "prescriber")


class MatchQuerySchema(PatientLocationSchema):
    """A patient's needs for a therapist + prescriber pair."""

    location_required = True

    concern = fields.List(Term("concern"), metadata={
        "description": "Repeatable. The therapist must offer a modality suited to it."})
    modality = fields.List(Term("modality"), metadata={
        "description": "Repeatable. The therapist must offer one of them."})
    prescriber_type = Term("provider_type", validate=validate.OneOf(PRESCRIBER_TYPES),
                           metadata={"enum": list(PRESCRIBER_TYPES)})
    max_combined_fee = WholeNumber(validate=validate.Range(0, 2 * MAX_FEE), metadata={
        "description": "Both whole fee ranges together are within this (the therapist's "
                       "plus the prescriber's highest fee is at most this)."})
    limit = fields.Integer(load_default=10, validate=validate.Range(1, MAX_PAIRS))


class PrescriberFinderQuerySchema(PatientLocationSchema):
    """The patient a therapist is referring, to find prescribers who can see them."""

    location_required = True

    state = Term("state", data_key="patient_state", metadata={
        "description": "The patient's state; from the ZIP if absent."})
    page = page_field(FINDER_DEPTH)
    per_page = per_page_field()

    _depth = deepest(FINDER_DEPTH, N_("Only the best 200 prescribers are ranked."))


class ResponsivenessSchema(Schema):
    """How a prescriber has answered referrals (from the referral history)."""

    referrals_answered = fields.Integer()
    accepted_share = fields.Float(allow_none=True)
    median_response_hours = fields.Float(allow_none=True)


class MatchedProviderSchema(ProviderSchema):
    """One side of a pair: the listing, how it can see the patient, and freshness."""

    distance_miles = fields.Float(allow_none=True)
    reach = fields.List(fields.String())
    stale = fields.Boolean()
    responsiveness = fields.Nested(ResponsivenessSchema, metadata={
        "description": "Prescribers only."})


class PairSchema(Schema):
    """A therapist and a prescriber who both accept coordinated care."""

    therapist = fields.Nested(MatchedProviderSchema)
    prescriber = fields.Nested(MatchedProviderSchema)
    score = fields.Float()
    reasons = fields.List(fields.String())


class MatchInterpretedSchema(Schema):
    """How the needs were read: the location and what the therapist must offer."""

    location = fields.Nested(LocationSchema)
    therapist_modalities = fields.List(fields.String())
    concerns = fields.List(fields.String())


class MatchAnswerSchema(Schema):
    """Ranked pairs; no provider appears in more than two of them."""

    pairs = fields.List(fields.Nested(PairSchema))
    therapist_candidates = fields.Integer()
    prescriber_candidates = fields.Integer()
    interpreted = fields.Nested(MatchInterpretedSchema)


class FinderInterpretedSchema(Schema):
    """Where the patient was understood to be."""

    location = fields.Nested(LocationSchema)


class FinderItemSchema(MatchedProviderSchema):
    """A prescriber for a therapist's referral, with why and how responsive."""

    reasons = fields.List(fields.String())
    score = fields.Float()


class FinderAnswerSchema(PageInfoSchema):
    """Prescribers for a referral, best first."""

    therapist_id = fields.Integer()
    items = fields.List(fields.Nested(FinderItemSchema))
    interpreted = fields.Nested(FinderInterpretedSchema)
