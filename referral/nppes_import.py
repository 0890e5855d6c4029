"""Upserting classified NPPES records into the directory, in committed batches.

NPPES owns names, credentials, taxonomy codes, role, provider type, licensed
states and the practice address (and its phone): those are updated. Everything
a clinic enters (modalities, fees, telehealth, insurance, coordinated care,
verification, ...) is never overwritten. A listing whose NPI is deactivated
becomes inactive. New listings from NPPES are unclaimed (no clinic), not
verified and not marked as accepting patients: registry records, not listed, so
they are in neither part of the search index (``search_sync.LISTED``) until a
clinic claims them, and only changes to listed listings write change-log rows.
Running the same file twice
changes nothing the second time; an interrupted run keeps whole batches and a
rerun continues.

Writes are set-based (SQLAlchemy Core), a few statements per batch of rows whatever
its size: one read of the batch's listings and clinics (the NPIs as one array parameter on
PostgreSQL), one insert of the new listings (``COPY`` on PostgreSQL, else an executemany)
and a read of their ids, one executemany of the changed ones, one insert of their audit
rows (``COPY`` on PostgreSQL) and one of their change-log rows (the search index's
outbox). An unchanged listing, the common case on a rerun, costs one tuple comparison.
A listing is updated only at the version that was read (``WHERE version = :read``,
bumping it, like every other writer): one a clinic changed meanwhile is read again and
retried, so the import never overwrites a concurrent edit and never fails on one.

``import_file`` reads and classifies a file in a second process while this one writes
(both cores busy; at most ``QUEUED`` batches in between, so memory stays constant);
``import_records`` does both in this process (saved registry responses, tests).
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import JSON, String, Text, any_, bindparam, cast, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from .actors import current_actor
from .extensions import db
from .listings import jsonable_changes, listing_diff
from .models import Clinic, Provider, ProviderAudit, utcnow
from .nppes import Classified, NppesRecord, classify, read_csv
from .search_sync import log_changes

#: Fields of a listing that NPPES owns (and so an import may change).
NPPES_FIELDS = ("first_name", "last_name", "credentials", "role", "provider_type",
                "taxonomy_codes", "licensed_states", "address_line1", "address_line2", "city",
                "state", "zip", "latitude", "longitude", "phone")
#: Classified rows written per committed batch.
BATCH = 5000
#: Classified batches that may wait between the reading process and the writer.
QUEUED = 2
#: How often rows that a clinic changed while the batch was written are read again.
RETRIES = 3

#: The listing's own columns read before NPPES's fields in a batch's read.
_STORED_KEYS = ("id", "npi", "version", "clinic_id", "active")
_STORED_FROM = len(_STORED_KEYS)
#: NPPES's fields kept as JSON (lists of codes).
_JSON_FIELDS = frozenset({"taxonomy_codes", "licensed_states"})
_provider = Provider.__table__
_clinic = Clinic.__table__
_audit = ProviderAudit.__table__
#: What a new listing from NPPES has besides NPPES's fields: unclaimed, not verified, not
#: accepting patients, nothing a clinic enters.
NEW_LISTING = {"modalities": [], "concerns": [], "age_groups": [], "languages": [],
               "specialties": [], "insurance": [], "telehealth": False, "sliding_scale": False,
               "accepting_new_patients": False, "accepts_coordinated_care": False,
               "active": True, "clinic_id": None, "last_verified_at": None, "bio": None,
               "email": None, "website": None, "fee_min": None, "fee_max": None,
               "wait_days": None, "address_line2": None, "version": 1}


def classified_batches(records: Iterable[NppesRecord], *, states: set[str] | None = None,
                       limit: int | None = None,
                       size: int = BATCH) -> Iterator[tuple[list[Classified], Counter]]:
    """Classify ``records`` (at most ``limit``): batches of ``size`` records to write, each
    with the counts of the rows read for it (rows, skips by reason); no database."""
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
        if len(batch) >= size:
            yield batch, counts
            batch, counts = [], Counter()
    if batch or counts:
        yield batch, counts


def import_records(records: Iterable[NppesRecord], *, states: set[str] | None = None,
                   limit: int | None = None, dry_run: bool = False,
                   progress: Callable[[int], None] | None = None) -> Counter:
    """Classify and upsert ``records`` in this process; return counts per category and skip
    reason. ``progress`` is called with the rows read since its last call."""
    counts: Counter = Counter()
    for batch, read in classified_batches(records, states=states, limit=limit):
        counts.update(read)
        if batch:
            _write(batch, counts, dry_run)
        if progress:
            progress(read["rows"])
    return counts


def import_file(path: str, *, states: set[str] | None = None, limit: int | None = None,
                dry_run: bool = False, progress: Callable[[int], None] | None = None,
                parallel: bool = True) -> Counter:
    """Import an NPPES data file: a second process reads and classifies it (the CPU-bound
    part) while this one writes, batch by batch, so both cores work; at most ``QUEUED``
    batches wait between them (constant memory). The batches, their order and every rule
    are those of ``import_records``. ``progress`` is called with the characters read since
    its last call. Without the ``fork`` start method (or with ``parallel=False``) the
    file is read in this process. Raises ``nppes.HeaderError`` for a file that is not NPPES.
    """
    if not parallel or "fork" not in multiprocessing.get_all_start_methods():
        counts: Counter = Counter()
        with _open(path) as handle:
            lines = _counted(handle, progress)
            for batch, read in classified_batches(read_csv(lines), states=states, limit=limit):
                counts.update(read)
                if batch:
                    _write(batch, counts, dry_run)
        return counts
    context = multiprocessing.get_context("fork")  # the ZIP table and rules are shared as is
    queue = context.Queue(maxsize=QUEUED)
    reader = context.Process(target=_read_into, args=(path, states, limit, queue), daemon=True)
    reader.start()
    counts = Counter()
    try:
        while True:
            message = queue.get()
            if message is None:
                break
            if isinstance(message, BaseException):
                raise message
            rows, read, characters = message
            batch = [Classified(kind, npi, None, values) for kind, npi, values in rows]
            counts.update(read)
            if batch:
                _write(batch, counts, dry_run)
            if progress:
                progress(characters)
    finally:
        if reader.is_alive():
            reader.terminate()  # stopped early (an error, an interrupt): the reader too
        reader.join()
    return counts


def _open(path: str):
    """The file as the CMS writes it (UTF-8, a byte-order mark tolerated)."""
    return open(path, newline="", encoding="utf-8-sig", errors="replace")


def _counted(handle, progress: Callable[[int], None] | None) -> Iterator[str]:
    """The lines of ``handle``, reporting their length to ``progress``."""
    for line in handle:
        if progress:
            progress(len(line))
        yield line


def _read_into(path: str, states: set[str] | None, limit: int | None, queue) -> None:
    """The reader process: classified batches of ``path`` into ``queue`` with the counts and
    characters read for each, then ``None``; an error is put instead and ends it."""
    try:
        characters = 0

        def lines(handle):
            nonlocal characters
            for line in handle:
                characters += len(line)
                yield line

        with _open(path) as handle:
            for batch, read in classified_batches(read_csv(lines(handle)), states=states,
                                                  limit=limit):
                # plain tuples: unpickling 5,000 dataclasses cost the writer ~0.1 s a batch
                queue.put(([(item.kind, item.npi, item.values) for item in batch], read,
                           characters))
                characters = 0
        queue.put(None)
    except Exception as error:  # noqa: BLE001 - handed to the writer, which raises it
        queue.put(error)


def _write(batch: list[Classified], counts: Counter, dry_run: bool) -> None:
    """Write one batch in one transaction (rolled back on a dry run)."""
    listings: dict[str, Classified] = {}
    clinics: dict[str, Classified] = {}
    deactivated: list[str] = []
    for item in batch:
        if item.npi in listings or item.npi in clinics or item.npi in deactivated:
            # the same NPI twice in one batch: the later row wins next run
            counts["skipped: duplicate_npi"] += 1
        elif item.kind == "clinic":
            clinics[item.npi] = item
        elif item.kind == "deactivated":
            deactivated.append(item.npi)
        else:
            listings[item.npi] = item
    session = db.session
    changed: list[int] = []
    audits: list[dict] = []
    pending = dict(listings)
    for _ in range(RETRIES):
        conflicts = _upsert_listings(session, pending, counts, changed, audits)
        if not conflicts:
            break
        pending = {npi: listings[npi] for npi in conflicts}
    else:
        counts["skipped: changed by a clinic during the import (next run)"] += len(pending)
    _deactivate(session, deactivated, counts, changed, audits)
    _upsert_clinics(session, clinics, counts)
    if audits:
        actor = current_actor()
        now = utcnow()
        _insert_audits(session, [
            {**row, "clinic_id": None, "at": now, "source": "nppes", "channel": "import",
             "user_id": actor.user_id, "token_id": actor.token_id} for row in audits])
    if changed:
        log_changes(session.connection(), changed)
    if dry_run:
        session.rollback()
    else:
        session.commit()


def _upsert_listings(session, items: dict[str, Classified], counts: Counter,
                     changed: list[int], audits: list[dict]) -> set[str]:
    """Insert new listings and update changed ones; return the NPIs a concurrent writer
    changed after they were read (to be read again)."""
    if not items:
        return set()
    # JSON columns read as their text (no JSON decoding of every row): an unchanged
    # listing's text is what json.dumps gives for NPPES's values (both jsonb's and
    # SQLite's text put ", " between items); any other text is decoded and compared properly
    columns = [_provider.c[name] for name in _STORED_KEYS] + [
        cast(_provider.c[name], Text).label(name) if name in _JSON_FIELDS else _provider.c[name]
        for name in NPPES_FIELDS]
    stored = {row.npi: row for row in session.execute(
        select(*columns).where(_npi_in(session, _provider.c.npi, list(items)))).all()}
    now = utcnow()
    new, updates = [], []
    for npi, item in items.items():
        found = item.values
        row = stored.get(npi)
        if row is None:
            new.append({**NEW_LISTING, **{field: found[field] for field in NPPES_FIELDS},
                        "npi": npi, "gender": found.get("sex"), "in_person": bool(found["zip"]),
                        "created_at": now, "updated_at": now})
            continue
        # the common case on a rerun, unchanged: one tuple comparison, no diff built
        if row[_STORED_FROM:] == tuple(json.dumps(found[field]) if field in _JSON_FIELDS
                                       else found[field] for field in NPPES_FIELDS):
            counts[f"{item.kind}s unchanged"] += 1
            continue
        values = {field: found[field] for field in NPPES_FIELDS}
        before = dict(zip(NPPES_FIELDS, row[_STORED_FROM:], strict=True))
        for field in _JSON_FIELDS:
            before[field] = None if before[field] is None else json.loads(before[field])
        diff = listing_diff(before, values)
        if not diff:  # equal values of other types (an int for a float)
            counts[f"{item.kind}s unchanged"] += 1
            continue
        updates.append((item, row, diff, {**values, "b_id": row.id, "b_version": row.version,
                                          "updated_at": now}))
    if new:  # unclaimed, so not listed: nothing for the index (no change-log row)
        _insert_new(session, new)
        ids = dict(session.execute(select(_provider.c.npi, _provider.c.id).where(
            _npi_in(session, _provider.c.npi, [row["npi"] for row in new]))).all())
        for row in new:
            # what listing_diff({}, fields) gives, built directly (NPPES values are plain JSON)
            audits.append({"provider_id": ids[row["npi"]], "action": "create",
                           "changes": {field: {"old": None, "new": row[field]}
                                       for field in NPPES_FIELDS if row[field] is not None}})
            counts[f"{items[row['npi']].kind}s created"] += 1
    if not updates:
        return set()
    statement = (update(_provider)
                 .where(_provider.c.id == bindparam("b_id"),
                        _provider.c.version == bindparam("b_version"))
                 .values({**{field: bindparam(field) for field in NPPES_FIELDS},
                          "updated_at": bindparam("updated_at"),
                          "version": _provider.c.version + 1}))
    done = session.execute(statement, [params for *_, params in updates]).rowcount
    conflicts: set[str] = set()
    if done != len(updates):
        # Some were changed meanwhile: ours are those now at the next version with this
        # batch's update time (another writer's change has a time of its own); retry the rest.
        ours = {row.id for row in session.execute(
            select(_provider.c.id).where(
                _provider.c.id.in_([row.id for _, row, _, _ in updates]),
                _provider.c.updated_at == now))}
        conflicts = {item.npi for item, row, _, _ in updates if row.id not in ours}
    for item, row, diff, _ in updates:
        if item.npi in conflicts:
            continue
        if row.clinic_id is not None and row.active:  # listed: the index follows
            changed.append(row.id)
        audits.append({"provider_id": row.id, "action": "update",
                       "changes": jsonable_changes(diff)})
        counts[f"{item.kind}s updated"] += 1
    return conflicts


def _npi_in(session, column, npis: list[str]):
    """``column IN npis``: on PostgreSQL ``= ANY(array)``, one parameter (an IN of 5,000
    placeholders is a new statement for psycopg to parse every batch)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("npis", npis, type_=ARRAY(String)))
    return column.in_(npis)


