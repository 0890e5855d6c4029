"""Marshmallow schemas: validation of listing input and the shape of API output.

Input schemas reject unknown fields. Field-level rules live in the fields;
rules that involve several fields live in ``referral.listings.listing_problems``
so that full loads (create, bulk) and partial updates (PATCH, checked on the
merged listing) apply exactly the same rules.
"""

from __future__ import annotations

import math
import re
import unicodedata

from flask import current_app
from marshmallow import (RAISE, Schema, ValidationError, fields, post_load, pre_load,
                         validate, validates_schema)

from . import listings
from .geo import lookup_zip, normalize_zip
from .npi import is_valid_npi
from .taxonomy import TAXONOMY_CODE_RE
from .vocab import PROVIDER_TYPES, VOCABULARIES

# ---------------------------------------------------------------------------
# Fields


def clean_text(value: str) -> str:
    """Trim and collapse inner whitespace (apostrophes and case are kept)."""
    return re.sub(r"\s+", " ", value).strip()


_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class CleanString(fields.String):
    """A string trimmed with inner whitespace collapsed; blank becomes None when allowed.

    Control characters (NUL included, which PostgreSQL cannot store) and bidi
    overrides (which can disguise a name) are refused.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        text = clean_text(super()._deserialize(value, attr, data, **kwargs))
        if any(unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI_CONTROLS for ch in text):
            raise ValidationError("Must not contain control characters.")
        if not text:
            if self.allow_none:
                return None
            raise ValidationError("Must not be blank.")
        return text

    def _validate(self, value):
        if value is not None:  # a blank that became None has nothing left to check
            super()._validate(value)


class WholeNumber(fields.Integer):
    """An integer that refuses fractions and booleans instead of truncating them."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        if isinstance(value, float) and not value.is_integer():
            raise ValidationError("Not a valid integer.")
        if isinstance(value, str) and not re.fullmatch(r"\s*-?\d{1,9}\s*", value):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class FiniteFloat(fields.Float):
    """A float that refuses NaN, infinities and booleans."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid number.")
        number = super()._deserialize(value, attr, data, **kwargs)
        if not math.isfinite(number):
            raise ValidationError("Not a valid number.")
        return number


class Term(fields.String):
    """One value of a controlled vocabulary: any accepted spelling in, canonical value out."""

    def __init__(self, vocabulary: str, **kwargs):
        self.vocabulary = VOCABULARIES[vocabulary]
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault("enum", list(self.vocabulary.canonical))
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        canonical = self.vocabulary.lookup(text)
        if canonical is None:
            raise ValidationError(
                f"Unknown {self.vocabulary.name} {text!r}; use one of: "
                + ", ".join(self.vocabulary.canonical) + ".")
        return canonical


class Terms(fields.List):
    """A list of vocabulary values, deduplicated and put in the vocabulary's order."""

    def __init__(self, vocabulary: str, **kwargs):
        self.vocabulary = VOCABULARIES[vocabulary]
        kwargs.setdefault("load_default", list)
        super().__init__(Term(vocabulary), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None:
            return []
        return self.vocabulary.order(super()._deserialize(value, attr, data, **kwargs))


class Npi(fields.String):
    """A ten-digit NPI with a valid check digit."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not re.fullmatch(r"\d{10}", text):
            raise ValidationError("An NPI is exactly 10 digits.")
        if not is_valid_npi(text):
            raise ValidationError("Invalid NPI: the check digit does not match.")
        return text


class TaxonomyCode(fields.String):
    """A NUCC taxonomy code such as 2084P0800X (upper-cased)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not TAXONOMY_CODE_RE.match(text):
            raise ValidationError(f"{text!r} is not a NUCC taxonomy code (e.g. 2084P0800X).")
        return text


class Zip(fields.String):
    """A US ZIP code that exists in the bundled ZIP data; ZIP+4 is cut to five digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        five = normalize_zip(text)
        if five is None:
            raise ValidationError("A ZIP code is 5 digits (ZIP+4 is accepted).")
        if lookup_zip(five) is None:
            raise ValidationError(f"ZIP code {five} is not a known US ZIP code.")
        return five


class Phone(fields.String):
    """A US phone number, stored as its 10 digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        digits = re.sub(r"\D", "", super()._deserialize(value, attr, data, **kwargs))
        if len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        if len(digits) != 10:
            raise ValidationError("A US phone number has 10 digits.")
        return digits


#: Database ids are 32-bit on every backend.
ID_RANGE = validate.Range(min=1, max=2_147_483_647)


# ---------------------------------------------------------------------------
# Listing input


class ListingSchema(Schema):
    """A provider listing as a clinic writes it (create and bulk upsert)."""

    class Meta:
        unknown = RAISE

    npi = Npi(required=True, metadata={"example": "1234567893"})
    first_name = CleanString(required=True, validate=validate.Length(max=100))
    last_name = CleanString(required=True, validate=validate.Length(max=100))
    credentials = CleanString(allow_none=True, validate=validate.Length(max=100))
    role = Term("role", metadata={"description": "Derived from provider_type when omitted."})
    provider_type = Term("provider_type", required=True)
    taxonomy_codes = fields.List(TaxonomyCode(), load_default=list)
    modalities = Terms("modality")
    concerns = Terms("concern")
    age_groups = Terms("age_group")
    languages = Terms("language")
    gender = CleanString(allow_none=True, validate=validate.Length(max=60),
                         metadata={"description": "Optional, self-described."})
    bio = CleanString(allow_none=True, validate=validate.Length(max=2000))
    telehealth = fields.Boolean(load_default=False)
    in_person = fields.Boolean(load_default=True)
    licensed_states = Terms("state", metadata={
        "description": "USPS codes. Defaults to the practice state."})
    address_line1 = CleanString(allow_none=True, validate=validate.Length(max=200))
    address_line2 = CleanString(allow_none=True, validate=validate.Length(max=200))
    city = CleanString(allow_none=True, validate=validate.Length(max=100),
                       metadata={"description": "Defaults to the ZIP code's city."})
    state = Term("state", allow_none=True)
    zip = Zip(allow_none=True)
    latitude = FiniteFloat(allow_none=True, validate=validate.Range(-90, 90),
                           metadata={"description": "Defaults to the ZIP code's centroid."})
    longitude = FiniteFloat(allow_none=True, validate=validate.Range(-180, 180))
    phone = Phone(allow_none=True)
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    website = fields.URL(allow_none=True, schemes={"http", "https"},
                         validate=validate.Length(max=500))
    fee_min = WholeNumber(allow_none=True, validate=validate.Range(0, 2000),
                          metadata={"description": "USD per session."})
    fee_max = WholeNumber(allow_none=True, validate=validate.Range(0, 2000))
    sliding_scale = fields.Boolean(load_default=False)
    insurance = Terms("insurance")
    accepting_new_patients = fields.Boolean(load_default=True)
    accepts_coordinated_care = fields.Boolean(load_default=False)
    wait_days = WholeNumber(allow_none=True, validate=validate.Range(0, 365),
                            metadata={"description": "Typical days to a first appointment."})

    @pre_load
    def _blank_strings_are_absent(self, data, **kwargs):
        """A blank optional value (e.g. an empty CSV cell) means 'not given'."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items()
                    if not (isinstance(value, str) and not value.strip()
                            and key not in ("first_name", "last_name", "npi", "provider_type"))}
        return data

    @validates_schema
    def _cross_field_rules(self, data, partial=None, **kwargs):
        if partial:
            return  # a partial update is checked on the merged listing
        problems = listings.listing_problems(data)
        if problems:
            raise ValidationError(problems)

    @post_load
    def _derive(self, data, partial=None, **kwargs):
        if not partial and "role" not in data:
            data["role"] = listings.role_for_provider_type(data["provider_type"])
        return data


def load_listing_row(raw: dict) -> dict:
    """Validate one uploaded row (JSON object or CSV line) as a complete listing."""
    extra = raw.pop("_extra_cells", None)
    if extra and any(cell.strip() for cell in extra):
        raise ValidationError({"_row": ["The row has more cells than the header has columns."]})
    return ListingSchema().load(raw)


class ListingPatchSchema(ListingSchema):
    """A partial update: any listing field but the NPI; ``active`` can reactivate."""

    class Meta:
        unknown = RAISE
        exclude = ("npi",)

    active = fields.Boolean()


# ---------------------------------------------------------------------------
# Output


class ClinicRefSchema(Schema):
    """The clinic that keeps a listing."""

    id = fields.Integer()
    name = fields.String()


class ProviderSchema(Schema):
    """A provider listing as the API shows it."""

    id = fields.Integer()
    npi = fields.String()
    first_name = fields.String()
    last_name = fields.String()
    credentials = fields.String(allow_none=True)
    role = fields.String()
    provider_type = fields.String()
    taxonomy_codes = fields.List(fields.String())
    modalities = fields.List(fields.String())
    concerns = fields.List(fields.String())
    age_groups = fields.List(fields.String())
    languages = fields.List(fields.String())
    gender = fields.String(allow_none=True)
    bio = fields.String(allow_none=True)
    telehealth = fields.Boolean()
    in_person = fields.Boolean()
    licensed_states = fields.List(fields.String())
    address_line1 = fields.String(allow_none=True)
    address_line2 = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    state = fields.String(allow_none=True)
    zip = fields.String(allow_none=True)
    latitude = fields.Float(allow_none=True)
    longitude = fields.Float(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    website = fields.String(allow_none=True)
    fee_min = fields.Integer(allow_none=True)
    fee_max = fields.Integer(allow_none=True)
    sliding_scale = fields.Boolean()
    insurance = fields.List(fields.String())
    accepting_new_patients = fields.Boolean()
    accepts_coordinated_care = fields.Boolean()
    wait_days = fields.Integer(allow_none=True)
    clinic = fields.Nested(ClinicRefSchema, allow_none=True)
    last_verified_at = fields.DateTime(allow_none=True)
    stale = fields.Method("_stale", metadata={
        "description": "True when not verified within STALE_AFTER_DAYS (90) days."})
    active = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def _stale(self, provider) -> bool:
        return listings.is_stale(provider.last_verified_at,
                                 current_app.config["STALE_AFTER_DAYS"])


#: A listing as search, matching and the pages render it (staleness is added per answer).
listing_dump = ProviderSchema(exclude=("stale",)).dump


class PageQuerySchema(Schema):
    """Page number and size of a paginated list."""

    class Meta:
        unknown = RAISE

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ProviderListQuerySchema(PageQuerySchema):
    """Simple filters of the listing index (full search is ``/providers/search``)."""

    role = Term("role")
    provider_type = Term("provider_type")
    state = Term("state")
    zip = Zip()
    clinic_id = fields.Integer(validate=ID_RANGE)
    accepting_new_patients = fields.Boolean()
    accepts_coordinated_care = fields.Boolean()
    telehealth = fields.Boolean()
    in_person = fields.Boolean()


class PageInfoSchema(Schema):
    """Where a page stands in all results (each page schema adds its ``items``)."""

    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class ProviderPageSchema(PageInfoSchema):
    """One page of listings."""

    items = fields.List(fields.Nested(ProviderSchema))


class BulkQuerySchema(Schema):
    """Options of a bulk upload."""

    class Meta:
        unknown = RAISE

    dry_run = fields.Boolean(load_default=False,
                             metadata={"description": "Validate only; write nothing."})
    verify = fields.Boolean(load_default=False, metadata={
        "description": "Also attest every uploaded listing as current (last_verified_at = now)."})


class BulkResultSchema(Schema):
    """What a bulk upload did (or, with dry_run, would do)."""

    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    dry_run = fields.Boolean()


class AuditEntrySchema(Schema):
    """One change of a listing."""

    id = fields.Integer()
    action = fields.String()
    clinic_id = fields.Integer(allow_none=True)
    source = fields.String()
    changes = fields.Dict()
    at = fields.DateTime()


class ClinicSchema(Schema):
    """A clinic as shown to itself."""

    id = fields.Integer()
    name = fields.String()
    organization_npi = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    created_at = fields.DateTime()


class TokenSchema(Schema):
    """A clinic API token as it is shown after creation: never the token itself."""

    id = fields.Integer()
    prefix = fields.String()
    label = fields.String(allow_none=True)
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreateSchema(Schema):
    """A new token's label."""

    class Meta:
        unknown = RAISE

    label = CleanString(allow_none=True, validate=validate.Length(max=100))


class NewTokenSchema(TokenSchema):
    """A new token, shown this once."""

    token = fields.String()


class VocabularyTermSchema(Schema):
    """One controlled-vocabulary value with its label."""

    value = fields.String()
    label = fields.String()



# ---------------------------------------------------------------------------
# Search


class SearchQuerySchema(Schema):
    """Parameters of a patient search (all optional, combinable)."""

    class Meta:
        unknown = RAISE

    q = fields.String(validate=validate.Length(max=200), metadata={
        "description": "Free text: names, clinic, bio and known terms (concerns, "
                       "modalities, languages, insurance); typo-tolerant."})
    role = Term("role")
    provider_type = Term("provider_type")
    modality = fields.List(Term("modality"), metadata={"description": "Repeatable; any of."})
    concern = fields.List(Term("concern"), metadata={
        "description": "Repeatable. Providers who treat it or offer a suited modality; "
                       "suited modalities rank first when no modality is given."})
    age_group = Term("age_group")
    language = Term("language")
    gender = Term("gender")
    zip = Zip()
    lat = FiniteFloat(validate=validate.Range(-90, 90))
    lon = FiniteFloat(validate=validate.Range(-180, 180))
    radius_miles = FiniteFloat(load_default=25.0, validate=validate.Range(1, 250))
    state = Term("state", metadata={"description": "The patient's state; from the ZIP if absent."})
    telehealth = fields.Boolean(metadata={
        "description": "true: telehealth providers licensed in the patient's state."})
    in_person = fields.Boolean(metadata={"description": "true: in person within the radius."})
    max_fee = WholeNumber(validate=validate.Range(0, 2000))
    sliding_scale = fields.Boolean()
    insurance = fields.List(Term("insurance"), metadata={"description": "Repeatable; any of."})
    accepting_new_patients = fields.Boolean(load_default=True)
    accepts_coordinated_care = fields.Boolean()
    include_stale = fields.Boolean(load_default=False, metadata={
        "description": "Also show listings not verified for over a year."})
    sort = fields.String(load_default="relevance", validate=validate.OneOf(
        ("relevance", "distance", "fee", "availability")))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))

    @validates_schema
    def _coherent(self, data, **kwargs):
        errors: dict[str, list[str]] = {}
        has_point = "lat" in data or "lon" in data
        if has_point and ("lat" not in data or "lon" not in data):
            errors["lat"] = ["Give both lat and lon."]
        if has_point and "zip" in data:
            errors["zip"] = ["Give zip or lat+lon, not both."]
        located = has_point or "zip" in data
        if data.get("telehealth") is False and data.get("in_person") is False:
            errors["telehealth"] = ["telehealth and in_person cannot both be false."]
        if data.get("telehealth") and not (located or data.get("state")):
            errors["state"] = ["Telehealth search needs the patient's state (state or zip)."]
        if data.get("in_person") and not located:
            errors["zip"] = ["In-person search needs a location (zip or lat+lon)."]
        if data.get("sort") == "distance" and not located:
            errors["sort"] = ["Sorting by distance needs a location (zip or lat+lon)."]
        if data.get("page", 1) * data.get("per_page", 20) > 10_000:
            errors["page"] = ["Results beyond the first 10,000 are not available."]
        if errors:
            raise ValidationError(errors)


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


