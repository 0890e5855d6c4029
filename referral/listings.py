"""Operations on provider listings, as plain functions.

Creating, updating, deactivating, verifying and bulk-upserting a clinic's
listings, and the audit trail (the rules themselves are in ``listing_rules``).
Views and CLI commands only parse input, call these and dump the result; these
functions raise the domain errors of ``referral.errors`` and never know about HTTP.

Every write is a read-modify-write of the listing's row, made safe under
concurrency by its row version (``referral.models``): the rules are checked on the
version that was read, and the UPDATE is saved only if that is still the stored
version, so the stored listing always satisfies them. A writer that lost the race
gets ``Conflict`` and nothing is written. Callers may also name the version they
expect (``expected_versions``, from HTTP ``If-Match``); another version answers
``PreconditionFailed``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from .accounts import require_approved
from .actors import current_actor
from .errors import Conflict, Invalid, NotFound, PreconditionFailed, database_conflict
from .extensions import db
from .geo import ZipGeocoder, locate_practice, lookup_zip
from .listing_rules import listing_problems, role_for_provider_type
from .models import Clinic, Provider, ProviderAudit, utcnow
from .schemas.listings import LISTING_DEFAULTS, LISTING_FIELDS

_default_geocoder = ZipGeocoder()


# ---------------------------------------------------------------------------
# Completing and comparing listing values


def complete_listing(values: dict, geocoder=None) -> dict:
    """Fill derived fields of valid listing ``values``: role, licensed states, city, coordinates."""
    values = dict(values)
    values.setdefault("role", role_for_provider_type(values["provider_type"]))
    if not values.get("licensed_states") and values.get("state"):
        values["licensed_states"] = [values["state"]]
    if values.get("zip"):
        place = lookup_zip(values["zip"])
        if not values.get("city") and place is not None:
            values["city"] = place.city
        if values.get("latitude") is None:
            found = locate_practice(geocoder or _default_geocoder,
                                    address=values.get("address_line1"), city=values.get("city"),
                                    state=values.get("state"), zip_code=values["zip"])
            if found:
                values["latitude"], values["longitude"] = found
    else:
        values["latitude"] = values["longitude"] = None
    return values


def listing_values(provider: Provider) -> dict:
    """The clinic-set fields of a listing as a plain dict of canonical values."""
    return {field: getattr(provider, field) for field in LISTING_FIELDS}


def full_listing(values: dict) -> dict:
    """``values`` with every listing field present (absent ones at their defaults)."""
    return {field: values.get(field, _default(field)) for field in LISTING_FIELDS}


def _default(field: str):
    value = LISTING_DEFAULTS.get(field)
    return list(value) if isinstance(value, list) else value


def listing_diff(before: dict, after: dict) -> dict:
    """``{field: {"old": ..., "new": ...}}`` for each field whose value changed."""
    return {field: {"old": before.get(field), "new": after.get(field)}
            for field in after if before.get(field) != after.get(field)}


def record_audit(provider: Provider, clinic: Clinic | None, action: str, changes: dict,
                 source: str = "api") -> None:
    """Add an audit entry for ``provider`` to the session, with who acted and through which
    channel (``referral.actors``; an NPPES import is always the ``import`` channel)."""
    actor = current_actor()
    channel = "import" if source == "nppes" else actor.channel
    db.session.add(ProviderAudit(provider=provider, clinic_id=clinic.id if clinic else None,
                                 action=action, changes=jsonable_changes(changes), source=source,
                                 user_id=actor.user_id, token_id=actor.token_id,
                                 channel=channel))


def jsonable_changes(changes: dict) -> dict:
    """Audit changes as JSON values (times as ISO 8601 text)."""
    def plain(value):
        return value.isoformat() if isinstance(value, dt.datetime) else value
    return {field: {side: plain(value) for side, value in change.items()}
            for field, change in changes.items()}


# ---------------------------------------------------------------------------
# Reading


def public_provider(provider_id: int) -> Provider:
    """A listed listing by id (``Provider.listed``), as anyone may see it."""
    provider = db.session.get(Provider, provider_id)
    if provider is None or not provider.listed:
        raise NotFound(f"No active provider listing has id {provider_id}.")
    return provider


def clinic_provider(clinic: Clinic, provider_id: int) -> Provider:
    """One of ``clinic``'s own listings (active or not); another clinic's answers not found."""
    provider = db.session.get(Provider, provider_id)
    if provider is None or provider.clinic_id != clinic.id:
        raise NotFound(f"Your clinic has no provider listing with id {provider_id}.")
    return provider


def paginate(query, page: int, per_page: int) -> dict:
    """Run ``query`` for one page: ``{"items", "total", "page", "per_page"}``."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": items, "total": total, "page": page, "per_page": per_page}