def _insert_new(session, rows: list[dict]) -> None:
    """Insert new listings: COPY on PostgreSQL, else one executemany."""
    if session.get_bind().dialect.name == "postgresql":
        _copy(session, _provider, rows)
    else:
        # a plain executemany (one statement, parsed once), then the ids by NPI: an
        # INSERT ... RETURNING of thousands of rows is one huge statement to render and parse
        session.execute(insert(_provider), rows)


def _insert_audits(session, rows: list[dict]) -> None:
    """Insert audit rows: COPY on PostgreSQL, else one executemany."""
    if session.get_bind().dialect.name == "postgresql":
        _copy(session, _audit, rows)
    else:
        session.execute(insert(_audit), rows)


def _copy(session, table, rows: list[dict]) -> None:
    """``COPY table FROM STDIN`` of ``rows`` (all with the same keys) on the session's own
    connection and transaction: no statement to build or parse and no per-row parameter
    processing, which were most of an executemany's time. JSON columns go as JSON text;
    triggers and constraints apply as for an INSERT."""
    names = list(rows[0])
    json_columns = {index for index, name in enumerate(names)
                    if isinstance(table.c[name].type, JSON)}
    cursor = session.connection().connection.driver_connection.cursor()
    with cursor, cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            values = [row[name] for name in names]
            for index in json_columns:
                values[index] = json.dumps(values[index])
            copy.write_row(values)


