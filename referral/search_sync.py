"""Keeping the search index current with the database.

The database is the source of truth. Every flush that inserts or changes a
listing also writes a ``provider_change`` row in the same transaction (the
outbox), so a committed change can never be missed by the index. After the
commit, the request returns and this process's background applier (one daemon
thread, ``BackgroundApplier``) applies pending changes to the whoosh text index
if nobody else is writing it (never waiting for the lock: the lock holder checks
again after it releases). Every process brings its in-memory structured table
up to date before it searches, and a text search first applies what is pending
itself (waiting for this process's applier if it is at work), so a writer reads
its own writes. Both remember the last change-log id they reflect, so a
restarted process catches up.

Functions here take SQLAlchemy connections, not Flask objects, so the CLI,
the web app and the benchmarks share them.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

from sqlalchemy import Text, cast, event, func, insert, select, text, type_coerce
from sqlalchemy.orm import Session

from search_index.table import MULTI_FIELDS, ProviderTable
from search_index.text import TextIndex

from .models import Clinic, Provider, ProviderChange, UTCDateTime, utcnow
from .vocab import (
    AGE_GROUPS,
    CONCERNS,
    GENDERS,
    LANGUAGES,
    MODALITIES,
    PAYERS,
    PROVIDER_TYPES,
    ROLES,
    SPECIALTIES,
    STATES,
    gender_category,
)

log = logging.getLogger(__name__)

VOCABULARIES = {
    "modalities": tuple(MODALITIES), "concerns": CONCERNS, "age_groups": AGE_GROUPS,
    "languages": tuple(LANGUAGES), "specialties": tuple(SPECIALTIES), "insurance": tuple(PAYERS),
    "licensed_states": tuple(STATES),
    "role": ROLES, "provider_type": tuple(PROVIDER_TYPES),
    "gender": GENDERS, "state": tuple(STATES),
}
#: Past this many pending changes the text index is rebuilt rather than patched.
REBUILD_THRESHOLD = 20_000
#: Serializes listing writers on PostgreSQL so change ids commit in order.
CHANGE_LOG_LOCK_KEY = 726_204_817
_CHUNK = 900


# ---------------------------------------------------------------------------
# The outbox: change rows written with every listing change


def _record_changes(session: Session, _flush_context) -> None:
    changed = {obj for obj in session.new if isinstance(obj, Provider)}
    changed |= {obj for obj in session.dirty
                if isinstance(obj, Provider) and session.is_modified(obj)}
    if not changed:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": CHANGE_LOG_LOCK_KEY})
    now = utcnow()
    connection.execute(insert(ProviderChange),
                       [{"provider_id": obj.id, "at": now} for obj in changed])
    session.info["provider_changes"] = True


def log_changes(connection, provider_ids: list[int]) -> None:
    """Write change rows for listings changed outside the ORM (bulk loads)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": CHANGE_LOG_LOCK_KEY})
    now = utcnow()
    for start in range(0, len(provider_ids), 5000):
        connection.execute(insert(ProviderChange), [
            {"provider_id": pid, "at": now} for pid in provider_ids[start:start + 5000]])


_installed = False


def install_outbox_once() -> None:
    """Install the outbox on the app's sessions (once per process, whatever the apps)."""
    global _installed
    if not _installed:
        from .extensions import db
        install_outbox(db.session, _sync_after_commit)
        _installed = True


def _sync_after_commit() -> None:
    """After a listing change commits, wake this process's background applier (the
    request does not wait for the text index)."""
    from flask import has_app_context

    from .extensions import db
    from .services import search_service

    if not has_app_context():
        return
    service = search_service()
    if service.sync_on_commit:
        service.committed(db.engine)


def install_outbox(session_factory, on_commit: Callable[[], None]) -> None:
    """Write change rows on every flush of ``session_factory``'s sessions, and call
    ``on_commit()`` after a commit that changed listings."""
    event.listen(session_factory, "after_flush", _record_changes)

    def after_commit(session):
        if session.info.pop("provider_changes", False):
            on_commit()

    def after_rollback(session):
        session.info.pop("provider_changes", None)

    event.listen(session_factory, "after_commit", after_commit)
    event.listen(session_factory, "after_soft_rollback", lambda s, _tx: after_rollback(s))


