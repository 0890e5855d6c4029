"""People: users with email and password (argon2), roles, one-time emailed links
(email confirmation, password reset), the optional TOTP second factor (pyotp), clinic
sign-up and the activity log.

Roles: a clinic's ``admin`` manages its people, API tokens, webhooks and claims; its
``staff`` manage listings and referrals; an ``operator`` is the directory's own staff
(no clinic) and approves clinics and claims. Passwords are at least
``MIN_PASSWORD_LENGTH`` characters and not one of a short list of common ones. A link is
32 random bytes; only its SHA-256 hash is stored; it works once and until it expires.
These functions raise the domain errors of ``referral.errors`` and never know about HTTP.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import re
import secrets
import smtplib

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import or_, select

from .actors import current_actor
from .auth import hash_token
from .crypto import encryptor
from .errors import Conflict, Forbidden, Gone, Invalid, NotFound
from .extensions import db
from .limits import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from .models import ActivityLog, Clinic, User, UserLink, utcnow
from .npi import is_valid_npi

log = logging.getLogger(__name__)

ROLES = ("admin", "staff")
_hasher = PasswordHasher()
#: A hash of nothing anyone knows, checked when an email has no account, so that an unknown
#: email takes as long to refuse as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")

#: Common passwords (and their families) that are refused whatever their length.
COMMON_PASSWORDS = frozenset({
    "password1234", "password12345", "password123456", "passwordpassword", "123456789012",
    "1234567890123", "12345678901234", "qwertyuiopas", "qwerty123456", "qwertyqwerty",
    "iloveyou1234", "letmein12345", "welcome12345", "administrator", "changeme1234",
    "abc123456789", "111111111111", "000000000000", "aaaaaaaaaaaa", "trustno1trustno1",
    "correcthorsebatterystaple", "passw0rd1234", "p@ssw0rd1234", "monkey123456",
    "football1234", "baseball1234", "sunshine1234", "princess1234", "dragon123456",
    "superman1234", "mentalhealth", "therapist123", "counseling123", "password!234",
})


# ---------------------------------------------------------------------------
# Emails and passwords


def normalize_email(email: str | None) -> str:
    """An email address trimmed and lower-cased; ``Invalid`` when it is not one."""
    text = (email or "").strip().lower()
    if len(text) > 254 or not EMAIL_RE.match(text):
        raise Invalid("That is not an email address.", {"email": ["Not an email address."]})
    return text


def password_problem(password: str | None, email: str = "") -> str | None:
    """Why a new password is refused, in plain words, or None when it is acceptable."""
    password = password or ""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    folded = password.lower()
    if folded in COMMON_PASSWORDS or len(set(folded)) < 4:
        return "That password is too common; choose another (a few unrelated words work well)."
    if email and folded == email.lower():
        return "Do not use your email address as the password."
    return None


def _checked_password(password: str | None, email: str) -> str:
    problem = password_problem(password, email)
    if problem:
        raise Invalid("The password is too weak.", {"password": [problem]})
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of a password."""
    return _hasher.hash(password)


def password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is the user's (an unknown user costs the same time)."""
    try:
        _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH,
                       password or "")
    except (VerificationError, InvalidHashError):
        return False
    if user is None or not user.password_hash:
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


# ---------------------------------------------------------------------------
# Users


def user_by_email(email: str) -> User | None:
    """The user with this email (any letter case), or None."""
    text = (email or "").strip().lower()
    return db.session.scalar(select(User).where(User.email == text)) if text else None


def create_user(clinic: Clinic | None, email: str, role: str, password: str | None = None, *,
                confirmed: bool = False) -> User:
    """Add a user (not committed). Without a password the person sets one through a reset
    link. A taken email is a ``Conflict``; a weak password or unknown role ``Invalid``."""
    email = normalize_email(email)
    if role not in (ROLES if clinic is not None else ("operator",)):
        raise Invalid(f"Unknown role {role!r}; use admin or staff.", {"role": ["Unknown role."]})
    if password is not None:
        _checked_password(password, email)
    if user_by_email(email) is not None:
        raise Conflict("An account with this email exists already.",
                       {"email": ["Already registered."]})
    user = User(email=email, clinic=clinic, role=role,
                password_hash=hash_password(password) if password is not None else None,
                email_confirmed_at=utcnow() if confirmed else None)
    db.session.add(user)
    return user