def list_providers(filters: dict, page: int, per_page: int) -> dict:
    """Active listings matching simple equality filters, by last name, paginated."""
    query = select(Provider).where(Provider.listed)
    for field in ("role", "provider_type", "state", "zip", "clinic_id", "accepting_new_patients",
                  "accepts_coordinated_care", "telehealth", "in_person"):
        if field in filters:
            query = query.where(getattr(Provider, field) == filters[field])
    query = query.order_by(Provider.last_name, Provider.first_name, Provider.id)
    return paginate(query, page, per_page)


def clinic_listings(clinic: Clinic, page: int, per_page: int) -> dict:
    """All of a clinic's listings, active or not, by last name."""
    query = (select(Provider).where(Provider.clinic_id == clinic.id)
             .order_by(Provider.last_name, Provider.first_name, Provider.id))
    return paginate(query, page, per_page)


def stale_listings(clinic: Clinic, stale_after_days: int, page: int, per_page: int,
                   now: dt.datetime | None = None) -> dict:
    """A clinic's active listings not verified within ``stale_after_days``, oldest first."""
    cutoff = (now or utcnow()) - dt.timedelta(days=stale_after_days)
    query = (select(Provider)
             .where(Provider.clinic_id == clinic.id, Provider.active.is_(True),
                    or_(Provider.last_verified_at.is_(None), Provider.last_verified_at < cutoff))
             .order_by(Provider.last_verified_at.asc().nulls_first(), Provider.id))
    return paginate(query, page, per_page)


def audit_trail(clinic: Clinic, provider_id: int) -> list[ProviderAudit]:
    """The audit entries of one of the clinic's listings, newest first."""
    provider = clinic_provider(clinic, provider_id)
    return db.session.scalars(select(ProviderAudit).where(ProviderAudit.provider_id == provider.id)
                              .order_by(ProviderAudit.at.desc(), ProviderAudit.id.desc())).all()


# ---------------------------------------------------------------------------
# Writing


def npi_taken_message(existing: Provider, clinic: Clinic) -> str:
    """Why a listing with ``existing``'s NPI cannot be created by ``clinic``."""
    if existing.clinic_id == clinic.id:
        return (f"NPI {existing.npi} is already your listing {existing.id}; "
                "update it with PATCH or a bulk upload.")
    if existing.clinic_id is None:
        return (f"NPI {existing.npi} is in the public registry, unclaimed: claim it "
                "(POST /api/v1/claims, or Claim listings on the clinic pages).")
    return f"NPI {existing.npi} is already listed by another clinic."


def commit_or_conflict() -> None:
    """Commit; a write the database refuses becomes ``Conflict`` with nothing kept: another
    writer saved one of these listings first (row version) or took the NPI (unique key)."""
    try:
        db.session.commit()
    except (StaleDataError, IntegrityError) as error:
        db.session.rollback()
        raise database_conflict(error) from None


def check_expected_version(provider: Provider, expected_versions: Collection[int] | None) -> None:
    """Raise ``PreconditionFailed`` unless the listing is at one of ``expected_versions``
    (None: the caller names no version)."""
    if expected_versions is not None and provider.version not in expected_versions:
        raise PreconditionFailed(
            f"Listing {provider.id} has changed since the version you name; nothing was "
            "written. Reload it and try again.",
            {"headers": {"If-Match": [f"The current version is {provider.version}."]}})


