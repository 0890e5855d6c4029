"""Listing schemas: the one declaration of a listing's fields, and what derives from it.

``ListingSchema`` declares every field a clinic sets, once: its type, rules,
label and help. Derived from it, never written out again:

- ``ProviderSchema``, the output shape (each input field's output twin plus
  identity, clinic and bookkeeping fields);
- ``LISTING_FIELDS`` (order of the CSV header and of every listing dict),
  ``LIST_FIELDS`` and ``LISTING_DEFAULTS``;
- ``FORM_FIELDS``, the clinic edit form (widget, label and options per field).

We derive from the marshmallow input schema rather than generating schemas from
the SQLAlchemy model (marshmallow-sqlalchemy): almost every listing field has
rules the column type does not know (vocabulary terms, NPI check digit, cleaned
text, ZIP existence), so auto-generated fields would be overridden one by one and
the declaration would again be split in two. A test checks that every declared
field is a column of ``Provider``.
"""

from __future__ import annotations

from flask import current_app
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    missing,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from .. import listing_rules
from ..limits import MAX_BIO, MAX_FEE, MAX_WAIT_DAYS
from .fields import (
    ID_RANGE,
    CleanString,
    Email,
    FiniteFloat,
    Npi,
    Phone,
    TaxonomyCode,
    Term,
    Terms,
    Url,
    WholeNumber,
    Zip,
)
from .paging import PageInfoSchema, PageQuerySchema


def _about(label: str, description: str | None = None, **extra) -> dict:
    """Field metadata: a label in plain words (forms, messages) and an API description."""
    meta = {"label": label, **extra}
    if description:
        meta["description"] = description
    return meta


class ListingSchema(Schema):
    """A provider listing as a clinic writes it (create and bulk upsert)."""

    class Meta:
        unknown = RAISE

    npi = Npi(required=True, metadata=_about("NPI", example="1234567893", form=False))
    first_name = CleanString(required=True, validate=validate.Length(max=100),
                             metadata=_about("First name"))
    last_name = CleanString(required=True, validate=validate.Length(max=100),
                            metadata=_about("Last name"))
    credentials = CleanString(allow_none=True, validate=validate.Length(max=100),
                              metadata=_about("Credentials (e.g. LCSW, MD)"))
    role = Term("role", metadata=_about("Role", "Derived from provider_type when omitted.",
                                        form=False))
    provider_type = Term("provider_type", required=True, metadata=_about("Provider type"))
    taxonomy_codes = fields.List(TaxonomyCode(), load_default=list,
                                 metadata=_about("NUCC taxonomy codes", form=False))
    modalities = Terms("modality", metadata=_about("Approaches"))
    concerns = Terms("concern", metadata=_about("Concerns treated"))
    age_groups = Terms("age_group", metadata=_about("Age groups"))
    languages = Terms("language", metadata=_about("Languages"))
    specialties = Terms("specialty", metadata=_about(
        "Services and specialties",
        "E.g. mat (medication for opioid use disorder), lgbtq_affirming, veterans."))
    gender = CleanString(allow_none=True, validate=validate.Length(max=60),
                         metadata=_about("Gender (self-described, optional)",
                                         "Optional, self-described."))
    bio = CleanString(allow_none=True, validate=validate.Length(max=MAX_BIO),
                      metadata=_about("About", widget="textarea"))
    telehealth = fields.Boolean(load_default=False, metadata=_about("Telehealth"))
    in_person = fields.Boolean(load_default=True, metadata=_about("In person"))
    licensed_states = Terms("state", metadata=_about(
        "Licensed in (e.g. MA, NH)", "USPS codes. Defaults to the practice state.",
        widget="text_list"))
    address_line1 = CleanString(allow_none=True, validate=validate.Length(max=200),
                                metadata=_about("Address"))
    address_line2 = CleanString(allow_none=True, validate=validate.Length(max=200),
                                metadata=_about("Address line 2"))
    city = CleanString(allow_none=True, validate=validate.Length(max=100),
                       metadata=_about("City", "Defaults to the ZIP code's city."))
    state = Term("state", allow_none=True, metadata=_about("State (e.g. MA)", widget="text"))
    zip = Zip(allow_none=True, metadata=_about("ZIP code"))
    latitude = FiniteFloat(allow_none=True, validate=validate.Range(-90, 90), metadata=_about(
        "Latitude", "Defaults to the ZIP code's centroid.", form=False))
    longitude = FiniteFloat(allow_none=True, validate=validate.Range(-180, 180),
                            metadata=_about("Longitude", form=False))
    phone = Phone(allow_none=True, metadata=_about("Phone"))
    email = Email(allow_none=True, validate=validate.Length(max=254),
                  metadata=_about("Email"))
    website = Url(allow_none=True, schemes={"http", "https"},
                  validate=validate.Length(max=500), metadata=_about("Website"))
    fee_min = WholeNumber(allow_none=True, validate=validate.Range(0, MAX_FEE),
                          metadata=_about("Lowest fee ($)", "USD per session."))
    fee_max = WholeNumber(allow_none=True, validate=validate.Range(0, MAX_FEE),
                          metadata=_about("Highest fee ($)"))
    sliding_scale = fields.Boolean(load_default=False, metadata=_about("Sliding scale"))
    insurance = Terms("insurance", metadata=_about("Insurance accepted"))
    accepting_new_patients = fields.Boolean(load_default=True,
                                            metadata=_about("Accepting new patients"))
    accepts_coordinated_care = fields.Boolean(load_default=False,
                                              metadata=_about("Accepts coordinated care"))
    wait_days = WholeNumber(allow_none=True, validate=validate.Range(0, MAX_WAIT_DAYS),
                            metadata=_about("Typical wait (days)",
                                            "Typical days to a first appointment."))

    @pre_load
    def _blank_strings_are_absent(self, data, **kwargs):
        """A blank optional value (e.g. an empty CSV cell) means 'not given'."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items()
                    if not (isinstance(value, str) and not value.strip()
                            and key not in REQUIRED_FIELDS)}
        return data

    @validates_schema
    def _cross_field_rules(self, data, partial=None, **kwargs):
        if partial:
            return  # a partial update is checked on the merged listing
        problems = listing_rules.listing_problems(data)
        if problems:
            raise ValidationError(problems)

    @post_load
    def _derive(self, data, partial=None, **kwargs):
        if not partial and "role" not in data:
            data["role"] = listing_rules.role_for_provider_type(data["provider_type"])
        return data


_DECLARED = ListingSchema().fields
#: Every listing field a clinic sets, in declaration order (also the CSV header).
LISTING_FIELDS = tuple(_DECLARED)
REQUIRED_FIELDS = frozenset(name for name, field in _DECLARED.items() if field.required)
LIST_FIELDS = tuple(name for name, field in _DECLARED.items() if isinstance(field, fields.List))
#: The value of each field when a listing does not give it.
LISTING_DEFAULTS = {name: (field.load_default() if callable(field.load_default)
                           else field.load_default)
                    for name, field in _DECLARED.items() if field.load_default is not missing}


#: Plain words for the bookkeeping fields of a listing (history, messages).
BOOKKEEPING_LABELS = {"active": "Shown to patients", "last_verified_at": "Last verified",
                      "clinic_id": "Clinic", "_row": "Row"}


def listing_label(name: str) -> str:
    """A listing field's name in plain words (``fee_min`` -> ``Lowest fee ($)``)."""
    field = _DECLARED.get(name)
    if field is not None:
        return field.metadata.get("label", name)
    return BOOKKEEPING_LABELS.get(name) or name.replace("_", " ").capitalize()


