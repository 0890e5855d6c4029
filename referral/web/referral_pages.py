"""Referral pages of the clinic area: the inbox (received, with new and unread markers),
sent referrals, a referral's page (history, the coordination thread, the actions this
clinic may take), sending a referral from a therapist's listing (patient's state and
needs, the prescriber finder's ranked list, the referral form with the consent box),
webhook settings with the delivery log, and the local email outbox.

Server-rendered, CSRF-protected forms, no JavaScript needed; the same plain functions
and schemas as the API; bad form values re-render the form with messages (422).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from .. import messages as thread_messages
from .. import referrals, webhooks
from ..errors import Conflict, DomainError, Invalid
from ..events import EVENT_TYPES
from ..extensions import db
from ..listings import clinic_provider
from ..mailer import clinic_outbox
from ..models import Provider
from ..queries import prescriber_finder
from ..referrals import (
    CANCELLATION_REASONS,
    CONTACT_PREFERENCES,
    OUTCOMES,
    REJECTION_REASONS,
    URGENCIES,
    allowed_transition,
)
from ..schemas.matching import PrescriberFinderQuerySchema
from ..schemas.referrals import MessageCreateSchema, ReferralCreateSchema
from ..schemas.webhooks import WebhookCreateSchema
from . import load_form
from .clinic import signed_in

bp = Blueprint("referral_pages", __name__, url_prefix="/clinic")

ID = "<int(min=1, max=2147483647):{}>"
ACTION_LABELS = {"accepted": "Accept", "rejected": "Decline", "scheduled": "Schedule",
                 "completed": "Mark completed", "no_show": "Mark no-show",
                 "cancelled": "Cancel referral"}


@bp.app_context_processor
def referral_navigation():
    """How many referrals have something this clinic has not seen (for the navigation)."""
    clinic = g.get("clinic")
    if clinic is None:
        return {}
    marks = referrals.unread_referrals(clinic)
    return {"referral_nav": {"unseen": len(marks),
                             "new": sum(1 for m in marks.values() if m == "new")}}


def _box(box: str):
    page = request.args.get("page", "1")
    page = int(page) if page.isdigit() and 0 < int(page) <= 10_000 else 1
    found = referrals.clinic_referrals(g.clinic, box, page, 50)
    ids = [r.id for r in found["items"]]
    marks = referrals.unread_referrals(g.clinic, ids) if ids else {}
    names = dict(db.session.execute(db.select(Provider.id, Provider.last_name).where(
        Provider.id.in_({r.therapist_id for r in found["items"]}
                        | {r.prescriber_id for r in found["items"]}))).all())
    return render_template("clinic/referrals.html", box=box, found=found, marks=marks,
                           names=names, page=page)


@bp.get("/referrals")
@signed_in
def inbox():
    """Referrals the clinic received, newest first, with new and unread markers."""
    return _box("received")


@bp.get("/referrals/sent")
@signed_in
def sent():
    """Referrals the clinic sent, newest first."""
    return _box("sent")


def _actions(view) -> list[str]:
    """The status changes this clinic may make now."""
    return [status for status in ACTION_LABELS
            if allowed_transition(view.status, status) == view.side]


def _render_referral(referral_id: int, errors: dict | None = None, message: str | None = None,
                     status: int = 200, form: dict | None = None):
    view = referrals.party_view(g.clinic, referral_id)
    thread = thread_messages.thread(g.clinic, referral_id)
    providers = {p.id: p for p in db.session.scalars(db.select(Provider).where(
        Provider.id.in_((view.therapist_id, view.prescriber_id))))}
    page = render_template(
        "clinic/referral.html", r=view, thread=thread, actions=_actions(view),
        labels=ACTION_LABELS, providers=providers, errors=errors or {}, message=message,
        form=form or {}, rejection_reasons=REJECTION_REASONS,
        cancellation_reasons=CANCELLATION_REASONS, outcomes=OUTCOMES,
        time_zones=referrals.TIME_ZONES)
    referrals.mark_seen(g.clinic, view._referral)
    return page, status


@bp.get("/referrals/" + ID.format("referral_id"))
@signed_in
def referral(referral_id):
    """One referral: details, history, the thread, and this clinic's actions."""
    return _render_referral(referral_id)


