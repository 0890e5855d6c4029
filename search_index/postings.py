"""Posting lists of the short text fields (names, clinic names, credentials) as numpy
arrays, one set per whoosh segment, decoded once and kept beside the segment.

A name search reads a few posting lists whole (a common name is in 10,000 documents of
1,000,000, a clinic word in 100,000). whoosh decodes postings one at a time in Python
(unpickling each block with its positions, then one call per posting): that was 85% of
a name search at 1,000,000 listings. A whoosh segment never changes once written (its
deletions are kept beside it and applied here at read time), so its posting lists of
these fields can be decoded once, into per field: the sorted terms, where each term's
documents start, and the document numbers; with the pid of every document number. They
are saved as ``<segment id>.postings.npz`` in the index directory, so every process loads
them in milliseconds; the writer makes them for the segments it writes
(``TextIndex.try_apply``, ``TextIndex.rebuild``) and a reader makes a missing one
itself. ``tests/search_index/test_postings.py`` compares them with whoosh's own postings,
and name searches through them with searches reading whoosh's postings.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein
from whoosh.matching.wrappers import FilterMatcher

#: The fields whose postings are kept as arrays (what name matching reads).
FIELDS = ("name", "clinic", "credentials")
#: Bumped when the file layout changes (older files are then made again).
FORMAT = 1
SUFFIX = ".postings.npz"


def postings_path(directory: str, segment_id: str) -> str:
    """Where the arrays of one segment are kept."""
    return os.path.join(directory, segment_id + SUFFIX)


class FieldPostings:
    """One field's posting lists in one segment: ``docnums(term)`` in ascending order, and
    the terms near a word (``within``)."""

    def __init__(self, terms: np.ndarray, starts: np.ndarray, docs: np.ndarray):
        self.terms = terms  # in whoosh's lexicon order (code points), as numpy sorts them
        self.starts = starts
        self.docs = docs
        self.lengths = np.char.str_len(terms) if len(terms) else np.empty(0, dtype=np.int64)
        self._index = {term: position for position, term in enumerate(terms.tolist())}

    def within(self, word: str, distance: int, prefix: int) -> list[str]:
        """The terms within ``distance`` Levenshtein edits of ``word`` that begin with its
        first ``prefix`` characters, in lexicon order: what whoosh's ``terms_within`` finds
        by walking a Levenshtein automaton in Python, found here by rapidfuzz among the
        terms of that beginning and a length within ``distance``."""
        low, high = 0, len(self.terms)
        start = word[:prefix]
        if start:
            low = int(np.searchsorted(self.terms, start, side="left"))
            if ord(start[-1]) < 0x10FFFF:
                following = start[:-1] + chr(ord(start[-1]) + 1)
                high = int(np.searchsorted(self.terms, following, side="left"))
        near = np.flatnonzero(np.abs(self.lengths[low:high] - len(word)) <= distance) + low
        candidates = self.terms[near].tolist()
        found = process.extract(word, candidates, scorer=Levenshtein.distance,
                                score_cutoff=distance, limit=None)
        return [candidates[index] for index in sorted(index for _, _, index in found)]

    def docnums(self, term: str) -> np.ndarray:
        """Document numbers (deleted ones included) of documents with ``term``."""
        position = self._index.get(term)
        if position is None:
            return self.docs[:0]
        return self.docs[self.starts[position]:self.starts[position + 1]]


class SegmentPostings:
    """The kept posting lists of one segment, and the pid of each of its document numbers."""

    def __init__(self, pids: np.ndarray, fields: dict[str, FieldPostings]):
        self.pids = pids
        self.fields = fields

    @classmethod
    def build(cls, leaf) -> SegmentPostings:
        """Decode a segment reader's postings of ``FIELDS`` (deleted documents included:
        deletions change, the segment does not)."""
        pids = np.fromiter(leaf.column_reader("pid"), dtype=np.int64, count=leaf.doc_count_all())
        fields = {}
        for field in FIELDS:
            terms, lengths, chunks = [], [], []
            decode = leaf.schema[field].from_bytes
            for btext in leaf.lexicon(field):
                matcher = leaf.postings(field, btext)
                if isinstance(matcher, FilterMatcher):  # the segment's deletions
                    matcher = matcher.child
                    matcher.reset()  # the filter moved it past deleted documents
                docs = np.fromiter(matcher.all_ids(), dtype=np.int32)
                terms.append(decode(btext))
                lengths.append(len(docs))
                chunks.append(docs)
            starts = np.zeros(len(terms) + 1, dtype=np.int64)
            np.cumsum(lengths, out=starts[1:])
            fields[field] = FieldPostings(
                np.array(terms, dtype=str), starts,
                np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int32))
        return cls(pids, fields)

    def save(self, path: str) -> None:
        """Write the arrays atomically (a reader never sees half a file)."""
        arrays = {"format": np.array([FORMAT]), "pids": self.pids}
        for field, postings in self.fields.items():
            arrays[f"{field}_terms"] = postings.terms
            arrays[f"{field}_starts"] = postings.starts
            arrays[f"{field}_docs"] = postings.docs
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-",
                                             suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **arrays)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    @classmethod
    def load(cls, path: str) -> SegmentPostings | None:
        """The arrays saved at ``path``; None when missing, unreadable or of another format."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"][0]) != FORMAT:
                    return None
                fields = {field: FieldPostings(data[f"{field}_terms"], data[f"{field}_starts"],
                                               data[f"{field}_docs"]) for field in FIELDS}
                return cls(data["pids"], fields)
        except (OSError, KeyError, ValueError):
            return None


def segment_postings(directory: str, leaf) -> SegmentPostings:
    """The kept postings of a segment reader's segment: loaded, or made and saved."""
    path = postings_path(directory, leaf.segment().segment_id())
    found = SegmentPostings.load(path)
    if found is None:
        found = SegmentPostings.build(leaf)
        with contextlib.suppress(OSError):  # a read-only index still answers
            found.save(path)
    return found


def remove_stale(directory: str, index_name: str, live_segments: set[str]) -> None:
    """Delete kept postings of ``index_name``'s segments that are no longer in it (merged)."""
    for filename in os.listdir(directory):
        if (filename.startswith(index_name + "_") and filename.endswith(SUFFIX)
                and filename[:-len(SUFFIX)] not in live_segments):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, filename))