def clinic_user(clinic: Clinic, user_id: int) -> User:
    """One of the clinic's users; another clinic's user is not found."""
    user = db.session.get(User, user_id)
    if user is None or user.clinic_id != clinic.id:
        raise NotFound(f"Your clinic has no user {user_id}.")
    return user


def clinic_users(clinic: Clinic) -> list[User]:
    """The clinic's users, oldest first."""
    return list(db.session.scalars(select(User).where(User.clinic_id == clinic.id)
                                   .order_by(User.id)))


def change_user(admin_clinic: Clinic, user_id: int, *, role: str | None = None,
                disabled: bool | None = None) -> User:
    """An admin changes a user's role or disables (enables) the account; a clinic always
    keeps at least one enabled admin."""
    user = clinic_user(admin_clinic, user_id)
    if role is not None and role not in ROLES:
        raise Invalid(f"Unknown role {role!r}; use admin or staff.", {"role": ["Unknown role."]})
    new_role = role or user.role
    new_disabled = user.disabled_at is not None if disabled is None else disabled
    if user.role == "admin" and (new_role != "admin" or new_disabled):
        others = [u for u in clinic_users(admin_clinic)
                  if u.id != user.id and u.role == "admin" and u.disabled_at is None]
        if not others:
            raise Conflict("A clinic needs at least one admin; make someone else admin first.")
    changes = {}
    if new_role != user.role:
        changes["role"] = {"old": user.role, "new": new_role}
        user.role = new_role
    if new_disabled != (user.disabled_at is not None):
        changes["disabled"] = {"old": not new_disabled, "new": new_disabled}
        user.disabled_at = utcnow() if new_disabled else None
    if changes:
        log_activity("user_changed", admin_clinic.id, {"user_id": user.id, **changes})
    db.session.commit()
    return user


def usable(user: User | None) -> bool:
    """A user who may sign in: enabled, email confirmed, with a password."""
    return (user is not None and user.disabled_at is None and user.password_hash is not None
            and user.email_confirmed_at is not None)


# ---------------------------------------------------------------------------
# One-time links


def new_link(user: User, purpose: str) -> str:
    """A one-time link key for ``user`` (``confirm`` or ``reset``); earlier unused links of
    the same purpose stop working. Not committed."""
    now = utcnow()
    for old in db.session.scalars(select(UserLink).where(
            UserLink.user_id == user.id, UserLink.purpose == purpose,
            UserLink.used_at.is_(None))):
        old.used_at = now
    config = current_app.config
    lifetime = (dt.timedelta(minutes=config["RESET_LINK_MINUTES"]) if purpose == "reset"
                else dt.timedelta(hours=config["CONFIRM_LINK_HOURS"]))
    key = secrets.token_urlsafe(32)
    db.session.add(UserLink(user=user, purpose=purpose, key_hash=hash_token(key),
                            created_at=now, expires_at=now + lifetime))
    return key


def link_user(key: str | None, purpose: str) -> UserLink:
    """The live link with this key (not used, not expired); ``Gone`` otherwise."""
    row = None
    if key and len(key) <= 100:
        row = db.session.scalar(select(UserLink).where(UserLink.key_hash == hash_token(key),
                                                       UserLink.purpose == purpose))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise Gone("This link has expired or was used already. Ask for a new one.")
    return row


def confirm_email(key: str) -> User:
    """Use a confirmation link: the user's email counts as confirmed."""
    link = link_user(key, "confirm")
    link.used_at = utcnow()
    link.user.email_confirmed_at = link.user.email_confirmed_at or link.used_at
    log_activity("email_confirmed", link.user.clinic_id, {"user_id": link.user.id})
    db.session.commit()
    return link.user