def _form_field(name: str, field) -> dict:
    widget = field.metadata.get("widget")
    options = None
    if widget is None:
        if isinstance(field, fields.Boolean):
            widget = "checkbox"
        elif isinstance(field, Terms):
            widget, options = "checkboxes", field.vocabulary.name
        elif isinstance(field, Term):
            widget, options = "select", field.vocabulary.name
        elif isinstance(field, WholeNumber):
            widget = "number"
        else:
            widget = "text"
    return {"name": name, "label": field.metadata["label"], "widget": widget,
            "options": options, "required": field.required}


#: The clinic edit form: every field a clinic edits by hand, with its widget.
FORM_FIELDS = tuple(_form_field(name, field) for name, field in _DECLARED.items()
                    if field.metadata.get("form", True))


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


def _output_twin(field) -> fields.Field:
    """The output field of a declared input field (canonical values go out as they are)."""
    keep = {"allow_none": field.allow_none}
    if field.metadata.get("description"):
        keep["metadata"] = {"description": field.metadata["description"]}
    if isinstance(field, fields.List):
        return fields.List(fields.String(), **keep)
    if isinstance(field, fields.Boolean):
        return fields.Boolean(**keep)
    if isinstance(field, fields.Integer):
        return fields.Integer(**keep)
    if isinstance(field, fields.Float):
        return fields.Float(**keep)
    return fields.String(**keep)


def _stale(provider) -> bool:
    return listing_rules.is_stale(provider.last_verified_at,
                                  current_app.config["STALE_AFTER_DAYS"])


class VerificationSchema(Schema):
    """How fresh a listing is (``listing_rules.verification``)."""

    at = fields.DateTime(allow_none=True, metadata={
        "description": "When the clinic last attested that the listing is current."})
    by = fields.String(allow_none=True, metadata={"description": "That clinic's name."})
    stale = fields.Boolean(metadata={
        "description": "Not verified within STALE_AFTER_DAYS (90) days."})
    reported = fields.Boolean(metadata={
        "description": "Patients reported it may be out of date: open reports from 3 "
                       "different people within 30 days, not yet resolved by its clinic."})


class _Verification(fields.Nested):
    """A loaded listing's ``verification``, computed from it (``listing_rules``)."""

    def get_value(self, obj, attr, *args, **kwargs):
        clinic = {"name": obj.clinic.name} if obj.clinic is not None else None
        return listing_rules.verification(obj.last_verified_at, clinic, _stale(obj),
                                          obj.reported_at is not None)


ProviderSchema = Schema.from_dict({
    "id": fields.Integer(),
    **{name: _output_twin(field) for name, field in _DECLARED.items()},
    "clinic": fields.Nested(ClinicRefSchema, allow_none=True),
    "last_verified_at": fields.DateTime(allow_none=True),
    "stale": fields.Function(_stale, metadata={
        "description": "True when not verified within STALE_AFTER_DAYS (90) days."}),
    "verification": _Verification(VerificationSchema),
    "active": fields.Boolean(),
    "created_at": fields.DateTime(),
    "updated_at": fields.DateTime(),
}, name="ProviderSchema")
ProviderSchema.__doc__ = "A provider listing as the API shows it."

#: A listing as search, matching and the pages render it (``stale`` and ``verification``
#: depend on the moment and the index, so they are added per answer).
listing_dump = ProviderSchema(exclude=("stale", "verification")).dump


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