def _appointment(form) -> tuple[dt.datetime | None, str | None, dict]:
    """The appointment time of a form (a local time and its zone) as an aware time, and
    the zone."""
    text = form.get("appointment_at", "").strip()
    if not text:
        return None, None, {}
    zone = form.get("time_zone", "America/New_York")
    if zone not in referrals.TIME_ZONES:
        return None, None, {"time_zone": ["Choose a time zone from the list."]}
    try:
        local = dt.datetime.fromisoformat(text)
    except ValueError:
        return None, None, {"appointment_at": ["Give a date and time."]}
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(zone))
    return local, zone, {}


@bp.post("/referrals/" + ID.format("referral_id") + "/status")
@signed_in
def change_status(referral_id):
    """Make one of the allowed status changes, with its details and an optional note."""
    form = request.form
    wanted = form.get("status", "")
    if wanted not in ACTION_LABELS:
        return _render_referral(referral_id, {"status": ["Choose an action."]}, status=422)
    appointment_at, time_zone, errors = _appointment(form)
    note = None
    if form.get("note", "").strip():
        try:
            note = MessageCreateSchema().load({"text": form["note"]})["text"]
        except ValidationError as error:
            errors["note"] = error.messages["text"]
    if errors:
        return _render_referral(referral_id, errors, status=422, form=form)
    try:
        referrals.change_status(g.clinic, referral_id, wanted, form.get("reason") or None,
                                note=note, appointment_at=appointment_at,
                                appointment_time_zone=time_zone,
                                outcome=form.get("outcome") or None)
    except (Invalid, Conflict, referrals.Forbidden) as error:
        return _render_referral(referral_id, error.errors, error.message, error.status,
                                form=form)
    flash(f"Referral {referral_id}: {ACTION_LABELS[wanted].lower()} done.")
    return redirect(url_for("referral_pages.referral", referral_id=referral_id))


@bp.post("/referrals/" + ID.format("referral_id") + "/messages")
@signed_in
def post_message(referral_id):
    """Write to the other clinic in the referral's thread."""
    try:
        text = MessageCreateSchema().load({"text": request.form.get("text", "")})["text"]
    except ValidationError as error:
        return _render_referral(referral_id, {"text": error.messages["text"]},
                                status=422, form=request.form)
    thread_messages.post_message(g.clinic, referral_id, text)
    flash("Message sent.")
    return redirect(url_for("referral_pages.referral", referral_id=referral_id) + "#thread")


# ---------------------------------------------------------------------------
# Sending a referral from a therapist's listing


def _therapist(therapist_id: int) -> Provider:
    therapist = clinic_provider(g.clinic, therapist_id)
    if therapist.role != "therapist" or not therapist.active:
        abort(404)
    return therapist


@bp.get("/refer/" + ID.format("therapist_id"))
@signed_in
def refer(therapist_id):
    """Step 1: the patient's state and needs, then the prescriber finder's ranked list."""
    therapist = _therapist(therapist_id)
    params, raw, errors = None, {}, {}
    if request.args:  # the first visit shows the empty form, without complaints
        params, raw, errors = load_form(request.args, PrescriberFinderQuerySchema())
    answer = None
    if raw and params is not None:
        answer = prescriber_finder(therapist_id, {**params, "per_page": 20})
    return render_template("clinic/refer.html", therapist=therapist, raw=raw, errors=errors,
                           answer=answer), 422 if errors else 200


@bp.route("/refer/" + ID.format("therapist_id") + "/to/" + ID.format("prescriber_id"),
          methods=["GET", "POST"])
@signed_in
def refer_to(therapist_id, prescriber_id):
    """Step 2: the referral form (consent required); sending opens the referral's page."""
    therapist = _therapist(therapist_id)
    prescriber = db.session.get(Provider, prescriber_id)
    if prescriber is None or not prescriber.active or prescriber.role != "prescriber":
        abort(404)
    values = {"patient_state": request.args.get("patient_state", ""),
              "concerns": request.args.getlist("concern"), "urgency": "routine"}
    errors: dict = {}
    message = None
    open_id = None
    if request.method == "POST":
        form = request.form
        values = {"patient_ref": form.get("patient_ref", "").strip(),
                  "patient_state": form.get("patient_state", ""),
                  "concerns": form.getlist("concerns"), "urgency": form.get("urgency", ""),
                  "contact_preference": form.get("contact_preference", ""),
                  "note": form.get("note", "")}
        raw = {k: v for k, v in values.items() if v not in ("", [])}
        raw.update(therapist_id=therapist.id, prescriber_id=prescriber.id,
                   consent_to_coordinate=form.get("consent_to_coordinate") == "true")
        try:
            loaded = ReferralCreateSchema().load(raw)
            created = referrals.create_referral(g.clinic, loaded)
            flash(f"Referral {created.id} sent to {prescriber.first_name} "
                  f"{prescriber.last_name}.")
            return redirect(url_for("referral_pages.referral", referral_id=created.id))
        except ValidationError as error:
            errors, message = error.messages, "Please fix these; nothing was sent."
        except DomainError as error:
            db.session.rollback()
            errors, message = error.errors, error.message
            if isinstance(error, Conflict):
                open_id = error.errors.get("open_referral_id")
    status = 422 if errors and not open_id else (409 if open_id else 200)
    return render_template("clinic/refer_form.html", therapist=therapist,
                           prescriber=prescriber, values=values, errors=errors,
                           message=message, open_id=open_id, urgencies=URGENCIES,
                           contact_preferences=CONTACT_PREFERENCES), status