# ---------------------------------------------------------------------------
# Reading listings for the index


_LATEST_CHANGE = select(func.coalesce(func.max(ProviderChange.id), 0))


def latest_change(connection) -> int:
    """The newest change-log id (0 when empty)."""
    return int(connection.execute(_LATEST_CHANGE).scalar_one())


def changed_since(connection, position: int, upto: int) -> list[int]:
    """Distinct listing ids changed after ``position`` up to ``upto``."""
    return list(connection.execute(
        select(ProviderChange.provider_id).distinct()
        .where(ProviderChange.id > position, ProviderChange.id <= upto)).scalars())


def _chunks(ids: list[int] | None):
    if ids is None:
        yield None
        return
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


TABLE_COLUMNS = (
    Provider.id, Provider.role, Provider.provider_type, Provider.gender, Provider.state,
    Provider.modalities, Provider.concerns, Provider.age_groups, Provider.languages,
    Provider.insurance, Provider.licensed_states, Provider.specialties,
    Provider.telehealth, Provider.in_person,
    Provider.sliding_scale, Provider.accepting_new_patients, Provider.accepts_coordinated_care,
    Provider.active, Provider.latitude, Provider.longitude, Provider.fee_min, Provider.fee_max,
    Provider.wait_days, Provider.last_verified_at, Provider.reported_at, Provider.clinic_id,
    Provider.updated_at,
)


#: Listings patients can find (``Provider.listed``): only these are in the index.
LISTED = Provider.listed


def is_listed(values) -> bool:
    """``Provider.listed`` for one row or listing dict."""
    return bool(values.get("active")) and values.get("clinic_id") is not None


def table_record(values) -> dict:
    """A listing (a row of ``TABLE_COLUMNS`` or a listing dict) as a ``ProviderTable`` record
    (``active`` there means listed)."""
    record = {column.key: values.get(column.key) for column in TABLE_COLUMNS}
    record["active"] = is_listed(record)
    record["gender"] = gender_category(record["gender"])
    record["verified_at"] = _epoch(record.pop("last_verified_at"))
    record["reported"] = record.pop("reported_at") is not None  # patients' reports
    record["version"] = _epoch(record.pop("updated_at"))
    return record


def table_records(connection, ids: list[int] | None = None,
                  batch: int = 10_000) -> Iterator[dict]:
    """Listings as ``ProviderTable`` records: every listed one (in id order, so that a
    table's rows, which break ties in ranking, come in the same order on every database),
    or the given ids (listed or not, so that one no longer listed leaves the table)."""
    for chunk in _chunks(ids):
        statement = select(*TABLE_COLUMNS)
        if chunk is not None:
            statement = statement.where(Provider.id.in_(chunk))
        else:
            statement = statement.where(LISTED).order_by(Provider.id)
        result = connection.execution_options(yield_per=batch).execute(statement)
        for row in result.mappings():
            yield table_record(row)


def listed_table(connection, batch: int = 10_000) -> ProviderTable:
    """Every listed listing as a ``ProviderTable``: the table ``upsert(table_records(...))``
    makes, read column by column (multi-valued attributes as their JSON text, each
    distinct text decoded once; times as epoch seconds as each batch arrives, so that
    a million rows' strings and times are not all held at once) and coded a column at a
    time."""
    multi = set(MULTI_FIELDS)  # JSON arrays in the database

    def read_as(column):
        if column.key in multi:
            return cast(column, Text).label(column.key)
        if isinstance(column.type, UTCDateTime):  # (``_epoch`` takes a naive time as UTC)
            return type_coerce(column, column.type.impl).label(column.key)
        return column

    decoded: dict[str | None, tuple] = {None: ()}
    categories: dict[str | None, str | None] = {}

    def decode(raw: str | None) -> tuple:
        found = decoded.get(raw)
        if found is None:
            found = decoded[raw] = tuple(json.loads(raw) or ())
        return found

    def category(gender: str | None) -> str | None:
        if gender not in categories:
            categories[gender] = gender_category(gender)
        return categories[gender]

    converters = {key: decode for key in multi}
    converters.update(gender=category, last_verified_at=_epoch, updated_at=_epoch,
                      reported_at=lambda value: value is not None)
    statement = (select(*(read_as(column) for column in TABLE_COLUMNS)).where(LISTED)
                 .order_by(Provider.id))
    keys = [column.key for column in TABLE_COLUMNS]
    values: dict[str, list] = {key: [] for key in keys}
    result = connection.execution_options(yield_per=batch).execute(statement)
    for rows in result.partitions():
        for key, column in zip(keys, zip(*rows, strict=True), strict=True):
            convert = converters.get(key)
            values[key].extend(column if convert is None else map(convert, column))
    values["active"] = [bool(active) and clinic is not None for active, clinic
                        in zip(values["active"], values["clinic_id"], strict=True)]
    values["verified_at"] = values.pop("last_verified_at")
    values["reported"] = values.pop("reported_at")
    values["version"] = values.pop("updated_at")
    return ProviderTable.from_values(VOCABULARIES, values)