class SearchAnswerSchema(PageInfoSchema):
    """A page of search results with facets; the crisis block comes first when present."""

    crisis = fields.Nested(CrisisSchema)
    items = fields.List(fields.Nested(SearchItemSchema))
    facets = fields.Dict()
    did_you_mean = fields.String(allow_none=True)
    interpreted = fields.Dict()


# ---------------------------------------------------------------------------
# Matching


class _PatientLocation(Schema):
    """Where the patient is and how they can be seen (shared by matching schemas)."""

    class Meta:
        unknown = RAISE

    zip = Zip()
    lat = FiniteFloat(validate=validate.Range(-90, 90))
    lon = FiniteFloat(validate=validate.Range(-180, 180))
    radius_miles = FiniteFloat(load_default=25.0, validate=validate.Range(1, 250))
    telehealth = fields.Boolean(metadata={
        "description": "true: only telehealth; false: only in person; absent: either."})
    in_person = fields.Boolean()
    insurance = fields.List(Term("insurance"), metadata={"description": "Repeatable; any of."})
    max_fee = WholeNumber(validate=validate.Range(0, 2000), metadata={
        "description": "Each provider's fee_min is at most this."})
    language = Term("language")
    age_group = Term("age_group")
    include_stale = fields.Boolean(load_default=False)

    @validates_schema
    def _located(self, data, **kwargs):
        errors: dict[str, list[str]] = {}
        has_point = "lat" in data or "lon" in data
        if has_point and ("lat" not in data or "lon" not in data):
            errors["lat"] = ["Give both lat and lon."]
        if has_point and "zip" in data:
            errors["zip"] = ["Give zip or lat+lon, not both."]
        located = has_point or "zip" in data
        if not located and not data.get("state"):
            errors["zip"] = ["Give the patient's zip (or lat+lon) or state."]
        if data.get("telehealth") is False and data.get("in_person") is False:
            errors["telehealth"] = ["telehealth and in_person cannot both be false."]
        if data.get("in_person") and not located:
            errors["zip"] = ["In-person care needs a location (zip or lat+lon)."]
        if errors:
            raise ValidationError(errors)


