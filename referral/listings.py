"""Business rules of provider listings, as plain functions.

Creating, updating, deactivating, verifying and bulk-upserting a clinic's
listings, the rules that span several fields, and the audit trail. Views only
parse input, call these and dump the result; these functions raise the domain
errors of ``referral.errors`` and never know about HTTP.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from marshmallow import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from .errors import Conflict, Invalid, NotFound
from .extensions import db
from .geo import ZipGeocoder, locate_practice, lookup_zip
from .models import LISTING_FIELDS, Clinic, Provider, ProviderAudit, utcnow
from .taxonomy import EXCLUDED_CODES, provider_type_for_code, role_for_codes
from .vocab import PROVIDER_TYPES

_default_geocoder = ZipGeocoder()


# ---------------------------------------------------------------------------
# Rules


def role_for_provider_type(provider_type: str) -> str:
    """The role (therapist or prescriber) of a provider type."""
    return PROVIDER_TYPES[provider_type]


def is_stale(last_verified_at: dt.datetime | None, stale_after_days: int,
             now: dt.datetime | None = None) -> bool:
    """True when a listing was never verified or not within ``stale_after_days``."""
    if last_verified_at is None:
        return True
    return (now or utcnow()) - last_verified_at > dt.timedelta(days=stale_after_days)


def listing_problems(values: dict) -> dict[str, list[str]]:
    """Rules that involve several fields of a complete listing; ``{field: [message]}``.

    ``values`` holds canonical values (as loaded by ``ListingSchema``); absent keys
    are treated as not given.
    """
    problems: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    provider_type = values.get("provider_type")
    type_role = PROVIDER_TYPES.get(provider_type) if provider_type else None
    role = values.get("role") or type_role
    if values.get("role") and type_role and values["role"] != type_role:
        add("role", f"A {provider_type.replace('_', ' ')} is a {type_role}, not a {values['role']}.")

    state = values.get("state")
    licensed = list(values.get("licensed_states") or ([state] if state else []))
    codes = values.get("taxonomy_codes") or []
    for code in codes:
        if code in EXCLUDED_CODES:
            add("taxonomy_codes", f"{code} ({EXCLUDED_CODES[code]}) is not listed in this directory.")
        elif provider_type_for_code(code, licensed) is None:
            add("taxonomy_codes", f"{code} is not a behavioral-health therapist or prescriber code.")
    code_role = role_for_codes(codes, licensed)
    if code_role and role and code_role != role:
        add("taxonomy_codes",
            f"These taxonomy codes make the provider a {code_role}, but the listing says {role}.")

    fee_min, fee_max = values.get("fee_min"), values.get("fee_max")
    if (fee_min is None) != (fee_max is None):
        add("fee_max" if fee_max is None else "fee_min", "Give both fee_min and fee_max, or neither.")
    elif fee_min is not None and fee_min > fee_max:
        add("fee_min", "fee_min must not be more than fee_max.")

    if (values.get("latitude") is None) != (values.get("longitude") is None):
        add("latitude", "Give both latitude and longitude, or neither.")

    telehealth, in_person = values.get("telehealth", False), values.get("in_person", True)
    if not telehealth and not in_person:
        add("in_person", "A listing offers in-person care, telehealth, or both.")
    if in_person:
        for field in ("address_line1", "zip", "state"):
            if not values.get(field):
                add(field, "Required for in-person care.")
    zip_code = values.get("zip")
    if zip_code and state:
        place = lookup_zip(zip_code)
        if place is not None and place.state != state:
            add("zip", f"ZIP code {zip_code} is in {place.state}, not {state}.")
    if zip_code and not state:
        add("state", "Give the state of the practice ZIP code.")
    if telehealth and not licensed:
        add("licensed_states", "Telehealth needs the states where the provider is licensed.")
    if in_person and state and values.get("licensed_states") and state not in licensed:
        add("licensed_states", f"An in-person practice in {state} must be licensed in {state}.")
    return problems


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
    defaults = {"taxonomy_codes": [], "modalities": [], "concerns": [], "age_groups": [],
                "languages": [], "licensed_states": [], "insurance": [], "telehealth": False,
                "in_person": True, "sliding_scale": False, "accepting_new_patients": True,
                "accepts_coordinated_care": False}
    return {field: values.get(field, defaults.get(field)) for field in LISTING_FIELDS}


def listing_diff(before: dict, after: dict) -> dict:
    """``{field: {"old": ..., "new": ...}}`` for each field whose value changed."""
    return {field: {"old": before.get(field), "new": after.get(field)}
            for field in after if before.get(field) != after.get(field)}


def record_audit(provider: Provider, clinic: Clinic | None, action: str, changes: dict,
                 source: str = "api") -> None:
    """Add an audit entry for ``provider`` to the session."""
    db.session.add(ProviderAudit(provider=provider, clinic_id=clinic.id if clinic else None,
                                 action=action, changes=_jsonable(changes), source=source))


def _jsonable(changes: dict) -> dict:
    def plain(value):
        return value.isoformat() if isinstance(value, dt.datetime) else value
    return {field: {side: plain(value) for side, value in change.items()}
            for field, change in changes.items()}


# ---------------------------------------------------------------------------
# Reading


def public_provider(provider_id: int) -> Provider:
    """An active listing by id, as anyone may see it."""
    provider = db.session.get(Provider, provider_id)
    if provider is None or not provider.active:
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
    query = select(Provider).where(Provider.active.is_(True))
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


def _npi_taken_message(existing: Provider, clinic: Clinic) -> str:
    if existing.clinic_id == clinic.id:
        return (f"NPI {existing.npi} is already your listing {existing.id}; "
                "update it with PATCH or a bulk upload.")
    return f"NPI {existing.npi} is already listed by another clinic or the public registry."


def commit_or_conflict() -> None:
    """Commit; a unique-key race with another writer (same NPI) becomes a 409, nothing kept."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("Another request changed the same listings at the same time; "
                       "nothing was written. Try again.") from None