def text_documents(connection, ids: list[int] | None = None, batch: int = 10_000,
                   between: tuple[int, int] | None = None) -> Iterator[tuple[int, dict | None]]:
    """``(id, whoosh document)`` per listing; the document is None for one not listed.

    Every listed one (in id order), the given ``ids``, or the listed ones with ids in
    ``between`` (``low <= id < high``).
    """
    columns = (Provider.id, Provider.first_name, Provider.last_name, Provider.credentials,
               Provider.bio, Provider.updated_at, Provider.active, Provider.clinic_id,
               Clinic.name.label("clinic"))
    for chunk in _chunks(ids):
        statement = select(*columns).outerjoin(Clinic, Clinic.id == Provider.clinic_id)
        if chunk is not None:
            statement = statement.where(Provider.id.in_(chunk))
        else:
            statement = statement.where(LISTED).order_by(Provider.id)
            if between is not None:
                statement = statement.where(Provider.id >= between[0], Provider.id < between[1])
        result = connection.execution_options(yield_per=batch).execute(statement)
        for row in result:
            if not is_listed(row._mapping):
                yield row.id, None
                continue
            yield row.id, {
                "pid": row.id, "name": f"{row.first_name} {row.last_name}",
                "credentials": (row.credentials or "").replace(",", " "),
                "clinic": row.clinic or "", "bio": row.bio or "",
                "version": row.updated_at.isoformat() if row.updated_at else "",
            }