def reset_password(key: str, password: str) -> User:
    """Use a reset link to set a new password. The link works once; the email counts as
    confirmed (the person read it); every open session of the person ends."""
    from .models import ClinicSession

    link = link_user(key, "reset")
    user = link.user
    _checked_password(password, user.email)
    now = utcnow()
    link.used_at = now
    user.password_hash = hash_password(password)
    user.email_confirmed_at = user.email_confirmed_at or now
    for live in db.session.scalars(select(ClinicSession).where(
            ClinicSession.user_id == user.id, ClinicSession.ended_at.is_(None))):
        live.ended_at = now
    log_activity("password_reset", user.clinic_id, {"user_id": user.id})
    db.session.commit()
    return user


def send_link_email(user: User, key: str, purpose: str) -> bool:
    """Email a link to the user now; False (logged) when the mail server refused it."""
    from .mailer import send_email

    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    if purpose == "confirm":
        subject = "Confirm your email address"
        body = (f"Confirm your email address for the provider directory:\n\n"
                f"{base}/clinic/confirm/{key}\n\nThe link works once, for "
                f"{current_app.config['CONFIRM_LINK_HOURS']} hours.\n")
    else:
        subject = "Set your password"
        body = (f"Someone (hopefully you) asked to set the password of {user.email}.\n\n"
                f"{base}/clinic/reset/{key}\n\nThe link works once, for "
                f"{current_app.config['RESET_LINK_MINUTES']} minutes. If you did not ask, "
                "ignore this email.\n")
    try:
        send_email(user.email, user.clinic_id or 0, subject, body,
                   f"<{purpose}-{secrets.token_hex(12)}@referral>")
    except (OSError, smtplib.SMTPException) as error:
        log.warning("account email not sent: %s", type(error).__name__)
        return False
    return True


def request_reset(email: str) -> None:
    """Email a reset link when an account has this email; the same for every email, so
    the answer never tells whether an account exists."""
    user = user_by_email(email)
    if user is None or user.disabled_at is not None:
        return
    key = new_link(user, "reset")
    db.session.commit()
    send_link_email(user, key, "reset")


# ---------------------------------------------------------------------------
# The second factor (TOTP)


def new_totp_secret() -> str:
    """A fresh base32 TOTP secret (shown to the person to add to their app)."""
    return pyotp.random_base32()


