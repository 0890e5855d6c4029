"""Clinic pages: sign up, confirm the email, sign in with email and password (and the TOTP
second factor when on) or with a clinic token, reset a password by an emailed link; see
listings (stale first), attest them, upload a CSV (row errors shown, nothing written),
edit a listing; admins manage their people and API tokens.

The signed, HTTP-only session cookie holds only the key of a server-side session
(``ClinicSession``): signing out ends it for good (a copied cookie no longer works),
and so do its expiry and revoking the token it signed in with. Every form carries a
CSRF token (Flask-WTF).
"""

from __future__ import annotations

import functools
import time

from flask import (
    Blueprint,
    Response,
    abort,
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

from .. import accounts, clinics, listings, reports
from .. import claims as claim_rules
from ..actors import Actor, set_actor
from ..auth import end_session, session_for, start_session, token_for
from ..bulk import upload_listings
from ..errors import Conflict, DomainError, Gone, Invalid, PreconditionFailed
from ..extensions import db
from ..limits import MAX_ID
from ..listing_csv import rows_from_csv, rows_to_csv
from ..models import User
from ..schemas.claims import RegistryQuerySchema
from ..schemas.fields import Phone as PhoneField
from ..schemas.listings import (
    FORM_FIELDS,
    LIST_FIELDS,
    LISTING_FIELDS,
    REQUIRED_FIELDS,
    ListingPatchSchema,
    ListingSchema,
    ProviderSchema,
    listing_label,
)
from ..security import (
    account_failures_exhausted,
    auth_failures_exhausted,
    record_account_failure,
    record_auth_failure,
)
from ..services import geocoder
from . import plain_errors

bp = Blueprint("clinic", __name__, url_prefix="/clinic")
#: How long the second step of a sign-in (the TOTP code) may wait after the password.
SECOND_FACTOR_SECONDS = 300
SIGN_UP_FIELDS = ("clinic_name", "organization_npi", "phone", "email")


def signed_in(view):
    """Run the view for a signed-in clinic (``g.clinic``, ``g.user``: None for a token
    sign-in); otherwise go to sign-in. An operator goes to the operator pages."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        live = session_for(session.get("key"))
        if live is None:
            session.pop("key", None)  # a pending second factor stays
            return redirect(url_for("clinic.sign_in"))
        if live.clinic is None:
            return redirect(url_for("operator.home"))
        g.clinic, g.user = live.clinic, live.user
        set_actor(Actor(channel="page", user_id=live.user_id, token_id=live.token_id))
        return view(*args, **kwargs)

    return wrapper


def admin_only(view):
    """Only a clinic admin (or a token sign-in, which an admin issued) may run the view;
    staff get 403."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if g.user is not None and g.user.role != "admin":
            abort(403, description="Only your clinic's admins can do this.")
        return view(*args, **kwargs)

    return signed_in(wrapper)


def _too_many(email: str | None = None) -> str | None:
    if auth_failures_exhausted():
        return "Too many failed sign-ins from your address. Please wait a minute and try again."
    if email and account_failures_exhausted(email):
        return ("Too many failed sign-ins to this account. Please wait and try again later, "
                "or reset your password.")
    return None


def _failed(email: str | None = None) -> None:
    record_auth_failure()
    if email:
        record_account_failure(email)


def _begin(user=None, token=None):
    session.clear()
    session["key"] = start_session(token, current_app.config["CLINIC_SESSION_HOURS"], user)
    if user is not None and user.role == "operator":
        return redirect(url_for("operator.home"))
    return redirect(url_for("clinic.home"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """Sign in with email and password (then the second factor, when it is on), or with a
    clinic API token (integrations and the demo)."""
    error, status = None, 200
    form = request.form
    if request.method == "POST" and "token" in form:
        if (error := _too_many()) is not None:
            status = 429
        elif (token := token_for(form.get("token", "").strip())) is None:
            _failed()
            error, status = "That token is not valid or has been revoked.", 401
        else:
            return _begin(token=token)
    elif request.method == "POST":
        email = form.get("email", "").strip().lower()[:254]
        if (error := _too_many(email)) is not None:
            status = 429
        else:
            user = accounts.user_by_email(email)
            if not accounts.password_matches(user, form.get("password", "")) \
                    or user.disabled_at is not None:
                _failed(email)
                error, status = "The email or password is not right.", 401
            elif user.email_confirmed_at is None:
                error, status = ("Confirm your email address first: open the link we emailed "
                                 "you (ask for a password reset to get a new one)."), 403
            elif user.totp_ciphertext:
                db.session.commit()  # a rehashed password
                session.clear()
                session["pending_user"] = user.id
                session["pending_until"] = time.time() + SECOND_FACTOR_SECONDS
                return redirect(url_for("clinic.second_factor"))
            else:
                db.session.commit()
                return _begin(user=user)
    return render_template("clinic/sign_in.html", error=error), status


@bp.route("/sign-in/code", methods=["GET", "POST"])
def second_factor():
    """The second step of a sign-in with TOTP on: the code from the person's app."""
    user_id, until = session.get("pending_user"), session.get("pending_until", 0)
    user = db.session.get(User, user_id) if user_id else None
    if user is None or time.time() > until or not accounts.usable(user):
        session.clear()
        flash("Please sign in again.")
        return redirect(url_for("clinic.sign_in"))
    error, status = None, 200
    if request.method == "POST":
        if (error := _too_many(user.email)) is not None:
            status = 429
        elif not accounts.totp_matches(user, request.form.get("code", "")):
            _failed(user.email)
            error, status = "That code is not right. Try the newest code from your app.", 401
        else:
            return _begin(user=user)
    return render_template("clinic/second_factor.html", error=error), status


@bp.post("/sign-out")
def sign_out():
    """End the clinic session on the server (a copy of the cookie stops working too)."""
    end_session(session.get("key"))
    session.clear()
    return redirect(url_for("clinic.sign_in"))


@bp.route("/sign-up", methods=["GET", "POST"])
def sign_up():
    """Register a clinic: its name, organization NPI (optional), contact, and the person
    who will be its admin. The email must be confirmed; an operator approves the clinic."""
    errors, status, values = {}, 200, {}
    if request.method == "POST":
        values = {key: request.form.get(key, "").strip() for key in SIGN_UP_FIELDS}
        try:
            phone = values["phone"] or None
            if phone:
                phone = PhoneField().deserialize(phone)
            user, key = accounts.sign_up(
                clinic_name=values["clinic_name"], email=values["email"],
                password=request.form.get("password", ""), phone=phone,
                organization_npi=values["organization_npi"] or None)
        except ValidationError as error:
            errors, status = {"phone": error.messages}, 422
        except DomainError as error:
            errors, status = {"_": [error.message], **error.errors}, error.status
        else:
            sent = accounts.send_link_email(user, key, "confirm")
            return render_template("clinic/signed_up.html", email=user.email, sent=sent)
    return render_template("clinic/sign_up.html", errors=errors, v=values), status


@bp.get("/confirm/<key>")
def confirm(key):
    """Open the emailed confirmation link: the email counts as confirmed."""
    try:
        accounts.confirm_email(key)
    except Gone as error:
        return render_template("clinic/link_gone.html", message=error.message), 410
    flash("Your email address is confirmed. You can sign in.")
    return redirect(url_for("clinic.sign_in"))


@bp.route("/reset", methods=["GET", "POST"])
def reset_request():
    """Ask for a password-reset link (the same answer whether or not the email is known)."""
    if request.method == "POST":
        if (error := _too_many()) is not None:
            return render_template("clinic/reset_request.html", error=error), 429
        record_auth_failure()  # reset emails count against the address's budget: no mail bombs
        accounts.request_reset(request.form.get("email", ""))
        return render_template("clinic/reset_request.html", sent=True)
    return render_template("clinic/reset_request.html")


@bp.route("/reset/<key>", methods=["GET", "POST"])
def reset(key):
    """Choose a new password through an emailed one-time link."""
    try:
        accounts.link_user(key, "reset")
    except Gone as error:
        db.session.rollback()
        return render_template("clinic/link_gone.html", message=error.message), 410
    error = None
    if request.method == "POST":
        if request.form.get("password") != request.form.get("password_again"):
            error = "The two passwords differ."
        else:
            try:
                accounts.reset_password(key, request.form.get("password", ""))
            except Invalid as problem:
                error = " ".join(problem.errors.get("password", [problem.message]))
            else:
                flash("Your password is set. Sign in with it.")
                return redirect(url_for("clinic.sign_in"))
    return render_template("clinic/reset.html", key=key, error=error), 422 if error else 200


@bp.route("/security", methods=["GET", "POST"])
@signed_in
def security():
    """Turn the second factor (TOTP) on or off for the signed-in person."""
    if g.user is None:
        abort(403, description="A token sign-in has no second factor; sign in as a person.")
    error = None
    if request.method == "POST" and request.form.get("action") == "disable":
        if not accounts.totp_matches(g.user, request.form.get("code", "")):
            error = "That code is not right."
        else:
            accounts.disable_totp(g.user)
            flash("The second factor is off.")
            return redirect(url_for("clinic.security"))
    elif request.method == "POST":
        try:
            accounts.enable_totp(g.user, session.get("totp_secret", ""),
                                 request.form.get("code", ""))
        except Invalid as problem:
            error = problem.message
        else:
            session.pop("totp_secret", None)
            flash("The second factor is on: you will be asked for a code at each sign-in.")
            return redirect(url_for("clinic.security"))
    secret = None
    if not g.user.totp_ciphertext:
        secret = session.get("totp_secret") or accounts.new_totp_secret()
        session["totp_secret"] = secret
    return render_template("clinic/security.html", user=g.user, secret=secret,
                           uri=accounts.totp_uri(g.user, secret) if secret else None,
                           error=error), 422 if error else 200


@bp.get("")
@signed_in
def home():
    """The clinic's listings, stale ones first with a 'still current' button."""
    days = current_app.config["STALE_AFTER_DAYS"]
    stale = listings.stale_listings(g.clinic, days, 1, 100)["items"]
    stale_ids = {p.id for p in stale}
    everything = listings.clinic_listings(g.clinic, 1, 100)["items"]
    dump = ProviderSchema().dump
    counts = reports.open_report_counts(g.clinic)
    reported = [{"id": p.id, "name": f"{p.first_name} {p.last_name}", "count": counts[p.id],
                 "reported": p.reported_at is not None} for p in everything if p.id in counts]
    return render_template("clinic/home.html", clinic=g.clinic, open_reports=reported,
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
        data = file.read() if file is not None else b""
        try:
            if file is None or not file.filename:
                raise Invalid("Choose a CSV file to upload.")
            result = upload_listings(g.clinic, csv=data,
                                     max_rows=current_app.config["BULK_MAX_ROWS"],
                                     geocoder=geocoder(), verify=bool(request.form.get("verify")))
        except Invalid as error:
            message = error.message
            errors = _with_values(error.errors.get("rows", []), data)
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
    version, status = provider.version, 200
    if request.method == "POST":
        changes = _form_changes(request.form)
        values.update({k: v for k, v in changes.items()})
        opened = request.form.get("version", "")
        try:
            if not opened.isdigit() or len(opened) > 9:
                raise Invalid(MISSING_VERSION)
            loaded = ListingPatchSchema(partial=True).load(changes)
            listings.update_provider(g.clinic, provider_id, loaded, geocoder(),
                                     expected_versions={int(opened)})
            flash("Saved.")
            return redirect(url_for("clinic.home"))
        except ValidationError as error:
            errors, status = plain_errors(error.messages, changes), 422
        except Invalid as error:
            errors = plain_errors(error.errors, changes) or {"_": [error.message]}
            status = 422
        except (PreconditionFailed, Conflict):
            # Someone saved first: nothing of this save was written. Show what is saved now
            # (and its version), so a second save can never overwrite their change unseen.
            db.session.rollback()
            provider = listings.clinic_provider(g.clinic, provider_id)
            values, version, status = ProviderSchema().dump(provider), provider.version, 409
            errors = {"_": [SAVED_BY_SOMEONE_ELSE]}
    return render_template("clinic/edit.html", p=values, errors=errors, form_fields=FORM_FIELDS,
                           provider_id=provider_id, version=version), status


#: The edit form's answer when the listing changed after the form was opened.
SAVED_BY_SOMEONE_ELSE = (
    "Someone else saved this listing after you opened it, so your changes were not saved. "
    "The form now shows the listing as it is saved; make your changes again and save.")
MISSING_VERSION = ("The form did not say which version of the listing it was opened on; "
                   "nothing was saved. Reload the page and make your changes again.")


def _with_values(errors: list[dict], data: bytes) -> list[dict]:
    """Row errors with the bad value beside each (as written in the file) and the field in
    plain words."""
    try:
        rows = rows_from_csv(data) if errors else []
    except Invalid:
        rows = []
    shown = []
    for error in errors:
        number, field = error.get("row"), str(error.get("field", ""))
        name = field.split("[")[0].split(".")[0]
        cell = rows[number - 1].get(name) if isinstance(number, int) and \
            0 < number <= len(rows) else None
        value = "; ".join(cell) if isinstance(cell, list) else cell
        shown.append({**error, "label": listing_label(name),
                      "value": value})
    return shown


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


@bp.route("/users", methods=["GET", "POST"])
@admin_only
def users():
    """Admins: the clinic's people; add one (they get an emailed link to set a password)."""
    if g.user is None:
        abort(403, description="Sign in as a person (an admin) to manage people.")
    error, status = None, 200
    if request.method == "POST":
        try:
            user = accounts.create_user(g.clinic, request.form.get("email", ""),
                                        request.form.get("role", ""))
            db.session.flush()
            accounts.log_activity("user_added", g.clinic.id,
                                  {"user_id": user.id, "role": user.role})
            key = accounts.new_link(user, "reset")
            db.session.commit()
        except DomainError as problem:
            db.session.rollback()
            error, status = problem.message, problem.status
        else:
            sent = accounts.send_link_email(user, key, "reset")
            flash(f"Added {user.email}; " + ("we emailed them a link to set their password."
                                              if sent else "the email could not be sent: "
                                              "ask them to use 'Forgot your password'."))
            return redirect(url_for("clinic.users"))
    return render_template("clinic/users.html", users=accounts.clinic_users(g.clinic),
                           error=error), status


@bp.post("/users/<int(min=1, max=2147483647):user_id>")
@admin_only
def change_user(user_id):
    """Admins: change a person's role, or disable / enable their account."""
    if g.user is None:
        abort(403, description="Sign in as a person (an admin) to manage people.")
    action = request.form.get("action")
    try:
        if action == "role":
            accounts.change_user(g.clinic, user_id, role=request.form.get("role"))
        elif action in ("disable", "enable"):
            accounts.change_user(g.clinic, user_id, disabled=action == "disable")
        else:
            raise Invalid("Unknown action.")
    except DomainError as problem:
        db.session.rollback()
        if problem.status == 404:
            abort(404, description=problem.message)
        flash(problem.message)
    return redirect(url_for("clinic.users"))


@bp.route("/tokens", methods=["GET", "POST"])
@admin_only
def tokens():
    """Admins: the clinic's API tokens (for integrations); issue one (shown once)."""
    issued = None
    if request.method == "POST":
        label = " ".join(request.form.get("label", "").split())[:100] or None
        _, issued = clinics.new_token(g.clinic, label=label)
    return render_template("clinic/tokens.html", tokens=clinics.clinic_tokens(g.clinic),
                           issued=issued)


@bp.post("/tokens/<int(min=1, max=2147483647):token_id>/revoke")
@admin_only
def revoke_token(token_id):
    """Admins: revoke one of the clinic's tokens (sessions signed in with it end)."""
    try:
        clinics.revoke_clinic_token(token_id, g.clinic)
    except DomainError as problem:
        abort(404, description=problem.message)
    flash("The token is revoked.")
    return redirect(url_for("clinic.tokens"))


@bp.route("/claims", methods=["GET", "POST"])
@admin_only
def claim_listings():
    """Admins: search the registry's unclaimed listings and organizations (by NPI, or name
    and state), claim the chosen ones with the attestation, and follow the claims."""
    args = request.args
    results, error, status = None, None, 200
    npi, name, state = (args.get(key, "").strip() for key in ("npi", "name", "state"))
    if request.method == "POST":
        try:
            made = claim_rules.request_claims(
                g.clinic, request.form.getlist("npi"), attest=request.form.get("attest") == "yes",
                evidence=request.form.get("evidence"))
        except DomainError as problem:
            reasons = [f"{key}: {' '.join(texts)}" for key, texts in
                       problem.errors.get("npis", {}).items()]
            error, status = " ".join([problem.message, *reasons]), problem.status
        else:
            flash(f"{len(made)} claim{'s' if len(made) != 1 else ''} sent; the directory's "
                  "staff will review them.")
            return redirect(url_for("clinic.claim_listings"))
    elif npi or name:
        try:
            query = RegistryQuerySchema().load({k: v for k, v in
                                                (("npi", npi), ("name", name), ("state", state))
                                                if v})
            results = claim_rules.unclaimed_records(**query)
        except ValidationError as problem:
            error, status = " ".join(f"{key}: {' '.join(texts)}" for key, texts in
                                     problem.messages.items()), 422
    return render_template("clinic/claims.html", results=results, error=error,
                           claims=claim_rules.clinic_claims(g.clinic),
                           q={"npi": npi, "name": name, "state": state}), status


@bp.post("/providers/<int(min=1, max=2147483647):provider_id>/release")
@admin_only
def release(provider_id):
    """Admins: give a listing back to the registry (unclaimed, hidden from patients)."""
    try:
        provider = claim_rules.release_listing(g.clinic, provider_id)
    except DomainError as problem:
        abort(problem.status, description=problem.message)
    flash(f"{provider.first_name} {provider.last_name} is released to the registry.")
    return redirect(url_for("clinic.home"))


@bp.route("/providers/new", methods=["GET", "POST"])
@signed_in
def new_listing():
    """Add a listing by hand (it counts as verified now); bad values come back with their
    messages in plain words."""
    errors: dict = {}
    values: dict = {field: None for field in LISTING_FIELDS}
    values.update({name: [] for name in LIST_FIELDS})
    values.update(in_person=True, accepting_new_patients=True)
    if request.method == "POST":
        changes = _form_changes(request.form)
        changes["npi"] = request.form.get("npi", "").strip()
        values.update(changes)
        try:
            loaded = ListingSchema().load({k: v for k, v in changes.items()
                                           if v not in (None, "") or k in REQUIRED_FIELDS})
            provider = listings.create_provider(g.clinic, loaded, geocoder())
        except ValidationError as error:
            errors = error.messages
        except DomainError as error:
            errors = error.errors or {"_": [error.message]}
            if error.status == 403:
                errors = {"_": [error.message]}
        else:
            flash(f"{provider.first_name} {provider.last_name} is listed.")
            return redirect(url_for("clinic.home"))
    return render_template("clinic/edit.html", p=values, errors=errors, form_fields=FORM_FIELDS,
                           provider_id=None), 422 if errors else 200


@bp.post("/providers/<int(min=1, max=2147483647):provider_id>/active")
@signed_in
def set_active(provider_id):
    """Deactivate a listing (hidden from patients, history kept) or reactivate it."""
    if request.form.get("active") == "true":
        provider = listings.update_provider(g.clinic, provider_id, {"active": True}, geocoder())
        flash(f"{provider.first_name} {provider.last_name} is active again.")
    else:
        provider = listings.deactivate_provider(g.clinic, provider_id)
        flash(f"{provider.first_name} {provider.last_name} is deactivated: hidden from "
              "patients, history kept.")
    return redirect(url_for("clinic.home"))


@bp.post("/verify")
@signed_in
def verify_selected():
    """'Still current' for every selected listing at once (all or nothing)."""
    ids = request.form.getlist("provider_id", type=int)
    if not ids:
        flash("Select the listings that are still current first.")
        return redirect(url_for("clinic.home"))
    for provider_id in ids:
        listings.clinic_provider(g.clinic, provider_id)  # another clinic's: 404, nothing kept
    for provider_id in ids:
        listings.verify_provider(g.clinic, provider_id)
    flash(f"{len(ids)} listing{'s are' if len(ids) != 1 else ' is'} marked as current.")
    return redirect(url_for("clinic.home"))


def _csv_answer(text: str, filename: str) -> Response:
    return Response(text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/listings/template.csv")
@signed_in
def csv_template():
    """An empty CSV with the header row of an upload (every listing field)."""
    return _csv_answer(rows_to_csv([]), "listings-template.csv")


@bp.get("/listings.csv")
@signed_in
def csv_export():
    """Every listing of the clinic as CSV, in the upload's format (cells that a spreadsheet
    would run as a formula are neutralised by the one CSV writer)."""
    everything = listings.clinic_listings(g.clinic, 1, MAX_ID)["items"]
    return _csv_answer(rows_to_csv(ProviderSchema(many=True).dump(everything)),
                       "listings.csv")


@bp.get("/providers/<int(min=1, max=2147483647):provider_id>/history")
@signed_in
def history(provider_id):
    """The listing's change history: who, when, through which channel, old and new."""
    provider = listings.clinic_provider(g.clinic, provider_id)
    return render_template("clinic/history.html", provider=provider,
                           entries=listings.audit_trail(g.clinic, provider_id))
