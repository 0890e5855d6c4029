"""Operator pages: the directory's own staff see clinics waiting for approval and pending
claims with their evidence, and approve or reject each with a reason (audited).

Operators sign in on the clinic sign-in page; ``referral operator create EMAIL`` makes one.
"""

from __future__ import annotations

import functools

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from .. import accounts, claims, reports
from ..actors import Actor, set_actor
from ..auth import session_for
from ..errors import DomainError

bp = Blueprint("operator", __name__, url_prefix="/operator")


def operator_only(view):
    """Run the view for a signed-in operator (``g.user``); others: sign-in or 403."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        live = session_for(session.get("key"))
        if live is None:
            session.clear()
            return redirect(url_for("clinic.sign_in"))
        if live.user is None or live.user.role != "operator":
            abort(403, description="Only the directory's operators can see this page.")
        g.user = live.user
        set_actor(Actor(channel="page", user_id=live.user_id))
        return view(*args, **kwargs)

    return wrapper


@bp.get("")
@operator_only
def home():
    """Clinics waiting for approval and pending claims, oldest first; listings with open
    patients' reports, most reported first."""
    from ..schemas.reports import REASON_LABELS

    return render_template("operator/home.html", clinics=accounts.pending_clinics(),
                           claims=claims.pending_claims(),
                           reported=reports.listings_with_open_reports(),
                           report_reasons=REASON_LABELS)


@bp.post("/clinics/<int(min=1, max=2147483647):clinic_id>/decision")
@operator_only
def decide_clinic(clinic_id):
    """Approve or reject a clinic (a rejection needs a reason)."""
    approve = request.form.get("decision") == "approve"
    try:
        clinic = accounts.decide_clinic(clinic_id, approve, request.form.get("reason"))
    except DomainError as error:
        if error.status == 404:
            abort(404, description=error.message)
        flash(error.message)
    else:
        flash(f"{clinic.name} is {clinic.status}.")
    return redirect(url_for("operator.home"))


@bp.post("/claims/<int(min=1, max=2147483647):claim_id>/decision")
@operator_only
def decide_claim(claim_id):
    """Approve or reject a claim (a rejection needs a reason)."""
    approve = request.form.get("decision") == "approve"
    try:
        claim = claims.decide_claim(claim_id, approve, request.form.get("reason"),
                                    operator=g.user)
    except DomainError as error:
        if error.status == 404:
            abort(404, description=error.message)
        flash(error.message)
    else:
        flash(f"Claim {claim.id} ({claim.npi}) is {claim.status}.")
    return redirect(url_for("operator.home"))