def id_ranges(low: int | None, high: int | None, parts: int) -> list[tuple[int, int]]:
    """``parts`` ranges ``[start, end)`` of about as many ids each, covering ``low`` to
    ``high`` (none when there are no ids)."""
    if low is None or high is None:
        return []
    parts = max(1, min(parts, high - low + 1))
    bounds = [low + (high + 1 - low) * part // parts for part in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _listed_documents(connection, owner: int, low: int, high: int) -> Iterator[dict]:
    """The whoosh documents of listed listings with ids in ``[low, high)``, in id order,
    read on ``connection`` in its ``owner`` process or, in a process forked from it, on a
    connection of the process's own."""
    engine = connection.engine
    if os.getpid() == owner:
        own = contextlib.nullcontext(connection)
    else:
        engine.dispose(close=False)  # the parent's pooled connections are the parent's
        own = engine.connect()
    with own as reading:
        for _, document in text_documents(reading, between=(low, high)):
            if document is not None:
                yield document


# ---------------------------------------------------------------------------
# Per-process search state


class SearchState:
    """This process's view of the search index: whoosh text index and structured table."""

    def __init__(self, index_dir: str, cache_listings: bool = True):
        self.index_dir = index_dir
        self.cache_listings = cache_listings
        self.text = TextIndex(index_dir)
        self.table: ProviderTable | None = None
        self.lock = threading.RLock()
        self.listings: dict[int, tuple[float, dict]] = {}  # id -> (version, dumped listing)
        self._text_seen = -1  # the text index position this process last saw
        # One thread of this process applies changes to whoosh at a time: a search that
        # needs the text index current waits for the background applier instead of
        # finding whoosh's write lock taken by its own process and reading stale text.
        self.applying = threading.Lock()

    @property
    def snapshot_path(self) -> str:
        """Where the structured table's snapshot lives."""
        return os.path.join(self.index_dir, "table.npz")

    def refresh_table(self, connection) -> ProviderTable:
        """Bring the in-memory table up to the newest change (loading it first if needed)."""
        with self.lock:
            latest = latest_change(connection)
            if self.table is not None and latest < self.table.position:
                log.warning("the change log went back (database restored?): reloading the table")
                self.table = None
            if self.table is None:
                table = ProviderTable.load(self.snapshot_path, VOCABULARIES)
                if table is None or table.position > latest:
                    # Row by row, not ``listed_table``: that one is faster but holds every
                    # column as Python values first (~3.5x the memory), and every worker of
                    # a node may be loading at once.
                    table = ProviderTable(VOCABULARIES)
                    table.upsert(table_records(connection))
                    table.position = latest
                self.table = table
            if latest > self.table.position:
                ids = changed_since(connection, self.table.position, latest)
                self.table.upsert(table_records(connection, ids))
                self.table.position = latest
            return self.table

    def text_current(self, connection, latest: int) -> bool:
        """Make sure the text index reflects change ``latest`` (cheap when it already does)."""
        if latest <= self._text_seen:
            return True
        return self.sync_text(connection)

    def sync_text(self, connection, allow_rebuild: bool = False) -> bool:
        """Apply pending changes to the text index unless another process is on it.

        Returns False when the index is still behind (busy, or too far behind and
        ``allow_rebuild`` is false). Loops so that changes committed while this
        process held the lock are applied before it stops.
        """
        with self.applying:
            return self._sync_text(connection, allow_rebuild)

    def _sync_text(self, connection, allow_rebuild: bool) -> bool:
        while True:
            latest = latest_change(connection)
            position = self.text.position()
            if position == latest and self.text.current_name():
                self._text_seen = position
                return True
            went_back = position > latest  # the change log went back (database restored?)
            ids = [] if went_back else changed_since(connection, position, latest)
            if went_back or len(ids) > REBUILD_THRESHOLD:
                if not allow_rebuild:
                    log.warning("search index needs a rebuild (%d listings behind); run "
                                "'referral reindex'", len(ids))
                    return False
                self.rebuild(connection)
                continue
            documents, removed = [], []
            for provider_id, document in text_documents(connection, ids):
                (removed.append(provider_id) if document is None else documents.append(document))
            missing = set(ids) - {d["pid"] for d in documents} - set(removed)
            if not self.text.try_apply(documents, removed + sorted(missing), latest):
                return False

    def cached_listings(self, ids: list[int], versions: list[float], load) -> dict[int, dict]:
        """Dumped listings for ``ids``; ``load(missing_ids) -> {id: dict}`` fills misses.

        A cached listing is used only while its version (update time) is the one the
        structured table holds, so it is never older than the change log.
        """
        if not self.cache_listings:
            return load(ids)
        found, missing = {}, []
        for provider_id, version in zip(ids, versions, strict=False):
            cached = self.listings.get(provider_id)
            if cached is not None and cached[0] == version:
                found[provider_id] = cached[1]
            else:
                missing.append(provider_id)
        if missing:
            if len(self.listings) > 100_000:
                self.listings.clear()
            loaded = load(missing)
            for provider_id, version in zip(ids, versions, strict=False):
                if provider_id in loaded:
                    self.listings[provider_id] = (version, loaded[provider_id])
                    found[provider_id] = loaded[provider_id]
        return found

    def rebuild(self, connection, progress: Callable[[int], None] | None = None,
                procs: int = 1) -> int:
        """Rebuild the text index and the table snapshot from the database; return the count.

        The listings are split into ``procs`` ranges of ids, each indexed by a process
        of its own reading its own rows (``TextIndex.rebuild_parts``); this process
        builds the structured table meanwhile.
        """
        position = latest_change(connection)
        low, high = connection.execute(
            select(func.min(Provider.id), func.max(Provider.id)).where(LISTED)).one()
        parts = [functools.partial(_listed_documents, connection, os.getpid(), start, end)
                 for start, end in id_ranges(low, high, procs)]
        tables = []
        _, count = self.text.rebuild_parts(
            parts, position, progress=progress,
            meanwhile=lambda: tables.append(listed_table(connection)))
        table = tables[0]
        table.position = position
        table.save(self.snapshot_path)
        with self.lock:
            self.table = table
        return count

    def forget(self) -> None:
        """Drop the table, the listing cache and the open text index (the database was
        emptied or replaced); the next search loads everything again."""
        with self.lock:
            self.text.close()
            self.table = None
            self.listings.clear()
            self._text_seen = -1


class BackgroundApplier:
    """This process's background applier: a daemon thread that applies committed listing
    changes to the whoosh text index, so a write's request returns after its commit.

    ``wake(engine)`` after a commit; the thread brings the text index up to the newest
    change (``SearchState.sync_text``). Nothing can be lost: the change log is the
    outbox, and the index remembers how far it got. When another process holds the
    write lock the thread tries again shortly (that process also applies everything
    before it lets go). Errors are logged, never raised to a request. A process that
    exits gives the thread a few seconds to finish (``settle``).
    """

    #: Seconds between attempts while another process holds the write lock.
    RETRY_SECONDS = 0.25
    #: Seconds an exiting process waits for pending changes to be applied.
    EXIT_WAIT_SECONDS = 10.0

    def __init__(self, state: SearchState):
        self.state = state
        self._engine = None
        self._condition = threading.Condition()
        self._asked = 0    # wakes so far
        self._applied = 0  # the wakes covered by the last attempt that ended
        self._failed = 0   # the wakes covered by the last attempt that failed
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def wake(self, engine) -> None:
        """Changes were committed: apply them soon (never waits)."""
        with self._condition:
            self._engine = engine
            self._asked += 1
            if self._thread is None or self._pid != os.getpid():  # none yet, or forked
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="search-applier",
                                                daemon=True)
                self._thread.start()
                atexit.register(self.settle, self.EXIT_WAIT_SECONDS)
            self._condition.notify_all()

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until every change committed before this call is applied (False: timed out)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            wanted = self._asked
            while self._applied < wanted:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._condition.wait(left)
            return self._failed < wanted

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._applied >= self._asked:
                    self._condition.wait()
                wanted, engine = self._asked, self._engine
            try:
                with engine.connect() as connection:
                    current = self.state.sync_text(connection)
            except Exception:  # committed anyway: the next wake or text search catches up
                log.exception("search index apply failed")
                with self._condition:  # give up on these wakes; the next one tries again
                    self._applied = self._failed = max(self._applied, wanted)
                    self._condition.notify_all()
                continue
            with self._condition:
                if current:
                    self._applied = max(self._applied, wanted)
                    self._condition.notify_all()
                    continue
            time.sleep(self.RETRY_SECONDS)  # another process holds the write lock


