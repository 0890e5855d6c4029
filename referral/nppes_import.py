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

``import_file`` reads and classifies a file in ``READERS`` other processes, chunk by chunk
in turn, while this one writes (at most ``QUEUED`` chunks per reader in between, so
memory stays constant);
``import_records`` does both in this process (saved registry responses, tests).
"""

from __future__ import annotations

import csv
import gc
import io
import itertools
import json
import multiprocessing
import operator
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import JSON, String, Text, any_, bindparam, cast, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from .actors import current_actor
from .extensions import db
from .listings import jsonable_changes, listing_diff
from .models import Clinic, Provider, ProviderAudit, utcnow
from .nppes import Classified, HeaderError, NppesRecord, classify, lines_reader
from .search_sync import log_changes

#: Fields of a listing that NPPES owns (and so an import may change).
NPPES_FIELDS = ("first_name", "last_name", "credentials", "role", "provider_type",
                "taxonomy_codes", "licensed_states", "address_line1", "address_line2", "city",
                "state", "zip", "latitude", "longitude", "phone")
#: Classified rows written per committed batch.
BATCH = 5000
#: Lines of the file a reading process takes at a time (about 1,850 of them to write, at
#: the generated file's 37%).
CHUNK = 5000
#: Reading processes of ``import_file`` (the machine it was measured on has two cores).
READERS = 2
#: Classified chunks that may wait between each reading process and the writer.
QUEUED = 2
#: How often rows that a clinic changed while the batch was written are read again.
RETRIES = 3

#: The listing's own columns read before NPPES's fields in a batch's read.
_STORED_KEYS = ("id", "npi", "version", "clinic_id", "active")
_STORED_FROM = len(_STORED_KEYS)
#: NPPES's fields kept as JSON (lists of codes).
_JSON_FIELDS = ("taxonomy_codes", "licensed_states")
#: NPPES's fields in the order a batch's read gives them: the plain ones (compared as one
#: tuple, taken from the classified values in C), then the JSON ones.
_READ_FIELDS = tuple(f for f in NPPES_FIELDS if f not in _JSON_FIELDS) + _JSON_FIELDS
_PLAIN_TO = _STORED_FROM + len(_READ_FIELDS) - len(_JSON_FIELDS)
_plain_values = operator.itemgetter(*_READ_FIELDS[:-len(_JSON_FIELDS)])
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
                readers: int = READERS) -> Counter:
    """Import an NPPES data file: ``readers`` other processes read and classify it (the
    CPU-bound part), taking chunks of ``CHUNK`` rows in turn, while this one writes; the
    classified rows are gathered in file order into the batches ``import_records`` would
    make, so batches, counts and every rule are the same whatever the number of readers.
    At most ``QUEUED`` chunks wait per reader (constant memory). ``progress`` is called
    with the bytes read since its last call. With ``--limit`` one reader; without the
    ``fork`` start method (or with ``readers=0``) the file is read in this process.
    Raises ``nppes.HeaderError`` for a file that is not NPPES.
    """
    counts: Counter = Counter()
    pending: list[Classified] = []

    def take(rows: list[tuple], read: Counter, size: int) -> None:
        nonlocal pending
        counts.update(read)
        pending += [Classified(kind, npi, None, values) for kind, npi, values in rows]
        while len(pending) >= BATCH:
            _write(pending[:BATCH], counts, dry_run)
            pending = pending[BATCH:]
        if progress:
            progress(size)

    # The objects alive now (the application, SQLAlchemy's, the rules) stay alive through
    # the import: kept out of the cyclic collector's full passes, which otherwise walked
    # them all again and again as the import allocates rows (a third of a reader's time).
    gc.freeze()
    try:
        _import_chunks(path, states, limit, readers, take)
    finally:
        gc.unfreeze()
    if pending:
        _write(pending, counts, dry_run)
    return counts


def _import_chunks(path: str, states: set[str] | None, limit: int | None, readers: int,
                   take: Callable[..., None]) -> None:
    """Hand ``take`` the classified chunks of ``path`` in file order, read by ``readers``
    other processes (or by this one: see ``import_file``)."""
    if readers < 1 or "fork" not in multiprocessing.get_all_start_methods():
        for message in _classified_chunks(path, 0, 1, states, limit):
            take(*message)
    else:
        shares = 1 if limit is not None else readers  # a limit counts rows in file order
        # fork: the application and rules as loaded; each reader loads the ZIP table itself
        # (loaded here before the fork, it held ~145 MB more in this process, the writer)
        context = multiprocessing.get_context("fork")
        queues = [context.Queue(maxsize=QUEUED) for _ in range(shares)]
        processes = [context.Process(target=_read_share, daemon=True,
                                     args=(path, share, shares, states, limit, queues[share]))
                     for share in range(shares)]
        for process in processes:
            process.start()
        try:
            for index in itertools.count():
                message = queues[index % shares].get()  # chunk i is reader i % shares's
                if message is None:
                    break
                if isinstance(message, BaseException):
                    raise message
                take(*message)
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()  # done, or stopped early (an error, an interrupt)
                process.join()


def _open(path: str):
    """The file as bytes: lines are split at LF and only a reader's own chunks decoded
    (decoding every line of the file took most of a reader's time spent on others' chunks)."""
    return open(path, "rb")


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    """The lines of a CSV file in chunks of ``size`` lines, and as many more as complete a
    record whose quoted value holds a line break (an odd count of quotes so far): a record
    is whole in its chunk."""
    lines = iter(lines)
    while chunk := list(itertools.islice(lines, size)):
        if sum(map(bytes.count, chunk, itertools.repeat(b'"'))) % 2:
            for line in lines:
                chunk.append(line)
                if line.count(b'"') % 2:
                    break
        yield chunk


def _decoded(chunk: list[bytes]) -> list[str]:
    """A chunk's lines as the text a file opened with ``newline=""`` gives (UTF-8, a bad
    byte replaced; lines end at CR, LF or CRLF): split at LF already, unless a CR stands
    alone somewhere."""
    for line in chunk:
        cr = line.find(b"\r")  # the first CR: none, or the line's last byte or CRLF
        if cr != -1 and cr != len(line) - 1 and not (cr == len(line) - 2
                                                     and line[-1:] == b"\n"):
            return list(io.StringIO(b"".join(chunk).decode("utf-8", "replace"), newline=""))
    return [line.decode("utf-8", "replace") for line in chunk]


def _first_record(text: str) -> tuple[str, str]:
    """``text``'s first CSV record (its lines as a file opened with ``newline=""`` gives
    them: ending at CR, LF or CRLF) and the text after it."""
    lines = io.StringIO(text, newline="").readlines()
    quotes = 0
    for count, line in enumerate(lines, 1):
        quotes += line.count('"')
        if quotes % 2 == 0:
            return "".join(lines[:count]), "".join(lines[count:])
    return text, ""


def _classified_chunks(path: str, share: int, shares: int, states: set[str] | None,
                       limit: int | None) -> Iterator[tuple[list[tuple], Counter, int]]:
    """Chunks ``share``, ``share + shares``, ... of the file after its header, classified:
    the rows to write (as plain tuples, cheap to pass between processes), the counts of
    the rows read (rows, skips by reason) and the bytes they took."""
    with _open(path) as handle:
        lines = iter(handle)
        head: list[bytes] = []
        for line in lines:  # the header: one record (its lines, should a name hold a break)
            head.append(line)
            if sum(part.count(b'"') for part in head) % 2 == 0:
                break
        text = b"".join(head).decode("utf-8-sig", "replace")  # a byte-order mark tolerated
        if not text:
            raise HeaderError("The file is empty.")
        header, rest = _first_record(text)
        head_size = sum(map(len, head))
        if rest:  # lines ending in a lone CR: the header's "line" held records after it
            carried = rest.encode("utf-8")
            lines = itertools.chain([carried], lines)
            head_size -= len(carried)
        records = lines_reader(next(csv.reader(io.StringIO(header, newline="")), []))
        seen = 0  # rows read so far (with a limit there is one share: every chunk is ours)
        for index, chunk in enumerate(_chunks(lines, CHUNK)):
            if index % shares != share:
                continue
            if limit is not None and seen >= limit:
                return
            batch, counts = next(classified_batches(
                records(_decoded(chunk)), states=states,
                limit=None if limit is None else limit - seen, size=sys.maxsize),
                ([], Counter()))  # (a chunk of blank lines holds no record)
            seen += counts["rows"]
            size = sum(map(len, chunk)) + (head_size if index == 0 else 0)
            yield [(item.kind, item.npi, item.values) for item in batch], counts, size


def _read_share(path: str, share: int, shares: int, states: set[str] | None,
                limit: int | None, queue) -> None:
    """A reading process: its chunks of ``path`` classified into ``queue``, then ``None``;
    an error is put instead and ends it."""
    try:
        for message in _classified_chunks(path, share, shares, states, limit):
            queue.put(message)
        queue.put(None)
    except Exception as error:  # noqa: BLE001 - handed to the writer, which raises it
        queue.put(error)


def _write(batch: list[Classified], counts: Counter, dry_run: bool) -> None:
    """Write one batch in one transaction (rolled back on a dry run)."""
    listings: dict[str, Classified] = {}
    clinics: dict[str, Classified] = {}
    deactivated: dict[str, None] = {}  # in file order
    for item in batch:
        if item.npi in listings or item.npi in clinics or item.npi in deactivated:
            # the same NPI twice in one batch: the later row wins next run
            counts["skipped: duplicate_npi"] += 1
        elif item.kind == "clinic":
            clinics[item.npi] = item
        elif item.kind == "deactivated":
            deactivated[item.npi] = None
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
    _deactivate(session, list(deactivated), counts, changed, audits)
    _upsert_clinics(session, clinics, counts)
    if audits:
        actor = current_actor()
        now = utcnow()
        _insert(session, _audit, [
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
        for name in _READ_FIELDS]
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
        if (row[_STORED_FROM:_PLAIN_TO] == _plain_values(found)
                and row.taxonomy_codes == _json_text(found["taxonomy_codes"])
                and row.licensed_states == _json_text(found["licensed_states"])):
            counts[f"{item.kind}s unchanged"] += 1
            continue
        values = {field: found[field] for field in NPPES_FIELDS}
        before = dict(zip(_READ_FIELDS, row[_STORED_FROM:], strict=True))
        for field in _JSON_FIELDS:
            before[field] = None if before[field] is None else json.loads(before[field])
        diff = listing_diff(before, values)
        if not diff:  # equal values of other types (an int for a float)
            counts[f"{item.kind}s unchanged"] += 1
            continue
        updates.append((item, row, diff, {**values, "b_id": row.id, "b_version": row.version,
                                          "updated_at": now}))
    if new:  # unclaimed, so not listed: nothing for the index (no change-log row)
        # then the ids by NPI: an INSERT ... RETURNING of thousands of rows is one huge
        # statement to render and parse
        _insert(session, _provider, new)
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


#: ``json.dumps`` of the lists of codes and of states seen (a few hundred distinct ones).
_JSON_TEXTS: dict[tuple, str] = {}


def _json_text(values: list[str]) -> str:
    """``json.dumps(values)`` of a list of strings, remembered (bounded)."""
    key = tuple(values)
    text = _JSON_TEXTS.get(key)
    if text is None:
        text = json.dumps(values)
        if len(_JSON_TEXTS) < 10_000:
            _JSON_TEXTS[key] = text
    return text


def _npi_in(session, column, npis: list[str]):
    """``column IN npis``: on PostgreSQL ``= ANY(array)``, one parameter (an IN of 5,000
    placeholders is a new statement for psycopg to parse every batch)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("npis", npis, type_=ARRAY(String)))
    return column.in_(npis)


def _insert(session, table, rows: list[dict]) -> None:
    """Insert ``rows`` into ``table``: COPY on PostgreSQL, else one executemany (one
    statement, parsed once)."""
    if session.get_bind().dialect.name == "postgresql":
        _copy(session, table, rows)
    else:
        session.execute(insert(table), rows)


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
