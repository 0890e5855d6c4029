"""The search service: the one small interface through which business code reaches the
search index, its implementation over this node's index, and an in-memory fake.

Business code (patient search, matching) asks questions in ``Criteria`` and gets
ids, versions and plain arrays back; it never takes the index lock, never reads
the table's raw columns and never sees whoosh. ``IndexSearchService`` answers
from this process's ``SearchState`` (whoosh text index + numpy table, kept current
from the change log); ``InMemorySearchService`` answers from listings given to it,
with no database and no files, for unit tests of search and matching rules.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from search_index.searcher import (
    Criteria,
    SearchMemo,
    any_bits,
    count_matches,
    relevance,
    search,
    unverified,
)
from search_index.table import ProviderTable
from search_index.text import words

from .search_sync import (
    VOCABULARIES,
    BackgroundApplier,
    SearchState,
    check_index,
    latest_change,
    table_record,
)


@dataclass
class Found:
    """One page of a search: ids in rank order with what the page needs to show them."""

    ids: list[int]
    versions: list[float]
    distances: np.ndarray
    text_scores: np.ndarray
    stale: np.ndarray
    reported: np.ndarray
    total: int
    facets: dict = field(default_factory=dict)


@dataclass
class Candidates:
    """The best listings for one side of a pair, with the features pair scoring needs."""

    ids: np.ndarray
    versions: np.ndarray
    clinic_ids: np.ndarray      # -1: no clinic
    fee_min: np.ndarray         # -1: no fee listed
    fee_max: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    distances: np.ndarray       # miles from the patient (NaN: not computed)
    stale: np.ndarray
    reported: np.ndarray
    fit: np.ndarray             # relevance to the patient (``search_index.searcher.relevance``)
    treats_concern: np.ndarray  # lists one of the patient's concerns itself
    total: int                  # how many listings met the criteria before the cut

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def unverified(self) -> np.ndarray:
        """Stale or reported: scored down alike (``search_index.searcher.unverified``)."""
        return unverified(self.stale, self.reported)


class SearchService(Protocol):
    """What business code may ask of the search index."""

    def refresh(self, session, *, text: bool = False) -> bool | None:
        """Bring the index up to the newest committed change; with ``text``, the text
        index too (returns whether it is current; None when not asked)."""

    def knows_word(self, word: str) -> bool:
        """Whether a word appears in a listed name or clinic name."""

    def find(self, session, criteria: Criteria, text: str | None = None, *,
             facets: bool = True, memo: SearchMemo | None = None) -> Found:
        """Filter, rank and page listings for ``criteria`` (and free ``text``); a ``memo``
        shared by the questions of one search lets them reuse each other's work."""

    def count(self, session, criteria: Criteria, text: str | None = None, *,
              memo: SearchMemo | None = None) -> int:
        """How many listings ``find`` would find (its ``total``), without ranking them."""

    def candidates(self, session, criteria: Criteria, concerns=(),
                   memo: SearchMemo | None = None) -> Candidates:
        """The best ``criteria.limit`` listings for one side of a pair, with features (a
        ``memo`` shared by both sides computes the masks they have in common once)."""

    def suggest(self, text: str) -> str | None:
        """A spelling suggestion for free text (None when none is better)."""

    def listings(self, session, ids: list[int], versions: list[float],
                 dump: Callable) -> dict[int, dict]:
        """``{id: listing as dump renders it}``, never older than ``versions``."""

    def sync(self, connection, allow_rebuild: bool = False) -> bool:
        """Apply pending changes to the text index (False: still behind)."""

    def rebuild(self, connection, progress=None, procs: int = 1) -> int:
        """Rebuild the whole index from the database; return how many listings it holds."""

    def check(self, connection, repair: bool = True) -> dict:
        """Compare the index with the database (and repair it)."""

    def pending(self, connection) -> int:
        """How many change-log entries the text index has not applied."""

    def deferred_sync(self) -> contextlib.AbstractContextManager:
        """A block during which commits do not update the text index (bulk imports)."""

    @property
    def sync_on_commit(self) -> bool:
        """Whether a commit that changed listings should update the text index now."""

    def committed(self, engine) -> None:
        """Listing changes were committed on ``engine``: apply them in the background."""

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until changes committed so far are in the text index (False: not yet)."""


class IndexSearchService:
    """The search service over this process's whoosh index and numpy table."""

    def __init__(self, index_dir: str, cache_listings: bool = True, sync_on_commit: bool = True):
        self.state = SearchState(index_dir, cache_listings)
        self.applier = BackgroundApplier(self.state)
        self._sync_on_commit = sync_on_commit
        self._deferred = 0

    # -- queries ------------------------------------------------------------------------

    def refresh(self, session, *, text: bool = False) -> bool | None:
        """Bring the table (and, with ``text``, the text index) up to date."""
        with self.state.lock:
            table = self._table(session)
            return (self.state.text_current(session.connection(), table.position) if text
                    else None)

    def _table(self, session) -> ProviderTable:
        """The table, brought up to the newest change once per transaction of ``session``
        (a search's several questions cost one look at the change log, not one each).
        A flush of listing changes in the transaction makes it look again."""
        from sqlalchemy.orm import scoped_session

        if isinstance(session, scoped_session):
            session = session()
        key = f"search_table_checked_{id(self)}"
        transaction = session.get_transaction()
        if (transaction is not None and session.info.get(key) is transaction
                and self.state.table is not None and not session.info.get("provider_changes")):
            return self.state.table
        table = self.state.refresh_table(session.connection())
        session.info[key] = session.get_transaction()
        return table

    def knows_word(self, word: str) -> bool:
        """Whether ``word`` is a term of a listed name or clinic name."""
        searcher = self.state.text.searcher()
        return bool(searcher.doc_frequency("name", word) or searcher.doc_frequency("clinic", word))

    def find(self, session, criteria: Criteria, text: str | None = None, *,
             facets: bool = True, memo: SearchMemo | None = None) -> Found:
        """Search the table for ``criteria``, intersected with the text index for ``text``."""
        with self.state.lock:
            table = self._table(session)
            criteria = self._with_text(session, table, criteria, text, memo)
            return _found(table, search(table, criteria, with_facets=facets, memo=memo))

    def count(self, session, criteria: Criteria, text: str | None = None, *,
              memo: SearchMemo | None = None) -> int:
        """How many listings ``find`` would find, not ranked (cheap with a shared ``memo``)."""
        with self.state.lock:
            table = self._table(session)
            return count_matches(table, self._with_text(session, table, criteria, text, memo),
                                 memo)

    def _with_text(self, session, table: ProviderTable, criteria: Criteria, text: str | None,
                   memo: SearchMemo | None) -> Criteria:
        """``criteria`` narrowed to the text index's matches for ``text`` (once per memo)."""
        if not text:
            return criteria
        self.state.text_current(session.connection(), table.position)
        found = (memo.remember(("text", text), lambda: self.state.text.search(text))
                 if memo is not None else self.state.text.search(text))
        return dataclasses.replace(criteria, text_ids=found[0], text_scores=found[1])

    def candidates(self, session, criteria: Criteria, concerns=(),
                   memo: SearchMemo | None = None) -> Candidates:
        """One side's candidates for pairing, best first."""
        with self.state.lock:
            return _candidates(self._table(session), criteria, concerns, memo)

    def suggest(self, text: str) -> str | None:
        """The text index's spelling suggestion."""
        return self.state.text.suggest(text)

    def listings(self, session, ids: list[int], versions: list[float],
                 dump: Callable) -> dict[int, dict]:
        """Rendered listings, from the per-process cache while current, else the database."""
        from sqlalchemy import select
        from sqlalchemy.orm import joinedload

        from .models import Provider

        def load(missing: list[int]) -> dict[int, dict]:
            # One statement (listings joined to their clinics), not one per relationship.
            providers = session.scalars(select(Provider).options(joinedload(Provider.clinic))
                                        .where(Provider.id.in_(missing)))
            return {provider.id: dump(provider) for provider in providers}

        return self.state.cached_listings(ids, versions, load)

    # -- keeping the index current --------------------------------------------------------

    def sync(self, connection, allow_rebuild: bool = False) -> bool:
        """Apply pending changes to the text index unless another process is on it."""
        return self.state.sync_text(connection, allow_rebuild=allow_rebuild)

    def rebuild(self, connection, progress=None, procs: int = 1) -> int:
        """Rebuild the text index and the table snapshot from the database."""
        return self.state.rebuild(connection, progress=progress, procs=procs)

    def check(self, connection, repair: bool = True) -> dict:
        """Compare the index with the database; with ``repair``, fix every difference."""
        return check_index(self.state, connection, repair=repair)

    def pending(self, connection) -> int:
        """Change-log entries not yet in the text index."""
        return latest_change(connection) - self.state.text.position()

    @property
    def sync_on_commit(self) -> bool:
        """False while a ``deferred_sync`` block runs or when configured off."""
        return self._sync_on_commit and not self._deferred

    def committed(self, engine) -> None:
        """Wake this process's background applier (the caller does not wait)."""
        self.applier.wake(engine)

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait for the background applier to apply what was committed before the call."""
        return self.applier.settle(timeout)

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Commits inside the block leave the text index to a sync afterwards."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1

    def forget(self) -> None:
        """Drop everything this process holds (after the database was emptied)."""
        self.state.forget()


def _found(table: ProviderTable, hits) -> Found:
    return Found(ids=hits.ids.tolist(), versions=table.columns["version"][hits.rows].tolist(),
                 distances=hits.distances, text_scores=hits.text_scores, stale=hits.stale,
                 reported=hits.reported, total=hits.total, facets=hits.facets)


def _candidates(table: ProviderTable, criteria: Criteria, concerns,
                memo: SearchMemo | None = None) -> Candidates:
    hits = search(table, criteria, with_facets=False, memo=memo)
    rows = hits.rows
    columns = table.columns
    return Candidates(
        ids=columns["id"][rows], versions=columns["version"][rows],
        clinic_ids=columns["clinic_id"][rows], fee_min=columns["fee_min"][rows],
        fee_max=columns["fee_max"][rows], latitude=columns["latitude"][rows],
        longitude=columns["longitude"][rows], distances=hits.distances, stale=hits.stale,
        reported=hits.reported,
        fit=relevance(table, rows, hits.distances, np.zeros(len(rows)), criteria),
        treats_concern=(any_bits(table, "concerns", concerns, rows) if concerns
                        else np.zeros(len(rows), dtype=bool)),
        total=hits.total)


class InMemorySearchService:
    """A search service over listings held in memory: no database, no files.

    Structured filters, reach, ranking and facets are the real ones (the same
    numpy table and searcher); free text matches a listing when each word is in
    its name, credentials, clinic or bio. For unit tests of search and matching.
    """

    sync_on_commit = False

    def __init__(self, listings: Iterable[dict] = ()):
        self.table = ProviderTable(VOCABULARIES)
        self.documents: dict[int, dict] = {}
        for listing in listings:
            self.add(listing)

    def add(self, listing: dict) -> None:
        """Index a listing given as the API renders it (``id``, listing fields, ``clinic``,
        ``last_verified_at``, ``updated_at``, ``active``)."""
        self.documents[listing["id"]] = listing
        self.table.upsert([table_record({
            **listing, "clinic_id": (listing.get("clinic") or {}).get("id"),
            "last_verified_at": _when(listing.get("last_verified_at")),
            "reported_at": listing.get("reported_at"),
            "updated_at": _when(listing.get("updated_at"))})])

    def _text_words(self, listing: dict) -> set[str]:
        clinic = (listing.get("clinic") or {}).get("name", "")
        return set(words(" ".join(filter(None, (
            listing["first_name"], listing["last_name"], listing.get("credentials"), clinic,
            listing.get("bio"))))))

    def refresh(self, session, *, text: bool = False) -> bool | None:
        """Nothing to catch up: the listings are given directly."""
        return True if text else None

    def knows_word(self, word: str) -> bool:
        """Whether a listed name or clinic has the word."""
        return any(word in words(f"{d['first_name']} {d['last_name']} "
                                 f"{(d.get('clinic') or {}).get('name', '')}")
                   for d in self.documents.values())

    def find(self, session, criteria: Criteria, text: str | None = None, *,
             facets: bool = True, memo: SearchMemo | None = None) -> Found:
        """The real structured search over the held listings, with plain word matching."""
        return _found(self.table, search(self.table, self._with_text(criteria, text),
                                         with_facets=facets, memo=memo))

    def count(self, session, criteria: Criteria, text: str | None = None, *,
              memo: SearchMemo | None = None) -> int:
        """How many listings ``find`` would find (the real counting, memo included)."""
        return count_matches(self.table, self._with_text(criteria, text), memo)

    def _with_text(self, criteria: Criteria, text: str | None) -> Criteria:
        if not text:
            return criteria
        wanted = set(words(text))
        ids = [pid for pid, listing in self.documents.items()
               if wanted <= self._text_words(listing)]
        return dataclasses.replace(criteria, text_ids=np.array(ids, dtype=np.int64),
                                   text_scores=np.ones(len(ids)))

    def candidates(self, session, criteria: Criteria, concerns=(),
                   memo: SearchMemo | None = None) -> Candidates:
        """One side's candidates, exactly as the index service computes them."""
        return _candidates(self.table, criteria, concerns, memo)

    def suggest(self, text: str) -> str | None:
        """No spelling suggestions."""
        return None

    def listings(self, session, ids: list[int], versions: list[float],
                 dump: Callable) -> dict[int, dict]:
        """The held listings (already rendered)."""
        return {pid: self.documents[pid] for pid in ids if pid in self.documents}

    def sync(self, connection, allow_rebuild: bool = False) -> bool:
        """Always current."""
        return True

    def rebuild(self, connection, progress=None, procs: int = 1) -> int:
        """Nothing to rebuild; the count of held listings."""
        return len(self.documents)

    def check(self, connection, repair: bool = True) -> dict:
        """Nothing can differ."""
        return {"database": len(self.documents), "indexed": len(self.documents), "missing": [],
                "extra": [], "outdated": [], "repaired": 0, "position": 0}

    def pending(self, connection) -> int:
        """Never behind."""
        return 0

    def committed(self, engine) -> None:
        """Nothing to apply: the listings are given directly."""

    def settle(self, timeout: float = 30.0) -> bool:
        """Always current."""
        return True

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Nothing to defer."""
        yield


def _when(value):
    import datetime as dt

    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return value