def check_index(state: SearchState, connection, repair: bool = True,
                lock_wait_seconds: float = 60.0) -> dict:
    """Compare the text index with the database; with ``repair``, fix every difference.

    Reports active listings missing from the index, indexed documents that should
    not be there, and documents older than the listing. Repair also rewrites the
    structured-table snapshot from the database.
    """
    position = latest_change(connection)
    database = {row.id: row.updated_at.isoformat() if row.updated_at else ""
                for row in connection.execute(
                    select(Provider.id, Provider.updated_at).where(LISTED))}
    indexed = state.text.stored_versions() if state.text.current_name() else {}
    missing = sorted(set(database) - set(indexed))
    extra = sorted(set(indexed) - set(database))
    outdated = sorted(pid for pid in set(database) & set(indexed) if indexed[pid] != database[pid])
    report = {"database": len(database), "indexed": len(indexed), "missing": missing,
              "extra": extra, "outdated": outdated, "repaired": 0, "position": position}
    if not repair:
        return report
    broken = missing + outdated
    if broken or extra or state.text.position() != position:
        documents = [d for _, d in text_documents(connection, broken) if d is not None]
        deadline = time.monotonic() + lock_wait_seconds
        while not state.text.try_apply(documents, extra, position, force=True):
            if time.monotonic() > deadline:
                raise TimeoutError("the search index stayed locked by another writer")
            time.sleep(0.2)
        report["repaired"] = len(broken) + len(extra)
    table = listed_table(connection)
    table.position = position
    table.save(state.snapshot_path)
    with state.lock:
        state.table = table
    return report
