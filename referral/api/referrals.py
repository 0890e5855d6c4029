"""Closed-loop referrals between the referring therapist's clinic and the prescriber's."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from .. import messages, referrals
from ..auth import clinic_required
from ..schemas.referrals import (
    MessageCreateSchema,
    MessageListSchema,
    MessageSchema,
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
        found = referrals.clinic_referrals(g.clinic, query["box"], query["page"],
                                           query["per_page"])
        return {**found, "items": [referrals.PartyView(r, g.clinic) for r in found["items"]]}

    @clinic_required
    @blp.doc(security=CLINIC_AUTH)
    @blp.arguments(ReferralCreateSchema)
    @blp.response(201, ReferralSchema)
    @blp.alt_response(401, description="Missing or bad clinic token.")
    @blp.alt_response(404, description="Unknown therapist (of the caller) or prescriber.")
    @blp.alt_response(409, description="This patient has an open referral to this prescriber "
                                       "from the caller (errors.open_referral_id names it).")
    def post(self, values):
        """Refer a patient from one of the caller's therapists to a prescriber.

        The patient's consent to coordinate care is required (422 without it). One
        referral per patient reference and prescriber may be open at a time.
        """
        referral = referrals.create_referral(g.clinic, values)
        return referrals.PartyView(referral, g.clinic)


@blp.route(f"/{ID}", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, ReferralSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not a referral of the caller's clinic.")
def show(referral_id):
    """One referral and its history (only its two clinics can see it); the other clinic's
    name and contact once accepted."""
    return referrals.party_view(g.clinic, referral_id)


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
    """Accept, reject (with a reason), schedule (with ``appointment_at``; again to change
    it), complete (with an optional ``outcome``) or mark a no-show (receiving clinic), or
    cancel until completed, with a reason (sending clinic). A ``note`` goes to the
    thread."""
    referral = referrals.change_status(
        g.clinic, referral_id, values["status"], values.get("reason"), note=values.get("note"),
        appointment_at=values.get("appointment_at"),
        appointment_time_zone=values.get("appointment_time_zone"), outcome=values.get("outcome"))
    return referrals.PartyView(referral, g.clinic)


@blp.route(f"/{ID}/messages", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, MessageListSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not a referral of the caller's clinic.")
def list_messages(referral_id):
    """The referral's coordination thread, oldest first (only its two clinics)."""
    return {"items": messages.thread(g.clinic, referral_id)}


@blp.route(f"/{ID}/messages", methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(MessageCreateSchema)
@blp.response(201, MessageSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not a referral of the caller's clinic.")
def post_message(values, referral_id):
    """Write to the other clinic (up to 4,000 characters, encrypted at rest; the other
    clinic is told "a new message", never its text)."""
    return messages.post_message(g.clinic, referral_id, values["text"])