def create_provider(clinic: Clinic, values: dict, geocoder=None) -> Provider:
    """Create a listing for ``clinic`` from loaded ``values``; it counts as verified now."""
    existing = db.session.scalar(select(Provider).where(Provider.npi == values["npi"]))
    if existing is not None:
        raise Conflict(_npi_taken_message(existing, clinic), {"npi": ["Already listed."]})
    values = full_listing(complete_listing(values, geocoder))
    provider = Provider(**values, clinic_id=clinic.id, last_verified_at=utcnow(), active=True)
    db.session.add(provider)
    record_audit(provider, clinic, "create", listing_diff({}, values))
    commit_or_conflict()
    return provider


def update_provider(clinic: Clinic, provider_id: int, changes: dict, geocoder=None) -> Provider:
    """Apply a partial update; every rule is checked on the merged listing."""
    provider = clinic_provider(clinic, provider_id)
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
        record_audit(provider, clinic, "update", diff)
        db.session.commit()
    return provider


def deactivate_provider(clinic: Clinic, provider_id: int) -> Provider:
    """Hide a listing from patients (kept, with its history; PATCH active=true restores it)."""
    provider = clinic_provider(clinic, provider_id)
    if provider.active:
        provider.active = False
        record_audit(provider, clinic, "deactivate", {"active": {"old": True, "new": False}})
        db.session.commit()
    return provider


def verify_provider(clinic: Clinic, provider_id: int) -> Provider:
    """The clinic attests that the listing is current: ``last_verified_at = now``."""
    provider = clinic_provider(clinic, provider_id)
    old = provider.last_verified_at
    provider.last_verified_at = utcnow()
    record_audit(provider, clinic, "verify",
                 {"last_verified_at": {"old": old, "new": provider.last_verified_at}})
    db.session.commit()
    return provider


@dataclass
class BulkResult:
    """Counts of a bulk upsert."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dry_run: bool = False


def row_errors(row: int, messages) -> list[dict]:
    """Flatten marshmallow-style messages into ``[{"row", "field", "message"}]``."""
    found = []

    def walk(field: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                name = "_row" if key == "_schema" else str(key)
                if field:
                    name = f"{field}[{key}]" if isinstance(key, int) else f"{field}.{key}"
                walk(name, inner)
        elif isinstance(value, (list, tuple)):
            for inner in value:
                walk(field, inner)
        else:
            found.append({"row": row, "field": field or "_row", "message": str(value)})

    walk("", messages)
    return found


def bulk_upsert(clinic: Clinic, rows: list[dict], *, load_row, dry_run: bool = False,
                verify: bool = False, geocoder=None) -> BulkResult:
    """Upsert a clinic's listings by NPI, all or nothing.

    ``rows`` are raw input rows; ``load_row(raw) -> values`` validates one row and
    raises ``marshmallow.ValidationError``. Every row is validated before anything is
    written; if any row fails, ``Invalid`` lists every row's errors (rows numbered
    from 1) and nothing is written.
    """
    errors: list[dict] = []
    loaded: list[tuple[int, dict]] = []
    first_row_of_npi: dict[str, int] = {}
    for number, raw in enumerate(rows, start=1):
        if not isinstance(raw, dict):
            errors.append({"row": number, "field": "_row", "message": "A row is a JSON object."})
            continue
        try:
            values = load_row(raw)
        except ValidationError as error:
            errors.extend(row_errors(number, error.messages))
            continue
        npi = values["npi"]
        if npi in first_row_of_npi:
            errors.append({"row": number, "field": "npi",
                           "message": f"NPI {npi} is also in row {first_row_of_npi[npi]}."})
            continue
        first_row_of_npi[npi] = number
        loaded.append((number, values))

    existing = {}
    npis = list(first_row_of_npi)
    for start in range(0, len(npis), 500):
        chunk = npis[start:start + 500]
        for provider in db.session.scalars(select(Provider).where(Provider.npi.in_(chunk))):
            existing[provider.npi] = provider
    for number, values in loaded:
        provider = existing.get(values["npi"])
        if provider is not None and provider.clinic_id != clinic.id:
            errors.append({"row": number, "field": "npi",
                           "message": _npi_taken_message(provider, clinic)})
    if errors:
        errors.sort(key=lambda e: e["row"])
        raise Invalid(f"{len({e['row'] for e in errors})} of {len(rows)} rows are not valid; "
                      "nothing was written.", {"rows": errors})

    result = BulkResult(dry_run=dry_run)
    now = utcnow()
    for number, values in loaded:
        after = full_listing(complete_listing(values, geocoder))
        provider = existing.get(values["npi"])
        if provider is None:
            result.created += 1
            if not dry_run:
                provider = Provider(**after, clinic_id=clinic.id, last_verified_at=now, active=True)
                db.session.add(provider)
                record_audit(provider, clinic, "create", listing_diff({}, after), source="bulk")
            continue
        diff = listing_diff(listing_values(provider), after)
        if not provider.active:
            diff["active"] = {"old": False, "new": True}
        if diff:
            result.updated += 1
        else:
            result.unchanged += 1
        if dry_run or not (diff or verify):
            continue
        for field, change in diff.items():
            setattr(provider, field, change["new"])
        diff["last_verified_at"] = {"old": provider.last_verified_at, "new": now}
        provider.last_verified_at = now
        record_audit(provider, clinic, "update" if len(diff) > 1 else "verify", diff, source="bulk")
    if dry_run:
        db.session.rollback()
    else:
        commit_or_conflict()
    return result