def _deactivate(session, npis: list[str], counts: Counter, changed: list[int],
                audits: list[dict]) -> None:
    """Deactivate the active listings of NPIs that NPPES deactivated."""
    if not npis:
        return
    found = session.execute(
        update(_provider).where(_provider.c.npi.in_(npis), _provider.c.active.is_(True))
        .values(active=False, version=_provider.c.version + 1, updated_at=utcnow())
        .returning(_provider.c.id, _provider.c.clinic_id)).all()
    for provider_id, clinic_id in found:
        if clinic_id is not None:  # it was listed: the index drops it
            changed.append(provider_id)
        audits.append({"provider_id": provider_id, "action": "deactivate",
                       "changes": {"active": {"old": True, "new": False}}})
    counts["deactivated"] += len(found)
    counts["deactivated (not listed or already inactive)"] += len(npis) - len(found)


def _upsert_clinics(session, items: dict[str, Classified], counts: Counter) -> None:
    """Add new organizations as unclaimed clinics; refresh the name and phone of those
    still unclaimed (a clinic that runs its record keeps its own)."""
    if not items:
        return
    stored = {row.organization_npi: row for row in session.execute(
        select(_clinic.c.id, _clinic.c.organization_npi, _clinic.c.name, _clinic.c.phone,
               _clinic.c.status).where(
                   _npi_in(session, _clinic.c.organization_npi, list(items)))).all()}
    now = utcnow()
    new, updates = [], []
    for npi, item in items.items():
        row = stored.get(npi)
        if row is None:
            new.append({**item.values, "email": None, "status": "unclaimed",
                        "created_at": now, "decided_at": None, "decision_reason": None})
            continue
        wanted = {field: item.values[field] or row._mapping[field] for field in ("name", "phone")}
        if row.status != "unclaimed" or wanted == {"name": row.name, "phone": row.phone}:
            counts["clinics unchanged"] += 1
            continue
        updates.append({**wanted, "b_id": row.id})
    if new:
        session.execute(insert(_clinic), new)
        counts["clinics created (unclaimed)"] += len(new)
    if updates:
        session.execute(update(_clinic).where(_clinic.c.id == bindparam("b_id"),
                                              _clinic.c.status == "unclaimed")
                        .values(name=bindparam("name"), phone=bindparam("phone")), updates)
        counts["clinics updated"] += len(updates)
