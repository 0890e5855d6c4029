"""Load generated demo data into the database in batches (bulk inserts, not ORM objects).

Each batch commits on its own (with its change-log rows, so the search index
follows), so an interrupted run keeps whole batches only, and a rerun with the
same seed skips what is already there and continues.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import insert, select

from referral.extensions import db
from referral.models import Clinic, Provider, utcnow
from referral.search_sync import log_changes

from .generator import DemoClinic, clinic_count, generate_clinics, generate_provider

BATCH_SIZE = 5000


def ensure_clinics(clinics: list[DemoClinic]) -> list[int]:
    """Create the demo clinics that are missing (by organization NPI); return all ids in order."""
    npis = [c.organization_npi for c in clinics]
    known: dict[str, int] = {}
    for start in range(0, len(npis), 1000):
        chunk = npis[start:start + 1000]
        known.update(db.session.execute(
            select(Clinic.organization_npi, Clinic.id)
            .where(Clinic.organization_npi.in_(chunk))).all())
    now = utcnow()
    missing = [{"name": c.name, "organization_npi": c.organization_npi, "email": c.email,
                "phone": c.phone, "created_at": now}
               for c in clinics if c.organization_npi not in known]
    for start in range(0, len(missing), BATCH_SIZE):
        rows = db.session.execute(
            insert(Clinic).returning(Clinic.organization_npi, Clinic.id,
                                     sort_by_parameter_order=True),
            missing[start:start + BATCH_SIZE]).all()
        known.update(dict(rows))
    db.session.commit()
    return [known[npi] for npi in npis]


def seed_directory(count: int, seed: int, *, now: dt.datetime | None = None,
                   progress: Callable[[int], None] | None = None) -> dict:
    """Insert ``count`` generated providers (and their clinics); return counts.

    ``progress(n)`` is called after each committed batch with the rows it covered.
    Providers whose NPI already exists are skipped, so reruns are safe.
    """
    now = now or utcnow()
    clinics = generate_clinics(clinic_count(count), seed)
    clinic_ids = ensure_clinics(clinics)
    created = skipped = 0
    for start in range(0, count, BATCH_SIZE):
        batch = []
        for index in range(start, min(count, start + BATCH_SIZE)):
            clinic_index, values = generate_provider(seed, index, clinics, now)
            values.update(clinic_id=clinic_ids[clinic_index], active=True,
                          created_at=now, updated_at=now)
            batch.append(values)
        present = set(db.session.scalars(
            select(Provider.npi).where(Provider.npi.in_([row["npi"] for row in batch]))))
        fresh = [row for row in batch if row["npi"] not in present]
        if fresh:
            new_ids = db.session.execute(insert(Provider).returning(Provider.id), fresh).scalars()
            log_changes(db.session.connection(), list(new_ids))
        db.session.commit()
        created += len(fresh)
        skipped += len(batch) - len(fresh)
        if progress:
            progress(len(batch))
    return {"clinics": len(clinic_ids), "created": created, "skipped": skipped}
