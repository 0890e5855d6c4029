"""Closed-loop referrals between the referring therapist's clinic and the prescriber's."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from .. import referrals
from ..auth import clinic_required
from ..schemas.referrals import (
    ReferralCreateSchema,
    ReferralListQuerySchema,
    ReferralPageSchema,
    ReferralSchema,
    ReferralStatusSchema,
)
from ..security import limit_writes
from . import Blueprint

blp = Blueprint("referrals", __name__, description="Referrals from therapists to prescribers.")
blp.url_prefix = "/referrals"
limit_writes(blp)

CLINIC_AUTH = [{"clinicToken": []}]
ID = "<int(min=1, max=2147483647):referral_id>"


@blp.route("")
class ReferralCollection(MethodView):
    """The caller's referrals."""

    @clinic_required
    @blp.doc(security=CLINIC_AUTH)
    @blp.arguments(ReferralListQuerySchema, location="query")
    @blp.response(200, ReferralPageSchema)
    @blp.alt_response(401, description="Missing or bad clinic token.")
    def get(self, query):
        """Referrals the caller's clinic sent or received, newest first."""
        return referrals.clinic_referrals(g.clinic, query["box"], query["page"],
                                          query["per_page"])

    @clinic_required
    @blp.doc(security=CLINIC_AUTH)
    @blp.arguments(ReferralCreateSchema)
    @blp.response(201, ReferralSchema)
    @blp.alt_response(401, description="Missing or bad clinic token.")
    @blp.alt_response(404, description="Unknown therapist (of the caller) or prescriber.")
    def post(self, values):
        """Refer a patient from one of the caller's therapists to a prescriber.

        The patient's consent to coordinate care is required (422 without it).
        """
        return referrals.create_referral(g.clinic, values)


@blp.route(f"/{ID}", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, ReferralSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not a referral of the caller's clinic.")
def show(referral_id):
    """One referral and its history (only its two clinics can see it)."""
    return referrals.visible_referral(g.clinic, referral_id)


@blp.route(f"/{ID}/status", methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(ReferralStatusSchema)
@blp.response(200, ReferralSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(403, description="The other clinic makes this change.")
@blp.alt_response(404, description="Not a referral of the caller's clinic.")
@blp.alt_response(409, description="Not allowed from the current status, or another change "
                                   "to the referral was saved first (nothing written).")
def change_status(values, referral_id):
    """Accept, reject (with a reason), schedule or complete (receiving clinic), or cancel
    (sending clinic)."""
    return referrals.change_status(g.clinic, referral_id, values["status"],
                                   values.get("reason"))