class MatchQuerySchema(_PatientLocation):
    """A patient's needs for a therapist + prescriber pair."""

    state = Term("state", metadata={"description": "The patient's state; from the ZIP if absent."})
    concern = fields.List(Term("concern"), metadata={
        "description": "Repeatable. The therapist must offer a modality suited to it."})
    modality = fields.List(Term("modality"), metadata={
        "description": "Repeatable. The therapist must offer one of them."})
    prescriber_type = Term("provider_type", validate=validate.OneOf(
        [t for t, role in PROVIDER_TYPES.items() if role == "prescriber"]))
    max_combined_fee = WholeNumber(validate=validate.Range(0, 4000), metadata={
        "description": "Therapist's plus prescriber's fee_min is at most this."})
    limit = fields.Integer(load_default=10, validate=validate.Range(1, 50))


class PrescriberFinderQuerySchema(_PatientLocation):
    """The patient a therapist is referring, to find prescribers who can see them."""

    state = Term("state", data_key="patient_state", metadata={
        "description": "The patient's state; from the ZIP if absent."})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=200))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))

    @validates_schema
    def _depth(self, data, **kwargs):
        if data.get("page", 1) * data.get("per_page", 20) > 200:
            raise ValidationError({"page": ["Only the best 200 prescribers are ranked."]})


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


