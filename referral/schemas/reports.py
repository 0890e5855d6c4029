"""Schemas of patients' reports on listings (``referral.reports``): what a patient sends,
the receipt they get, a report as its clinic sees it, and the clinic's resolution."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from ..i18n import N_
from ..limits import MAX_REPORT_TEXT
from ..models import REPORT_REASONS
from ..reports import CLINIC_RESOLUTIONS
from .fields import CleanString

#: Each reason in plain words, as the report form offers them.
REASON_LABELS = {
    "could_not_reach": N_("I could not reach them (phone or email did not work)"),
    "not_accepting": N_("They are not taking new patients"),
    "insurance_not_accepted": N_("They do not take the insurance listed"),
    "wrong_contact": N_("The phone, email or website is wrong"),
    "wrong_location": N_("The address is wrong"),
    "no_longer_practicing": N_("They no longer practice here"),
    "other": N_("Something else is wrong"),
}


class ReportSchema(Schema):
    """A patient's report that a listing is wrong. No sign-in and no personal data: do
    not write your name or contact details in the text. Unknown fields are refused (422),
    which also turns away bots that fill every field they find."""

    class Meta:
        unknown = RAISE

    reason = fields.String(required=True, validate=validate.OneOf(
        REPORT_REASONS, error=N_("Choose one of the reasons listed.")),
        error_messages={"required": N_("Choose what is wrong with the listing.")}, metadata={
        "description": "What is wrong: " + ", ".join(REPORT_REASONS) + "."})
    text = CleanString(allow_none=True, validate=validate.Length(max=MAX_REPORT_TEXT),
                       metadata={"description": f"Optional, at most {MAX_REPORT_TEXT} "
                                                "characters; shown only to the listing's "
                                                "clinic and the directory's operators."})


class ReportReceiptSchema(Schema):
    """The filed report: its id and status (the text is never echoed)."""

    id = fields.Integer()
    status = fields.String()


class ClinicReportSchema(Schema):
    """A report on one of the clinic's listings, with the patient's text."""

    id = fields.Integer()
    provider_id = fields.Integer()
    reason = fields.String()
    text = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "open, resolved, confirmed or dismissed."})
    created_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    resolution = fields.String(allow_none=True, metadata={
        "description": "fixed or verified (the clinic), confirmed or dismissed (an operator)."})
    resolution_note = fields.String(allow_none=True)


class ClinicReportQuerySchema(Schema):
    """Which of the clinic's reports to list."""

    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf(("open", "all")), load_default="open",
                           metadata={"description": "open (default) or all."})


class ResolveSchema(Schema):
    """How the clinic resolved a report: it fixed the listing or verified it is right, with
    a note saying what it did. Every open report on the listing is resolved with it."""

    class Meta:
        unknown = RAISE

    resolution = fields.String(required=True, validate=validate.OneOf(CLINIC_RESOLUTIONS))
    note = CleanString(required=True, validate=validate.Length(min=1, max=MAX_REPORT_TEXT))