# ---------------------------------------------------------------------------
# Webhook settings and the email outbox


def _webhook_page(new=None, errors=None, status=200, form=None):
    return render_template("clinic/webhooks.html", endpoints=webhooks.clinic_endpoints(g.clinic),
                           new=new, errors=errors or {}, event_types=EVENT_TYPES,
                           form=form or {}), status


@bp.get("/settings/webhooks")
@signed_in
def webhook_settings():
    """The clinic's webhook endpoints and a form to add one."""
    return _webhook_page()


@bp.post("/settings/webhooks")
@signed_in
def add_webhook():
    """Add an endpoint; its secret is shown on this answer only."""
    raw = {"url": request.form.get("url", ""),
           "event_types": request.form.getlist("event_types") or list(EVENT_TYPES)}
    if request.form.get("description", "").strip():
        raw["description"] = request.form["description"]
    try:
        values = WebhookCreateSchema().load(raw)
        endpoint, secret = webhooks.create_endpoint(g.clinic, values["url"],
                                                    values["event_types"],
                                                    values.get("description"))
    except ValidationError as error:
        return _webhook_page(errors=error.messages, status=422, form=request.form)
    except (Invalid, Conflict) as error:
        return _webhook_page(errors=error.errors or {"url": [error.message]},
                             status=error.status, form=request.form)
    return _webhook_page(new={"endpoint": endpoint, "secret": secret}, status=201)


@bp.post("/settings/webhooks/" + ID.format("endpoint_id") + "/delete")
@signed_in
def delete_webhook(endpoint_id):
    """Delete an endpoint."""
    webhooks.delete_endpoint(g.clinic, endpoint_id)
    flash("Webhook deleted.")
    return redirect(url_for("referral_pages.webhook_settings"))


@bp.get("/settings/webhooks/" + ID.format("endpoint_id"))
@signed_in
def webhook_log(endpoint_id):
    """An endpoint's delivery log, newest first, with "send again"."""
    endpoint = webhooks.clinic_endpoint(g.clinic, endpoint_id)
    log = webhooks.endpoint_deliveries(g.clinic, endpoint_id, 1, 100)
    return render_template("clinic/webhook_log.html", endpoint=endpoint, log=log)


@bp.post("/settings/webhooks/" + ID.format("endpoint_id") + "/deliveries/"
         "<int(min=1, max=9223372036854775807):delivery_id>/retry")
@signed_in
def resend(endpoint_id, delivery_id):
    """Send one delivery again now."""
    try:
        webhooks.send_again(g.clinic, endpoint_id, delivery_id)
        flash(f"Delivery {delivery_id} will be sent again.")
    except Conflict as error:
        flash(error.message)
    return redirect(url_for("referral_pages.webhook_log", endpoint_id=endpoint_id))


@bp.get("/outbox")
@signed_in
def outbox():
    """Emails kept for this clinic in the local outbox (no SMTP server configured)."""
    return render_template("clinic/outbox.html", emails=clinic_outbox(g.clinic.id))


@bp.app_template_filter("when")
def when(value, zone: str | None = None) -> str:
    """A time for people: ``2026-11-27 14:00 UTC``, or in ``zone`` (an appointment in the
    zone it was booked in): ``2026-11-27 08:00 CST (America/Chicago)``; empty for none."""
    if not value:
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if zone and zone != "UTC":
        return value.astimezone(ZoneInfo(zone)).strftime(f"%Y-%m-%d %H:%M %Z ({zone})")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