class MatchAnswerSchema(Schema):
    """Ranked pairs; no provider appears in more than two of them."""

    pairs = fields.List(fields.Nested(PairSchema))
    therapist_candidates = fields.Integer()
    prescriber_candidates = fields.Integer()
    interpreted = fields.Dict()


class FinderItemSchema(MatchedProviderSchema):
    """A prescriber for a therapist's referral, with why and how responsive."""

    reasons = fields.List(fields.String())
    score = fields.Float()


class FinderAnswerSchema(PageInfoSchema):
    """Prescribers for a referral, best first."""

    therapist_id = fields.Integer()
    items = fields.List(fields.Nested(FinderItemSchema))
    interpreted = fields.Dict()


# ---------------------------------------------------------------------------
# Referrals


class ReferralCreateSchema(Schema):
    """A referral from one of the caller's therapists to a prescriber (minimum PHI)."""

    class Meta:
        unknown = RAISE

    therapist_id = fields.Integer(required=True, validate=ID_RANGE)
    prescriber_id = fields.Integer(required=True, validate=ID_RANGE)
    patient_ref = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$",
        error="An opaque reference: letters, digits and _.:- only, up to 64; never a name."),
        metadata={"description": "Your clinic's opaque reference for the patient; no names."})
    patient_state = Term("state", required=True)
    concerns = fields.List(Term("concern"), load_default=list)
    urgency = fields.String(load_default="routine",
                            validate=validate.OneOf(("routine", "soon", "urgent")))
    contact_preference = fields.String(required=True, validate=validate.OneOf(
        ("phone", "email", "portal", "mail")))
    consent_to_coordinate = fields.Boolean(required=True, metadata={
        "description": "Must be true: the patient's recorded consent to coordinate care."})


class ReferralStatusSchema(Schema):
    """A status change."""

    class Meta:
        unknown = RAISE

    status = fields.String(required=True, validate=validate.OneOf(
        ("accepted", "rejected", "scheduled", "completed", "cancelled")))
    reason = fields.String(validate=validate.OneOf(
        ("not_accepting", "outside_scope", "insurance_not_accepted", "not_licensed_in_state",
         "no_capacity", "patient_unreachable", "other")),
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
