"""Clinic and operator pages for patients' reports on listings (``referral.reports``).

A clinic sees the reports on its own listings (another clinic's answer 404) with the
patients' text, and resolves them by fixing the listing or verifying it, each with a
note. Operators see every listing with open reports and confirm or dismiss each report.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from .. import listings, reports
from ..errors import DomainError
from ..schemas.listings import ProviderSchema
from ..schemas.reports import REASON_LABELS, ResolveSchema
from . import load_form
from .clinic import signed_in
from .operator import operator_only

bp = Blueprint("report_pages", __name__)
_resolve_schema = ResolveSchema()


@bp.get("/clinic/listings/<int(min=1, max=2147483647):provider_id>/reports")
@signed_in
def listing_reports(provider_id, errors=None, raw=None, failed_report=None):
    """The reports on one of the clinic's listings: open ones with the resolve form, then
    the resolved ones."""
    provider = listings.clinic_provider(g.clinic, provider_id)
    found = [reports.readable(r) for r in reports.clinic_reports(g.clinic, provider_id)]
    return render_template("clinic/reports.html", p=ProviderSchema().dump(provider),
                           open_reports=[r for r in found if r["status"] == "open"],
                           closed_reports=[r for r in found if r["status"] != "open"],
                           reasons=REASON_LABELS, errors=errors or {}, raw=raw or {},
                           failed_report=failed_report)


@bp.post("/clinic/listings/<int(min=1, max=2147483647):provider_id>/reports/"
         "<int(min=1, max=2147483647):report_id>/resolve")
@signed_in
def resolve(provider_id, report_id):
    """Resolve a report (fixed or verified, with a note); errors beside the inputs (422)."""
    reports.clinic_report(g.clinic, provider_id, report_id)  # another clinic's: 404
    values, raw, errors = load_form(request.form, _resolve_schema)
    if errors:
        return listing_reports(provider_id, errors, raw, report_id), 422
    try:
        reports.resolve(g.clinic, provider_id, report_id, values["resolution"], values["note"])
    except DomainError as error:
        flash(error.message)
    else:
        flash("Thank you: the reports are resolved and the listing is marked as current.")
    return redirect(url_for("report_pages.listing_reports", provider_id=provider_id))


@bp.post("/operator/reports/<int(min=1, max=2147483647):report_id>/decision")
@operator_only
def decide(report_id):
    """Confirm or dismiss a report (a confirmed no_longer_practicing deactivates)."""
    try:
        report = reports.decide(report_id, request.form.get("decision", ""))
    except DomainError as error:
        if error.status == 404:
            abort(404, description=error.message)
        flash(error.message)
    else:
        flash(f"Report {report.id} is {report.status}.")
    return redirect(url_for("operator.home") + "#reports-title")
