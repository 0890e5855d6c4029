"""Search schemas: where the patient is (shared with matching), the patient search's
parameters and its answer."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..i18n import N_, gettext
from ..limits import (
    DEFAULT_RADIUS_MILES,
    MAX_FEE,
    MAX_QUERY_LENGTH,
    MAX_RADIUS_MILES,
    MAX_SEARCH_RESULTS,
    MIN_RADIUS_MILES,
)
from .fields import CleanString, FiniteFloat, Term, WholeNumber, Zip
from .listings import ProviderSchema
from .paging import PageInfoSchema, page_field, per_page_field

SORTS = ("relevance", "distance", "fee", "availability")


class PatientLocationSchema(Schema):
    """Where the patient is, how they can be seen, and what they can pay: the rules every
    search-like question shares (search, pairs, the prescriber finder)."""

    class Meta:
        unknown = RAISE

    #: Pairs and the prescriber finder need the patient's location or state; search does not.
    location_required = False

    zip = Zip()
    lat = FiniteFloat(validate=validate.Range(-90, 90))
    lon = FiniteFloat(validate=validate.Range(-180, 180))
    radius_miles = FiniteFloat(load_default=DEFAULT_RADIUS_MILES,
                               validate=validate.Range(MIN_RADIUS_MILES, MAX_RADIUS_MILES))
    state = Term("state", metadata={"description": "The patient's state; from the ZIP if absent."})
    telehealth = fields.Boolean(metadata={
        "description": "true: telehealth providers licensed in the patient's state."})
    in_person = fields.Boolean(metadata={"description": "true: in person within the radius."})
    insurance = fields.List(Term("insurance"), metadata={"description": "Repeatable; any of."})
    max_fee = WholeNumber(validate=validate.Range(0, MAX_FEE), metadata={
        "description": "The provider's whole fee range is within this (its highest fee is at "
                       "most this); with sliding_scale, a sliding-scale listing whose lowest "
                       "fee is within it also fits."})
    language = Term("language")
    age_group = Term("age_group")
    include_stale = fields.Boolean(load_default=False, metadata={
        "description": "Also show listings not verified for over a year."})

    @validates_schema
    def _located(self, data, **kwargs):
        errors: dict[str, list[str]] = {}
        has_point = "lat" in data or "lon" in data
        if has_point and ("lat" not in data or "lon" not in data):
            errors["lat"] = [gettext("Give both lat and lon.")]
        if has_point and "zip" in data:
            errors["zip"] = [gettext("Give zip or lat+lon, not both.")]
        located = has_point or "zip" in data
        if self.location_required and not located and not data.get("state"):
            errors["zip"] = [gettext("Give the patient's zip (or lat+lon) or state.")]
        if data.get("telehealth") is False and data.get("in_person") is False:
            errors["telehealth"] = [gettext("telehealth and in_person cannot both be false.")]
        if data.get("telehealth") and not (located or data.get("state")):
            errors.setdefault("state", [
                gettext("Telehealth needs the patient's state (state or zip).")])
        if data.get("in_person") and not located:
            errors.setdefault("zip", [gettext("In-person care needs a location (zip or lat+lon).")])
        if data.get("sort") == "distance" and not located:
            errors["sort"] = [gettext("Sorting by distance needs a location (zip or lat+lon).")]
        if errors:
            raise ValidationError(errors)


def deepest(results: int, message: str):
    """A schema check that ``page * per_page`` stays within the first ``results``."""
    def check(self, data, **kwargs):
        if data.get("page", 1) * data.get("per_page", 20) > results:
            raise ValidationError({"page": [gettext(message)]})
    return validates_schema(check)


class SearchQuerySchema(PatientLocationSchema):
    """Parameters of a patient search (all optional, combinable)."""

    q = CleanString(allow_blank=True, validate=validate.Length(max=MAX_QUERY_LENGTH), metadata={
        "description": "Free text: names, clinic, bio and known terms (concerns, "
                       "modalities, languages, insurance); typo-tolerant."})
    role = Term("role")
    provider_type = Term("provider_type")
    modality = fields.List(Term("modality"), metadata={"description": "Repeatable; any of."})
    concern = fields.List(Term("concern"), metadata={
        "description": "Repeatable. Providers who treat it or offer a suited modality; "
                       "suited modalities rank first when no modality is given."})
    gender = Term("gender")
    specialty = fields.List(Term("specialty"), metadata={
        "description": "Repeatable; any of (e.g. mat, lgbtq_affirming, veterans)."})
    sliding_scale = fields.Boolean()
    accepting_new_patients = fields.Boolean(load_default=True)
    accepts_coordinated_care = fields.Boolean()
    sort = fields.String(load_default="relevance", validate=validate.OneOf(SORTS))
    page = page_field(MAX_SEARCH_RESULTS)
    per_page = per_page_field()

    _depth = deepest(MAX_SEARCH_RESULTS, N_("Results beyond the first 10,000 are not available."))


class CrisisSchema(Schema):
    """The 988 crisis notice."""

    message = fields.String()
    call = fields.String()
    text = fields.String()
    chat = fields.String()
    emergency = fields.String()


class SearchItemSchema(ProviderSchema):
    """A listing in search results, with why it matched."""

    distance_miles = fields.Float(allow_none=True, metadata={
        "description": "Geodesic distance from the patient's location."})
    reasons = fields.List(fields.String())
    matched_modalities = fields.List(fields.String())
    reach = fields.List(fields.String(), metadata={
        "description": "How the provider can see the patient: in_person, telehealth."})
    stale = fields.Boolean()


def _counts(description: str) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.Integer(),
                       metadata={"description": description})


class FacetsSchema(Schema):
    """How many of all the matches have each value (zero counts left out)."""

    modality = _counts("Matches per modality code.")
    provider_type = _counts("Matches per provider type.")
    telehealth = _counts("Matches offering telehealth (`true`) or not (`false`).")
    insurance = _counts("Matches per payer.")
    language = _counts("Matches per language code.")


class LocationSchema(Schema):
    """Where the patient was understood to be."""

    zip = fields.String()
    city = fields.String()
    state = fields.String()
    lat = fields.Float()
    lon = fields.Float()


class ChipSchema(Schema):
    """One thing the search was understood to ask for, and how to remove it."""

    field = fields.String(metadata={"description": "The parameter or vocabulary, e.g. language."})
    value = fields.String()
    label = fields.String(metadata={"description": "In plain words, e.g. Spanish."})
    change = fields.Dict(metadata={
        "description": "The parameters to change to remove it (null: leave the parameter out)."})


class RelaxationSchema(Schema):
    """A single change that would give results when there are none."""

    label = fields.String(metadata={"description": "In plain words, e.g. Widen to 50 miles."})
    total = fields.Integer(metadata={"description": "How many results the change gives."})
    change = fields.Dict(metadata={
        "description": "The parameters to change (null: leave the parameter out)."})


class InterpretedSchema(Schema):
    """How the query was read: vocabulary found in the free text, the words left for
    text search, the location, and whether the text index was current."""

    terms = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                        metadata={"description": "Vocabulary values read from q, by field."})
    text = fields.String(metadata={"description": "The words searched as text."})
    unmatched = fields.List(fields.String(), metadata={
        "description": "Words no result has; they were left out rather than give no results."})
    chips = fields.List(fields.Nested(ChipSchema), metadata={
        "description": "What the search asked for (from q and from the parameters)."})
    location = fields.Nested(LocationSchema)
    index_current = fields.Boolean(allow_none=True, metadata={
        "description": "Whether the text index had every change (null: no text search)."})


class SearchAnswerSchema(PageInfoSchema):
    """A page of search results with facets; the crisis block comes first when present."""

    crisis = fields.Nested(CrisisSchema)
    items = fields.List(fields.Nested(SearchItemSchema))
    facets = fields.Nested(FacetsSchema)
    did_you_mean = fields.String(allow_none=True, metadata={
        "description": "A corrected q, offered only when it has results."})
    interpreted = fields.Nested(InterpretedSchema)
    relaxations = fields.List(fields.Nested(RelaxationSchema), metadata={
        "description": "With no results: single changes that give results, with counts."})
