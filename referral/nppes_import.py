"""Upserting classified NPPES records into the directory, in committed batches.

NPPES owns names, credentials, taxonomy codes, role, provider type, licensed
states and the practice address (and its phone): those are updated. Everything
a clinic enters (modalities, fees, telehealth, insurance, coordinated care,
verification, ...) is never overwritten. A listing whose NPI is deactivated
becomes inactive. New listings from NPPES are unclaimed (no clinic), not
verified and not marked as accepting patients, so patient search does not show
them until a clinic claims and verifies them. Running the same file twice
changes nothing the second time; an interrupted run keeps whole batches and a
rerun continues.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from sqlalchemy import select

from .extensions import db
from .listings import listing_diff, record_audit
from .models import Clinic, Provider
from .nppes import Classified, NppesRecord, classify

#: Fields of a listing that NPPES owns (and so an import may change).
NPPES_FIELDS = ("first_name", "last_name", "credentials", "role", "provider_type",
                "taxonomy_codes", "licensed_states", "address_line1", "address_line2", "city",
                "state", "zip", "latitude", "longitude", "phone")
BATCH = 1000


def import_records(records: Iterable[NppesRecord], *, states: set[str] | None = None,
                   limit: int | None = None, dry_run: bool = False,
                   progress: Callable[[int], None] | None = None) -> Counter:
    """Classify and upsert ``records``; return counts per category and skip reason."""
    counts: Counter = Counter()
    batch: list[Classified] = []
    for index, record in enumerate(records):
        if limit is not None and index >= limit:
            break
        counts["rows"] += 1
        found = classify(record, states)
        if found.kind == "skip":
            counts[f"skipped: {found.reason}"] += 1
        else:
            batch.append(found)
        if len(batch) >= BATCH:
            _write(batch, counts, dry_run)
            batch = []
        if progress and counts["rows"] % 1000 == 0:
            progress(1000)
    if batch:
        _write(batch, counts, dry_run)
    if progress:
        progress(counts["rows"] % 1000)
    return counts


def _write(batch: list[Classified], counts: Counter, dry_run: bool) -> None:
    npis = [item.npi for item in batch]
    providers = {p.npi: p for p in db.session.scalars(select(Provider)
                                                      .where(Provider.npi.in_(npis)))}
    clinics = {c.organization_npi: c for c in db.session.scalars(
        select(Clinic).where(Clinic.organization_npi.in_(npis)))}
    seen: set[str] = set()
    for item in batch:
        if item.npi in seen:  # the same NPI twice in one batch: the later row wins next run
            counts["skipped: duplicate_npi"] += 1
            continue
        seen.add(item.npi)
        if item.kind == "clinic":
            _upsert_clinic(item, clinics.get(item.npi), counts)
        elif item.kind == "deactivated":
            provider = providers.get(item.npi)
            if provider is not None and provider.active:
                provider.active = False
                record_audit(provider, None, "deactivate", {"active": {"old": True,
                                                                       "new": False}},
                             source="nppes")
                counts["deactivated"] += 1
            else:
                counts["deactivated (not listed or already inactive)"] += 1
        else:
            _upsert_provider(item, providers.get(item.npi), counts)
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()


def _upsert_provider(item: Classified, provider: Provider | None, counts: Counter) -> None:
    values = {field: item.values[field] for field in NPPES_FIELDS}
    if provider is None:
        provider = Provider(npi=item.npi, **values, gender=item.values.get("sex"),
                            modalities=[], concerns=[], age_groups=[], languages=[],
                            insurance=[], telehealth=False, in_person=bool(values["zip"]),
                            sliding_scale=False, accepting_new_patients=False,
                            accepts_coordinated_care=False, active=True, clinic_id=None,
                            last_verified_at=None)
        db.session.add(provider)
        record_audit(provider, None, "create", listing_diff({}, values), source="nppes")
        counts[f"{item.kind}s created"] += 1
        return
    before = {field: getattr(provider, field) for field in NPPES_FIELDS}
    diff = listing_diff(before, values)
    if not diff:
        counts[f"{item.kind}s unchanged"] += 1
        return
    for field, change in diff.items():
        setattr(provider, field, change["new"])
    record_audit(provider, None, "update", diff, source="nppes")
    counts[f"{item.kind}s updated"] += 1


def _upsert_clinic(item: Classified, clinic: Clinic | None, counts: Counter) -> None:
    if clinic is None:
        db.session.add(Clinic(**item.values, status="unclaimed"))
        counts["clinics created (unclaimed)"] += 1
        return
    if clinic.status != "unclaimed":  # a clinic runs it now: its own name and phone stay
        counts["clinics unchanged"] += 1
        return
    changed = False
    for field in ("name", "phone"):
        if item.values[field] and getattr(clinic, field) != item.values[field]:
            setattr(clinic, field, item.values[field])
            changed = True
    counts["clinics updated" if changed else "clinics unchanged"] += 1
