"""Clinic pages: sign in with the clinic token, see listings (stale first), attest them,
upload a CSV (row errors shown, nothing written), edit a listing.

The signed, HTTP-only session cookie holds only the key of a server-side session
(``ClinicSession``): signing out ends it for good (a copied cookie no longer works),
and so do its expiry and revoking the token it signed in with. Every form carries a
CSRF token (Flask-WTF).
"""

from __future__ import annotations

import functools

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from marshmallow import ValidationError

from .. import listings
from ..auth import end_session, session_for, start_session, token_for
from ..bulk import upload_listings
from ..errors import Invalid
from ..schemas.listings import FORM_FIELDS, LIST_FIELDS, ListingPatchSchema, ProviderSchema
from ..security import auth_failures_exhausted, record_auth_failure
from ..services import geocoder
from . import plain_errors

bp = Blueprint("clinic", __name__, url_prefix="/clinic")


def signed_in(view):
    """Run the view for a signed-in clinic (``g.clinic``); otherwise go to sign-in."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        live = session_for(session.get("key"))
        if live is None:
            session.clear()
            return redirect(url_for("clinic.sign_in"))
        g.clinic = live.clinic
        return view(*args, **kwargs)

    return wrapper


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """Sign in with a clinic API token."""
    error, status = None, 200
    if request.method == "POST":
        if auth_failures_exhausted():
            error, status = ("Too many failed sign-ins from your address. "
                             "Please wait a minute and try again."), 429
        elif (token := token_for(request.form.get("token", "").strip())) is None:
            record_auth_failure()
            error, status = "That token is not valid or has been revoked.", 401
        else:
            session.clear()
            session["key"] = start_session(token, current_app.config["CLINIC_SESSION_HOURS"])
            return redirect(url_for("clinic.home"))
    return render_template("clinic/sign_in.html", error=error), status


@bp.post("/sign-out")
def sign_out():
    """End the clinic session on the server (a copy of the cookie stops working too)."""
    end_session(session.get("key"))
    session.clear()
    return redirect(url_for("clinic.sign_in"))


@bp.get("")
@signed_in
def home():
    """The clinic's listings, stale ones first with a 'still current' button."""
    days = current_app.config["STALE_AFTER_DAYS"]
    stale = listings.stale_listings(g.clinic, days, 1, 100)["items"]
    stale_ids = {p.id for p in stale}
    everything = listings.clinic_listings(g.clinic, 1, 100)["items"]
    dump = ProviderSchema().dump
    return render_template("clinic/home.html", clinic=g.clinic,
                           stale=[dump(p) for p in stale],
                           current=[dump(p) for p in everything if p.id not in stale_ids])


@bp.post("/providers/<int(min=1, max=2147483647):provider_id>/verify")
@signed_in
def verify(provider_id):
    """Attest a listing is still current."""
    provider = listings.verify_provider(g.clinic, provider_id)
    flash(f"{provider.first_name} {provider.last_name} is marked as current.")
    return redirect(url_for("clinic.home"))


@bp.route("/upload", methods=["GET", "POST"])
@signed_in
def upload():
    """Upload listings as CSV: all or nothing, every row's errors shown."""
    result, errors, message = None, [], None
    if request.method == "POST":
        file = request.files.get("file")
        try:
            if file is None or not file.filename:
                raise Invalid("Choose a CSV file to upload.")
            result = upload_listings(g.clinic, csv=file.read(),
                                     max_rows=current_app.config["BULK_MAX_ROWS"],
                                     geocoder=geocoder(), verify=bool(request.form.get("verify")))
        except Invalid as error:
            message = error.message
            errors = error.errors.get("rows", [])
            if not errors:
                errors = [{"row": "", "field": field, "message": "; ".join(texts)}
                          for field, texts in error.errors.items()]
    status = 422 if message else 200
    return render_template("clinic/upload.html", result=result, errors=errors,
                           message=message, list_fields=LIST_FIELDS), status




@bp.route("/providers/<int(min=1, max=2147483647):provider_id>/edit",
          methods=["GET", "POST"])
@signed_in
def edit(provider_id):
    """Edit one listing; invalid values come back with their messages."""
    provider = listings.clinic_provider(g.clinic, provider_id)
    errors: dict = {}
    values = ProviderSchema().dump(provider)
    if request.method == "POST":
        changes = _form_changes(request.form)
        values.update({k: v for k, v in changes.items()})
        try:
            loaded = ListingPatchSchema(partial=True).load(changes)
            listings.update_provider(g.clinic, provider_id, loaded, geocoder())
            flash("Saved.")
            return redirect(url_for("clinic.home"))
        except ValidationError as error:
            errors = plain_errors(error.messages, changes)
        except Invalid as error:
            errors = plain_errors(error.errors, changes)
    return render_template("clinic/edit.html", p=values, errors=errors, form_fields=FORM_FIELDS,
                           provider_id=provider_id), 422 if errors else 200


def _form_changes(form) -> dict:
    """The edit form's values as a partial listing, field by field as ``FORM_FIELDS`` says."""
    changes: dict = {}
    for field in FORM_FIELDS:
        name, widget = field["name"], field["widget"]
        if widget == "checkbox":
            changes[name] = form.get(name) == "true"
        elif widget == "text_list":
            text = form.get(name, "")
            changes[name] = [s.strip() for s in text.replace(";", ",").split(",") if s.strip()]
        elif name in LIST_FIELDS:
            changes[name] = form.getlist(name)
        else:
            value = form.get(name, "")
            changes[name] = value if value.strip() else ("" if field["required"] else None)
    return changes