def totp_uri(user: User, secret: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (as text or a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name="Provider directory")


def _totp_step(secret: str, code: str) -> int | None:
    """The time step (now, or one step either side for clock drift) whose code is ``code``."""
    code = (code or "").strip()
    totp = pyotp.TOTP(secret)
    now = totp.timecode(dt.datetime.now(dt.UTC))
    for step in (now - 1, now, now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def enable_totp(user: User, secret: str, code: str) -> None:
    """Turn the second factor on once the person proves their app makes the right code."""
    step = _totp_step(secret, code) if re.fullmatch(r"[A-Z2-7]{16,64}", secret or "") else None
    if step is None:
        raise Invalid("That code does not match; check the time on your device and try again.",
                      {"code": ["Wrong code."]})
    user.totp_ciphertext = encryptor().encrypt(secret)
    user.totp_last_step = step
    log_activity("totp_enabled", user.clinic_id, {"user_id": user.id})
    db.session.commit()


def disable_totp(user: User) -> None:
    """Turn the second factor off."""
    user.totp_ciphertext = None
    log_activity("totp_disabled", user.clinic_id, {"user_id": user.id})
    db.session.commit()


def totp_matches(user: User, code: str) -> bool:
    """Whether ``code`` is the user's current TOTP code (one step of clock drift allowed),
    and uses it up: a code accepted once (or an older one) is refused, also when two
    sign-ins race with the same code (one conditional UPDATE decides; committed here)."""
    if not user.totp_ciphertext:
        return True
    step = _totp_step(encryptor().decrypt(user.totp_ciphertext), code)
    if step is None:
        return False
    table = User.__table__
    used = db.session.execute(
        table.update().where(table.c.id == user.id,
                             or_(table.c.totp_last_step.is_(None),
                                 table.c.totp_last_step < step))
        .values(totp_last_step=step))
    db.session.commit()
    return used.rowcount == 1


# ---------------------------------------------------------------------------
# Sign-up and operator decisions


def sign_up(*, clinic_name: str, email: str, password: str, phone: str | None = None,
            organization_npi: str | None = None) -> tuple[User, str]:
    """A person registers a clinic: the clinic waits for approval, the person is its admin
    and must confirm their email. Returns the user and the confirmation key; all or
    nothing."""
    name = " ".join((clinic_name or "").split())
    problems: dict = {}
    if not name:
        problems["clinic_name"] = ["Give the clinic's name."]
    if organization_npi and not is_valid_npi(organization_npi):
        problems["organization_npi"] = ["Not a valid NPI (10 digits, check digit)."]
    try:
        email = normalize_email(email)
    except Invalid as error:
        problems.update(error.errors)
    problem = password_problem(password, email if "email" not in problems else "")
    if problem:
        problems["password"] = [problem]
    if problems:
        raise Invalid("Please correct the sign-up form.", problems)
    if organization_npi:
        owner = db.session.scalar(select(Clinic).where(Clinic.organization_npi ==
                                                       organization_npi))
        if owner is not None:
            raise Conflict("A clinic with this organization NPI is in the directory already; "
                           + ("claim it after signing up without the NPI."
                              if owner.status == "unclaimed" else "ask its admin to add you."),
                           {"organization_npi": ["Already registered."]})
    clinic = Clinic(name=name[:200], phone=phone, email=email, status="pending",
                    organization_npi=organization_npi or None)
    db.session.add(clinic)
    user = create_user(clinic, email, "admin", password)
    db.session.flush()
    key = new_link(user, "confirm")
    log_activity("clinic_signed_up", clinic.id, {"user_id": user.id, "name": clinic.name,
                                                  "organization_npi": organization_npi})
    db.session.commit()
    return user, key


def require_approved(clinic: Clinic) -> None:
    """Listings, claims and publishing need a clinic an operator approved."""
    if clinic.status != "approved":
        raise Forbidden("Your clinic is waiting for approval by the directory's staff; its "
                        "listings cannot be published or claimed until then.")


def pending_clinics() -> list[Clinic]:
    """Clinics waiting for an operator, oldest first."""
    return list(db.session.scalars(select(Clinic).where(Clinic.status == "pending")
                                   .order_by(Clinic.created_at, Clinic.id)))


def decide_clinic(clinic_id: int, approve: bool, reason: str | None) -> Clinic:
    """An operator approves or rejects a pending clinic, with a reason (needed to reject)."""
    clinic = db.session.get(Clinic, clinic_id)
    if clinic is None or clinic.status not in ("pending", "rejected", "approved"):
        raise NotFound(f"No clinic has id {clinic_id}.")
    reason = " ".join((reason or "").split())[:500] or None
    if not approve and not reason:
        raise Invalid("Give a reason for rejecting.", {"reason": ["Needed to reject."]})
    if clinic.status != "pending":
        raise Conflict(f"This clinic was {clinic.status} already.")
    clinic.status = "approved" if approve else "rejected"
    clinic.decided_at, clinic.decision_reason = utcnow(), reason
    log_activity("clinic_approved" if approve else "clinic_rejected", clinic.id,
                 {"reason": reason})
    db.session.commit()
    return clinic


def log_activity(action: str, clinic_id: int | None, details: dict) -> None:
    """Add an activity row with the current actor (not committed)."""
    actor = current_actor()
    db.session.add(ActivityLog(action=action, clinic_id=clinic_id, user_id=actor.user_id,
                               token_id=actor.token_id, channel=actor.channel,
                               details=details))
