"""Clinics and their API tokens, as plain operations used by the API, the pages and the CLI.

Creating a clinic (with its first token), issuing, listing and revoking tokens.
A token is shown once, when issued; only its hash is stored (``referral.auth``).
"""

from __future__ import annotations

from sqlalchemy import func, select

from .accounts import log_activity
from .auth import issue_token, revoke_token
from .errors import Conflict, Invalid, NotFound
from .extensions import db
from .models import ApiToken, Clinic, Provider
from .npi import is_valid_npi


def create_clinic(name: str, *, email: str | None = None, phone: str | None = None,
                  organization_npi: str | None = None) -> tuple[Clinic, str]:
    """Create a clinic and its first token; return the clinic and the token (shown once)."""
    name = " ".join((name or "").split())
    if not name:
        raise Invalid("A clinic needs a name.", {"name": ["Must not be blank."]})
    if organization_npi and not is_valid_npi(organization_npi):
        raise Invalid("Not a valid NPI (10 digits, check digit).",
                      {"organization_npi": ["Not a valid NPI."]})
    if organization_npi and db.session.scalar(
            select(Clinic).where(Clinic.organization_npi == organization_npi)):
        raise Conflict("A clinic with this organization NPI exists already.",
                       {"organization_npi": ["Already registered."]})
    clinic = Clinic(name=name, email=email, phone=phone, organization_npi=organization_npi)
    db.session.add(clinic)
    _, token = issue_token(clinic, label="first token")
    db.session.commit()
    return clinic, token


def clinic_by_id(clinic_id: int) -> Clinic:
    """A clinic by id (operators and the CLI)."""
    clinic = db.session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"No clinic has id {clinic_id}.")
    return clinic


def new_token(clinic: Clinic, label: str | None = None) -> tuple[ApiToken, str]:
    """Issue another token for ``clinic``; return the row and the token (shown once)."""
    row, plaintext = issue_token(clinic, label=label)
    db.session.flush()
    log_activity("token_issued", clinic.id, {"token_id": row.id})
    db.session.commit()
    return row, plaintext


def clinic_tokens(clinic: Clinic) -> list[ApiToken]:
    """The clinic's tokens, oldest first (prefixes only; tokens are never stored)."""
    return sorted(clinic.tokens, key=lambda token: token.id)


def revoke_clinic_token(token_id: int, clinic: Clinic | None = None) -> ApiToken:
    """Revoke a token (of ``clinic`` when given: another clinic's token is not found)."""
    row = db.session.get(ApiToken, token_id)
    if row is None or (clinic is not None and row.clinic_id != clinic.id):
        raise NotFound(f"{'Your clinic has' if clinic else 'There is'} no token {token_id}.")
    revoke_token(row)
    log_activity("token_revoked", row.clinic_id, {"token_id": row.id})
    db.session.commit()
    return row


def clinics_with_counts() -> list[tuple[Clinic, int]]:
    """Every clinic with how many listings it keeps, by id."""
    counts = dict(db.session.execute(
        select(Provider.clinic_id, func.count()).group_by(Provider.clinic_id)).all())
    return [(clinic, counts.get(clinic.id, 0))
            for clinic in db.session.scalars(select(Clinic).order_by(Clinic.id))]
