"""The full-text half of the search index: whoosh over names, credentials, clinic and bio.

Whoosh does what it is good at: text relevance, fuzzy (typo-tolerant) name
terms and spelling suggestions. Structured filters never go through it.

Layout of the index directory:

- ``CURRENT`` names the live whoosh index (``MAIN_<generation>``); a rebuild
  writes a new one beside it and switches ``CURRENT`` atomically, so an
  interrupted rebuild leaves the old index serving.
- ``<name>.position`` holds the last change-log id applied to that index.
- ``<segment id>.postings.npz``: the postings of names, clinic names and credentials of
  one whoosh segment as arrays (``search_index.postings``), read by name matching.

Writers never wait: ``try_apply`` takes whoosh's write lock without blocking and
says whether it did the work; whoever holds the lock checks for newer changes
after releasing it (see ``referral.search_sync``), so no update is lost and no
lock error reaches a user.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from whoosh import index as whoosh_index
from whoosh import query
from whoosh.analysis import CharsetFilter, LowercaseFilter, RegexTokenizer, StemmingAnalyzer
from whoosh.fields import KEYWORD, NUMERIC, STORED, TEXT, Schema
from whoosh.index import TOC, clean_files
from whoosh.reading import TermNotFound
from whoosh.support.charset import accent_map

from .bulk import build_segments
from .postings import SegmentPostings, postings_path, remove_stale, segment_postings

CURRENT_FILE = "CURRENT"
#: A term found in more than this share of documents is too common to search for in bios.
COMMON_TERM_SHARE = 0.05
#: The most text matches considered for one query (best-scored first).
MAX_TEXT_MATCHES = 20_000

_name_analyzer = RegexTokenizer(r"\w+") | LowercaseFilter() | CharsetFilter(accent_map)

SCHEMA = Schema(
    pid=NUMERIC(int, bits=64, stored=True, unique=True, sortable=True, signed=False),
    name=TEXT(analyzer=_name_analyzer, field_boost=3.0, spelling=True),
    credentials=KEYWORD(lowercase=True, scorable=True),
    clinic=TEXT(analyzer=_name_analyzer, field_boost=1.5, spelling=True),
    bio=TEXT(analyzer=StemmingAnalyzer()),
    version=STORED,
)


#: Fuzzy expansions of query words per segment: ``(segment id, field, word, distance,
#: prefix) -> terms``. Segments never change once written, so an entry stays exact for
#: as long as its segment exists; building whoosh's Levenshtein automaton in Python is
#: the slow part of a typo-tolerant search, and patients repeat words.
_EXPANSIONS: dict[tuple, tuple[str, ...]] = {}
_EXPANSION_LIMIT = 200_000


def terms_within(reader, field: str, word: str, distance: int, prefix: int) -> tuple[str, ...]:
    """``reader.terms_within(...)`` (indexed terms within ``distance`` edits of ``word``),
    remembered per segment."""
    segment = reader.segment() if hasattr(reader, "segment") else None
    if segment is None:  # a reader over several segments: not remembered
        return tuple(reader.terms_within(field, word, distance, prefix=prefix))
    key = (segment.segment_id(), field, word, distance, prefix)
    found = _EXPANSIONS.get(key)
    if found is None:
        if len(_EXPANSIONS) >= _EXPANSION_LIMIT:
            _EXPANSIONS.clear()
        found = _EXPANSIONS[key] = tuple(reader.terms_within(field, word, distance,
                                                             prefix=prefix))
    return found


class CachedFuzzyTerm(query.FuzzyTerm):
    """whoosh's ``FuzzyTerm`` with its expansions from ``terms_within`` (the same terms,
    so the same matches and scores)."""

    def _btexts(self, ixreader):
        return terms_within(ixreader, self.fieldname, self.text, self.maxdist,
                            self.prefixlength)


def words(text: str) -> list[str]:
    """The search words of a query string (lower-cased, accents folded)."""
    return [token.text for token in _name_analyzer(text or "")]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two words."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _write_atomic(path: str, content: str) -> None:
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(handle, "w") as out:
        out.write(content)
    os.replace(temporary, path)


class TextIndex:
    """One directory's whoosh index, its position in the change log, and its searcher."""

    def __init__(self, directory: str, kept_postings: bool = True):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.RLock()
        self._searcher = None
        self._searcher_name = None
        #: Name matching reads postings kept as arrays (``search_index.postings``);
        #: False reads whoosh's postings each time (the straightforward way, for tests).
        self.kept_postings = kept_postings
        self._segments: dict[str, SegmentPostings] = {}
        self._live: dict[str, tuple[frozenset, np.ndarray]] = {}

    # -- naming and positions ------------------------------------------------------------

    def current_name(self) -> str | None:
        """The name of the live whoosh index, or None before the first build."""
        name = self._named_current()
        if name is None:
            return None
        return name if whoosh_index.exists_in(self.directory, indexname=name) else None

    def _named_current(self) -> str | None:
        try:
            with open(os.path.join(self.directory, CURRENT_FILE)) as handle:
                return handle.read().strip()
        except FileNotFoundError:
            return None

    def ensure(self) -> str:
        """The live index name, creating an empty index first if there is none."""
        name = self.current_name()
        if name is None:
            name = self._new_name()
            whoosh_index.create_in(self.directory, SCHEMA, indexname=name)
            self._set_position(name, 0)
            self._switch(name)
        return name

    def position(self, name: str | None = None) -> int:
        """The last change-log id applied to the live index (0 if none)."""
        name = name or self.current_name()
        if name is None:
            return 0
        try:
            with open(os.path.join(self.directory, f"{name}.position")) as handle:
                return int(json.load(handle)["position"])
        except (FileNotFoundError, ValueError, KeyError):
            return 0

    def _set_position(self, name: str, position: int) -> None:
        _write_atomic(os.path.join(self.directory, f"{name}.position"),
                      json.dumps({"position": int(position)}))

    def _switch(self, name: str) -> None:
        _write_atomic(os.path.join(self.directory, CURRENT_FILE), name)

    def _new_name(self) -> str:
        return f"MAIN{time.time_ns()}x{os.getpid()}"

    def _open(self, name: str):
        return whoosh_index.open_dir(self.directory, indexname=name, schema=SCHEMA)

    # -- writing -----------------------------------------------------------------------------

    def try_apply(self, documents: Iterable[dict], removed: Iterable[int], position: int,
                  force: bool = False) -> bool:
        """Apply changes up to ``position`` if the write lock is free now; False if busy.

        Documents replace those with the same ``pid``; ``removed`` pids are deleted.
        Applying the same change twice is harmless. Unless ``force`` (repairs), changes
        at or below the index's position are skipped as already applied.
        """
        name = self.ensure()
        try:
            writer = self._open(name).writer(timeout=0.0)
        except whoosh_index.LockError:
            return False
        try:
            if position <= self.position(name) and not force:
                writer.cancel()
                return True
            for pid in removed:
                writer.delete_by_term("pid", int(pid))
            for document in documents:
                writer.update_document(**document)
            writer.commit()
        except BaseException:
            with contextlib.suppress(Exception):  # the writer may already be closed
                writer.cancel()
            raise
        self._set_position(name, position)
        self._keep_postings(name)
        return True

    def _keep_postings(self, name: str) -> None:
        """Make the kept postings of the index's new segments (the writer does it once, so
        searches need not) and delete those of segments merged away."""
        with self._open(name).reader() as reader:
            live = set()
            for leaf, _ in reader.leaf_readers():
                if leaf.segment() is not None:
                    segment_id = leaf.segment().segment_id()
                    live.add(segment_id)
                    if not os.path.exists(postings_path(self.directory, segment_id)):
                        segment_postings(self.directory, leaf)
        remove_stale(self.directory, name, live)

    def rebuild(self, documents: Iterable[dict], position: int,
                progress: Callable[[int], None] | None = None, procs: int = 1) -> str:
        """Build a whole new index from ``documents`` with whoosh's own writer and make it
        live; return its name (the straightforward rebuild, which ``rebuild_parts``,
        faster, is tested against).

        The old index keeps serving until the switch; an interrupted rebuild leaves
        only an unused half-built index behind, removed by the next rebuild.
        """
        self.remove_unused()
        name = self._new_name()
        new_index = whoosh_index.create_in(self.directory, SCHEMA, indexname=name)
        writer = new_index.writer(procs=procs, limitmb=256, multisegment=procs > 1)
        try:
            batch = 0
            for document in documents:
                writer.add_document(**document)
                batch += 1
                if progress and batch == 1000:
                    progress(batch)
                    batch = 0
            writer.commit()
        except BaseException:
            writer.cancel()
            raise
        if progress and batch:
            progress(batch)
        self._set_position(name, position)
        self._keep_postings(name)
        self._switch(name)
        self.remove_unused()
        return name

    def rebuild_parts(self, parts: Sequence[Callable[[], Iterable[dict]]], position: int,
                      progress: Callable[[int], None] | None = None,
                      meanwhile: Callable[[], None] | None = None) -> tuple[str, int]:
        """Build a whole new index from ``parts`` and make it live; return its name and
        how many documents it holds.

        Each part (a callable giving documents) becomes one segment, written by
        ``search_index.bulk`` in a process of its own when there are several (the same
        index ``rebuild`` writes, faster); ``meanwhile()`` runs in this process as they
        work. As with ``rebuild``, the old index serves until the switch.
        """
        self.remove_unused()
        name = self._new_name()
        new_index = whoosh_index.create_in(self.directory, SCHEMA, indexname=name)
        lock = new_index.lock("WRITELOCK")  # (remove_unused leaves a locked index alone)
        if not lock.acquire():
            raise whoosh_index.LockError(f"{name} is being written")
        try:
            segments = build_segments(new_index, parts, progress, meanwhile)
            generation = new_index.latest_generation() + 1
            TOC(SCHEMA, segments, generation).write(new_index.storage, name)
            clean_files(new_index.storage, name, generation, segments)
        finally:
            new_index.storage.temp_storage(f"{name}.tmp").destroy()
            lock.release()
        self._set_position(name, position)
        self._keep_postings(name)
        self._switch(name)
        self.remove_unused()
        return name, sum(segment.doc_count_all() for segment in segments)

    def remove_unused(self) -> None:
        """Delete files of whoosh indexes other than the live one (when not being written)."""
        live = self.current_name()
        names = set()
        for filename in os.listdir(self.directory):
            match = re.match(r"^_?(MAIN\d+x\d+)[_.]", filename)
            if match and match.group(1) != live:
                names.add(match.group(1))
        for name in names:
            lock = os.path.join(self.directory, f"{name}_WRITELOCK")
            try:
                if whoosh_index.exists_in(self.directory, indexname=name):
                    writer = self._open(name).writer(timeout=0.0)
                    writer.cancel()
            except whoosh_index.LockError:
                continue  # a writer is still at work on it
            except Exception:
                pass  # a half-built index cannot be opened: nothing can be writing it
            for filename in os.listdir(self.directory):
                if (filename.startswith(f"_{name}_") or filename.startswith(f"{name}_")
                        or filename == f"{name}.position"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.directory, filename))
            if os.path.exists(lock):
                os.unlink(lock)

    # -- reading ---------------------------------------------------------------------------

    def searcher(self):
        """A whoosh searcher on the live index, refreshed when the index has changed."""
        with self._lock:
            name = self._named_current()
            if self._searcher is None or name != self._searcher_name:
                name = self.ensure()  # (the index this searcher has open exists)
            if self._searcher is not None and self._searcher_name != name:
                self._searcher.close()
                self._searcher = None
            if self._searcher is None:
                self._searcher = self._open(name).searcher()
                self._searcher_name = name
            elif not self._searcher.up_to_date():
                # Reopen rather than Searcher.refresh(): refreshed searchers here kept
                # seeing documents deleted in the meantime.
                self._searcher.close()
                self._searcher = self._open(name).searcher()
            return self._searcher

    def close(self) -> None:
        """Release the searcher's files."""
        with self._lock:
            if self._searcher is not None:
                self._searcher.close()
                self._searcher = None

    def _term_query(self, searcher, word: str, total_docs: int, fuzzy: bool):
        """All ways one query word can match: in names, credentials, clinic name and bio
        (bio only when the word is not too common); with ``fuzzy``, names and clinic
        names within a small edit distance too."""
        clauses = [query.Term("name", word), query.Term("credentials", word),
                   query.Term("clinic", word)]
        if fuzzy and len(word) >= 4:
            distance = 2 if len(word) >= 8 else 1
            clauses.append(CachedFuzzyTerm("name", word, maxdist=distance, prefixlength=1,
                                           boost=0.6))
            clauses.append(CachedFuzzyTerm("clinic", word, maxdist=1, prefixlength=1,
                                           boost=0.4))
        for stem in SCHEMA["bio"].process_text(word, mode="query"):
            if searcher.doc_frequency("bio", stem) <= max(COMMON_TERM_SHARE * total_docs, 1000):
                clauses.append(query.Term("bio", stem))
        return query.Or(clauses)

    # Names, credentials and clinic names are matched as sets of postings in numpy:
    # a name search touches a few short posting lists, so reading them whole and
    # intersecting arrays beats scoring every match one by one in Python.
    _WEIGHTS = {("name", False): 3.0, ("name", True): 2.0, ("clinic", False): 1.5,
                ("clinic", True): 1.0, ("credentials", False): 1.0}

    def _leaves(self, searcher) -> list[tuple]:
        """``(segment reader, kept postings)`` per segment (see ``search_index.postings``)."""
        leaves = []
        seen = set()
        for leaf, _ in searcher.reader().leaf_readers():
            if leaf.segment() is None:  # an empty index has a reader with no segment
                continue
            segment_id = leaf.segment().segment_id()
            seen.add(segment_id)
            postings = self._segments.get(segment_id)
            if postings is None:
                postings = self._segments[segment_id] = segment_postings(self.directory, leaf)
            leaves.append((leaf, postings))
        for stale in set(self._segments) - seen:
            self._segments.pop(stale, None)  # (another thread may have dropped it)
            self._live.pop(stale, None)
        return leaves

    def _live_pids(self, leaf, postings: SegmentPostings) -> np.ndarray:
        """The pid of each document number of a segment, -1 for deleted documents."""
        deleted = leaf.deleted_docs_set
        segment_id = leaf.segment().segment_id()
        found = self._live.get(segment_id)
        if found is None or found[0] is not deleted:
            live = postings.pids
            if deleted:
                live = live.copy()
                live[np.fromiter(deleted, dtype=np.int64, count=len(deleted))] = -1
            found = self._live[segment_id] = (deleted, live)
        return found[1]

    def _terms_within(self, leaf, postings: SegmentPostings, field: str, word: str,
                      distance: int) -> list[str] | tuple[str, ...]:
        """Terms of a segment's ``field`` within ``distance`` edits of ``word`` (same first
        letter): from the kept terms, or whoosh's automaton when postings are not kept."""
        if not self.kept_postings:
            return terms_within(leaf, field, word, distance, 1)
        return postings.fields[field].within(word, distance, 1)

    def _postings(self, leaf, postings: SegmentPostings, field: str, term: str) -> np.ndarray:
        """Pids of the live documents with ``term`` in ``field``, in document order."""
        if not self.kept_postings:  # whoosh's own postings, decoded now
            try:
                matcher = leaf.postings(field, term)
            except TermNotFound:
                return np.empty(0, dtype=np.int64)
            return postings.pids[np.fromiter(matcher.all_ids(), dtype=np.int64)]
        hit = self._live_pids(leaf, postings)[postings.fields[field].docnums(term)]
        return hit[hit >= 0]

    def _word_matches(self, leaves, word: str, fuzzy: bool) -> tuple[np.ndarray, np.ndarray]:
        """Pids matching one word in names, clinic names or credentials, with the best
        weight of how each matched (exact name beats fuzzy name beats clinic)."""
        found_pids, found_weights = [], []
        for leaf, postings in leaves:
            for field, is_fuzzy in self._WEIGHTS:
                if is_fuzzy and (not fuzzy or len(word) < 3):
                    continue
                if is_fuzzy:
                    distance = 2 if (field == "name" and len(word) >= 8) else 1
                    terms = [t for t in self._terms_within(leaf, postings, field, word,
                                                           distance) if t != word]
                else:
                    terms = [word]
                for term in terms:
                    hit = self._postings(leaf, postings, field, term)
                    if len(hit):
                        found_pids.append(hit)
                        found_weights.append(np.full(len(hit), self._WEIGHTS[field, is_fuzzy]))
        if not found_pids:
            return np.empty(0, dtype=np.int64), np.empty(0)
        all_pids = np.concatenate(found_pids)
        all_weights = np.concatenate(found_weights)
        order = np.lexsort((-all_weights, all_pids))
        all_pids, all_weights = all_pids[order], all_weights[order]
        first = np.unique(all_pids, return_index=True)[1]
        return all_pids[first], all_weights[first]

    def _match_names(self, searcher, terms: list[str], fuzzy: bool):
        leaves = self._leaves(searcher)
        pids, scores = None, None
        for word in terms:
            word_pids, word_scores = self._word_matches(leaves, word, fuzzy)
            if pids is None:
                pids, scores = word_pids, word_scores
            else:
                pids, left, right = np.intersect1d(pids, word_pids, assume_unique=True,
                                                   return_indices=True)
                scores = scores[left] + word_scores[right]
            if not len(pids):
                break
        return pids, scores

    def search(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(pids, scores)`` of documents matching every word of ``text``, best first.

        Names, credentials and clinic names are tried first, exactly and then within
        a small edit distance (typos); only when they match nothing does whoosh score
        the words across every field, bios included.
        """
        terms = words(text)
        if not terms:
            return np.empty(0, dtype=np.int64), np.empty(0)
        searcher = self.searcher()
        total = searcher.doc_count()
        if total == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        for fuzzy in (False, True):
            pids, scores = self._match_names(searcher, terms, fuzzy)
            if len(pids):
                order = np.argsort(-scores, kind="stable")
                return pids[order], scores[order]
        for fuzzy in (False, True):
            whole = query.And([self._term_query(searcher, term, total, fuzzy) for term in terms])
            results = searcher.search(whole, limit=MAX_TEXT_MATCHES)
            if results.scored_length():
                break
        leaves = [(leaf, postings.pids) for leaf, postings in self._leaves(searcher)]
        offsets = [offset for _, offset in searcher.reader().leaf_readers()]
        hits = results.top_n
        docnums = np.fromiter((docnum for _, docnum in hits), dtype=np.int64, count=len(hits))
        scores = np.fromiter((score for score, _ in hits), dtype=np.float64, count=len(hits))
        pids = np.empty(len(docnums), dtype=np.int64)
        segment = np.searchsorted(np.array(offsets), docnums, side="right") - 1
        for index, (_, leaf_pids) in enumerate(leaves):
            inside = segment == index
            pids[inside] = leaf_pids[docnums[inside] - offsets[index]]
        return pids, scores

    def suggest(self, text: str) -> str | None:
        """A corrected spelling of ``text`` from indexed names and clinic words, or None.

        Each unknown word becomes the indexed word nearest to it by edit distance
        (the more frequent one on a tie).
        """
        searcher = self.searcher()
        leaves = self._leaves(searcher)
        corrected, changed = [], False
        for word in words(text):
            if searcher.doc_frequency("name", word) or searcher.doc_frequency("clinic", word):
                corrected.append(word)
                continue
            options = {}
            for leaf, postings in leaves:
                for field in ("name", "clinic"):
                    for option in self._terms_within(leaf, postings, field, word, 2):
                        options[option] = options.get(option, 0) + leaf.doc_frequency(field,
                                                                                      option)
            if options:
                best = min(options, key=lambda o: (edit_distance(word, o), -options[o], o))
                corrected.append(best)
                changed = True
            else:
                corrected.append(word)
        return " ".join(corrected) if changed else None

    def stored_versions(self) -> dict[int, str]:
        """``{pid: version}`` of every live document (for consistency checks)."""
        searcher = self.searcher()
        return {int(fields["pid"]): fields.get("version")
                for fields in searcher.reader().all_stored_fields()}
