"""Bulk uploads of a clinic's listings: upsert by NPI from JSON or CSV, all or nothing."""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError
from sqlalchemy import select

from .accounts import require_approved
from .errors import Invalid
from .extensions import db
from .listing_csv import rows_from_csv
from .listings import (
    commit_or_conflict,
    complete_listing,
    full_listing,
    listing_diff,
    listing_values,
    npi_taken_message,
    record_audit,
    resolve_reports,
)
from .models import Clinic, Provider, utcnow
from .schemas.listings import load_listing_row


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


def upload_listings(clinic: Clinic, *, rows=None, csv: bytes | str | None = None,
                    max_rows: int, geocoder, dry_run: bool = False,
                    verify: bool = False) -> BulkResult:
    """The bulk upload, one operation for the API, the clinic page and the CLI.

    The listings come as ``rows`` (decoded JSON: a list of objects) or as ``csv``
    text. The upload must have between 1 and ``max_rows`` rows; every row is then
    validated before anything is written (``bulk_upsert``).
    """
    if csv is not None:
        rows = rows_from_csv(csv)
    if not isinstance(rows, list):
        raise Invalid("Send a JSON array of listings.", {"json": ["Not a JSON array."]})
    if not rows:
        raise Invalid("The upload has no rows.", {"rows": []})
    if len(rows) > max_rows:
        raise Invalid(f"At most {max_rows} listings per upload; this one has {len(rows)}.",
                      {"rows": []})
    return bulk_upsert(clinic, rows, dry_run=dry_run, verify=verify, geocoder=geocoder)


def bulk_upsert(clinic: Clinic, rows: list, *, dry_run: bool = False, verify: bool = False,
                geocoder=None) -> BulkResult:
    """Upsert a clinic's listings by NPI, all or nothing.

    ``rows`` are raw input rows (JSON objects or CSV lines as dicts). Every row is
    validated before anything is written; if any row fails, ``Invalid`` lists every
    row's errors (rows numbered from 1) and nothing is written.
    """
    require_approved(clinic)
    errors: list[dict] = []
    loaded: list[tuple[int, dict]] = []
    first_row_of_npi: dict[str, int] = {}
    for number, raw in enumerate(rows, start=1):
        if not isinstance(raw, dict):
            errors.append({"row": number, "field": "_row", "message": "A row is a JSON object."})
            continue
        try:
            values = load_listing_row(raw)
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
                           "message": npi_taken_message(provider, clinic)})
    if errors:
        errors.sort(key=lambda e: e["row"])
        raise Invalid(f"{len({e['row'] for e in errors})} of {len(rows)} rows are not valid; "
                      "nothing was written.", {"rows": errors})

    result = BulkResult(dry_run=dry_run)
    now = utcnow()
    for _, values in loaded:
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
        action = "update" if len(diff) > 1 else "verify"
        resolve_reports(provider, "fixed" if action == "update" else "verified", diff)
        record_audit(provider, clinic, action, diff, source="bulk")
    if dry_run:
        db.session.rollback()
    else:
        commit_or_conflict()
    return result
