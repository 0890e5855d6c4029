"""Clinic API tokens: issue, check, revoke; the ``clinic_required`` view decorator; and the
server-side sessions of the pages (signed in with a token or as a person).

A token is 32 random bytes (URL-safe text with an ``mhd_`` prefix), shown once.
Only its SHA-256 hash is stored: a high-entropy random token needs no slow
password hash, and the hash is looked up through a unique index. The hash is
compared again in constant time after the lookup.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets

from flask import g, request, session
from flask_smorest import abort
from sqlalchemy import select

from .actors import Actor, set_actor
from .extensions import db
from .models import ApiToken, Clinic, ClinicSession, User, utcnow
from .security import auth_failures_exhausted, record_auth_failure

TOKEN_PREFIX = "mhd_"
#: How often last_used_at is written, so authentication is not a write per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=10)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(clinic: Clinic, label: str | None = None) -> tuple[ApiToken, str]:
    """Create a token for ``clinic``; return the row and the plaintext (shown once only)."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(clinic=clinic, token_hash=hash_token(plaintext),
                   prefix=plaintext[:12], label=label)
    db.session.add(row)
    return row, plaintext


def token_for(plaintext: str) -> ApiToken | None:
    """The unrevoked token row for this plaintext token, or None."""
    if not plaintext or not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
        return None
    digest = hash_token(plaintext)
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
        db.session.commit()
    return row


def start_session(token: ApiToken | None, hours: int, user: User | None = None) -> str:
    """Open a pages session signed in with ``token`` or as ``user`` (an operator has no
    clinic); return its key (for the signed cookie; only the key's hash is stored). It
    ends after ``hours``."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    clinic_id = token.clinic_id if token is not None else user.clinic_id
    db.session.add(ClinicSession(key_hash=hash_token(key), clinic_id=clinic_id,
                                 token_id=token.id if token is not None else None,
                                 user_id=user.id if user is not None else None, created_at=now,
                                 expires_at=now + dt.timedelta(hours=hours)))
    db.session.commit()
    return key


def session_for(key: str | None) -> ClinicSession | None:
    """The live session with this key: not ended, not expired, its token not revoked, its
    person not disabled."""
    if not key or len(key) > 100:
        return None
    row = db.session.scalar(select(ClinicSession).where(ClinicSession.key_hash == hash_token(key)))
    if row is None or row.ended_at is not None or row.expires_at <= utcnow():
        return None
    if row.token is not None and row.token.revoked_at is not None:
        return None
    if row.user is not None and row.user.disabled_at is not None:
        return None
    return row


def end_session(key: str | None) -> None:
    """Sign out: the session with this key ends now, on every node (idempotent)."""
    row = session_for(key)
    if row is not None:
        row.ended_at = utcnow()
        db.session.commit()


def revoke_token(token: ApiToken) -> None:
    """Revoke a token from now on (idempotent)."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def clinic_required(view):
    """Let the view run only for a valid clinic token; the clinic is ``g.clinic``."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token = bearer_token()
        if token is None:
            abort(401, message="Send a clinic token as 'Authorization: Bearer <token>'.")
        if auth_failures_exhausted():
            abort(429, message="Too many failed authentications from your address. "
                               "Please wait a minute and try again.")
        row = token_for(token)
        if row is None:
            record_auth_failure()
            abort(401, message="The clinic token is not valid or has been revoked.")
        g.clinic = row.clinic
        set_actor(Actor(channel="api", token_id=row.id))
        return view(*args, **kwargs)

    return wrapper


def operator_required(view):
    """Let the API view run only for an operator's signed-in session (the pages' session
    cookie; there are no operator tokens): none 401, a clinic's session or any bearer
    token 403. The operator is ``g.user``."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if bearer_token() is not None:
            abort(403, message="Clinic tokens cannot read operator figures. Sign in as an "
                               "operator on /clinic/sign-in and send that session's cookie.")
        live = session_for(session.get("key"))
        if live is None:
            abort(401, message="Sign in as an operator on /clinic/sign-in and send that "
                               "session's cookie.")
        if live.user is None or live.user.role != "operator":
            abort(403, message="Only the directory's operators can read this.")
        g.user = live.user
        set_actor(Actor(channel="api", user_id=live.user_id))
        return view(*args, **kwargs)

    return wrapper