def writable_provider(clinic: Clinic, provider_id: int,
                      expected_versions: Collection[int] | None = None) -> Provider:
    """One of ``clinic``'s listings, about to be changed, at an expected version."""
    provider = clinic_provider(clinic, provider_id)
    check_expected_version(provider, expected_versions)
    return provider


def create_provider(clinic: Clinic, values: dict, geocoder=None) -> Provider:
    """Create a listing for ``clinic`` from loaded ``values``; it counts as verified now."""
    require_approved(clinic)
    existing = db.session.scalar(select(Provider).where(Provider.npi == values["npi"]))
    if existing is not None:
        raise Conflict(npi_taken_message(existing, clinic), {"npi": ["Already listed."]})
    values = full_listing(complete_listing(values, geocoder))
    provider = Provider(**values, clinic_id=clinic.id, last_verified_at=utcnow(), active=True)
    db.session.add(provider)
    record_audit(provider, clinic, "create", listing_diff({}, values))
    commit_or_conflict()
    return provider


def update_provider(clinic: Clinic, provider_id: int, changes: dict, geocoder=None,
                    expected_versions: Collection[int] | None = None) -> Provider:
    """Apply a partial update; every rule is checked on the merged listing.

    The merged listing is the version read here plus ``changes``; it is saved only if
    that version is still the stored one (otherwise ``Conflict``), so the rules hold
    for what is stored.
    """
    provider = writable_provider(clinic, provider_id, expected_versions)
    before = listing_values(provider)
    reactivate = changes.pop("active", None)
    merged = {**before, **changes}
    if "zip" in changes and "latitude" not in changes:
        merged["latitude"] = merged["longitude"] = None  # re-derive from the new ZIP
    if "provider_type" in changes and "role" not in changes:
        merged["role"] = role_for_provider_type(merged["provider_type"])
    if "state" in changes and "licensed_states" not in changes and before["state"] in (
            before["licensed_states"] or []) and len(before["licensed_states"]) == 1:
        merged["licensed_states"] = []  # it was only the default: follow the new state
    problems = listing_problems(merged)
    if problems:
        raise Invalid("The updated listing would not be valid.", problems)
    after = complete_listing(merged, geocoder)
    diff = listing_diff(before, after)
    for field, change in diff.items():
        setattr(provider, field, change["new"])
    if reactivate is not None and reactivate != provider.active:
        diff["active"] = {"old": provider.active, "new": reactivate}
        provider.active = reactivate
    if diff:
        old_verified = provider.last_verified_at
        provider.last_verified_at = utcnow()
        diff["last_verified_at"] = {"old": old_verified, "new": provider.last_verified_at}
        resolve_reports(provider, "fixed", diff)
        record_audit(provider, clinic, "update", diff)
        commit_or_conflict()
    return provider


def deactivate_provider(clinic: Clinic, provider_id: int,
                        expected_versions: Collection[int] | None = None) -> Provider:
    """Hide a listing from patients (kept, with its history; PATCH active=true restores it)."""
    provider = writable_provider(clinic, provider_id, expected_versions)
    if provider.active:
        provider.active = False
        record_audit(provider, clinic, "deactivate", {"active": {"old": True, "new": False}})
        commit_or_conflict()
    return provider


def resolve_reports(provider: Provider, resolution: str, diff: dict) -> None:
    """An edit or a verification answers the listing's open patient reports
    (``referral.reports``): they are resolved and the listing is no longer reported."""
    from .reports import close_open_reports

    resolved = close_open_reports(provider, resolution, None)
    if resolved:
        diff["reports_resolved"] = {"old": resolved, "new": 0}


def verify_provider(clinic: Clinic, provider_id: int,
                    expected_versions: Collection[int] | None = None) -> Provider:
    """The clinic attests that the listing is current: ``last_verified_at = now``.

    The attestation is of the version read here: if another change is saved first,
    ``Conflict`` (the clinic should look at the listing again).
    """
    provider = writable_provider(clinic, provider_id, expected_versions)
    old = provider.last_verified_at
    provider.last_verified_at = utcnow()
    diff = {"last_verified_at": {"old": old, "new": provider.last_verified_at}}
    resolve_reports(provider, "verified", diff)
    record_audit(provider, clinic, "verify", diff)
    commit_or_conflict()
    return provider
