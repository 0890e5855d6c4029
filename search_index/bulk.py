"""Writing a whole whoosh segment from many documents at once (the full rebuild).

whoosh's ``SegmentWriter`` adds one document at a time: it analyses every field
value, puts each posting as a tuple into a sorting pool (spilled to disk in pickled
runs and merged back at commit), then replays the sorted postings into its codec,
looking up each document's field length again per posting. For a full rebuild of
1,000,000 listings that was most of the four minutes (``bench/RESULTS.md``, issue 17).

``SegmentBuilder`` writes the same segment with whoosh's own codec and per-document
writer, but:

- a field value is analysed once per distinct value (``field.index`` is a pure
  function of the value; names, clinic names and credentials repeat a lot), not once
  per document; in bios each distinct word is analysed once (``TokenwiseAnalysis``),
  and a pid's range terms come from one sortable form (``NumericAnalysis``);
- postings are kept in memory grouped by field and term, in document order, so
  writing them needs only the terms sorted, not every posting;
- the field lengths given to the codec come from the builder's own arrays;
- the kept postings of the short fields (``search_index.postings``) come straight from
  the same arrays, not from decoding the segment again.

``TextIndex.rebuild_parts`` runs one builder per process, each reading its own share of
the documents, and commits their segments together. ``tests/search_index/test_bulk.py``
compares what it writes with what whoosh's writer writes for the same documents.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import queue
import traceback
from array import array
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from whoosh.analysis import (
    CharsetFilter,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
    Token,
)
from whoosh.analysis.analyzers import CompositeAnalyzer
from whoosh.codec import default_codec
from whoosh.fields import NUMERIC
from whoosh.formats import Positions
from whoosh.util.numeric import to_sortable

from .postings import FIELDS, FieldPostings, SegmentPostings, postings_path

#: Distinct values (or words) remembered per field before the memory of them is cleared.
MEMO_LIMIT = 200_000
#: Fields whose values are mostly unique (bios, pids): not remembered whole.
UNIQUE_VALUED = frozenset({"bio", "pid"})
#: Documents between two updates of the shared progress count.
PROGRESS_EVERY = 1000
#: Filters that change or drop each token on its own, whatever the tokens around it.
TOKENWISE_FILTERS = (LowercaseFilter, StopFilter, StemFilter, CharsetFilter)


def whoosh_analysis(field, value) -> list[tuple[bytes, int, tuple]]:
    """``(term bytes, frequency, (weight, value bytes))`` per term of a field value, from
    ``field.index`` (the weight a float, as whoosh's writer makes it by applying the
    field boost of 1.0)."""
    return [(term, freq, (weight * 1.0, vbytes or b""))
            for term, freq, weight, vbytes in field.index(value)]


class TokenwiseAnalysis:
    """``whoosh_analysis`` of text for a field that keeps positions and whose analyser is a
    regex tokenizer followed by filters that each treat every token on its own (lower
    case, accent folding, stop words, stemming): what becomes of each distinct word is
    found once, by the analyser's own filters, and remembered; positions are numbered as
    the stop filter numbers them (the first kept word keeps its place in the text, the
    next ones follow it without gaps). ``of(field)`` is None for any other field.

    The stemming analyser spends most of its time passing each word through a chain of
    generators; a bio is a few dozen words from a vocabulary of a few thousand.
    """

    def __init__(self, field, tokenizer, filters: list, renumber: bool):
        self.field = field
        self.expression = tokenizer.expression
        self.filters = filters
        self.renumber = renumber
        self.field_boost = field.format.field_boost
        self.encode = field.format.encode
        self.fates: dict[str, bytes | None] = {}
        self.postings: dict[tuple, tuple[float, bytes]] = {}

    @classmethod
    def of(cls, field) -> TokenwiseAnalysis | None:
        """The analysis for ``field`` when its analyser and format allow it, else None."""
        analyzer = field.analyzer
        if type(field.format) is not Positions or type(analyzer) is not CompositeAnalyzer:
            return None
        tokenizer, *filters = analyzer.items
        if type(tokenizer) is not RegexTokenizer or tokenizer.gaps:
            return None
        if any(type(f) not in TOKENWISE_FILTERS for f in filters):
            return None
        stops = [f for f in filters if type(f) is StopFilter]
        if len(stops) > 1:
            return None
        return cls(field, tokenizer, filters, bool(stops) and stops[0].renumber)

    def _fate(self, word: str) -> bytes | None:
        """The term ``word`` becomes (encoded), or None when it is stopped."""
        fates = self.fates
        if len(fates) >= MEMO_LIMIT:
            fates.clear()
        token = Token(positions=True, chars=False, removestops=True, mode="index",
                      boosts=True)
        token.text, token.boost, token.stopped, token.pos = word, 1.0, False, 0
        stream = iter((token,))
        for step in self.filters:
            stream = step(stream)
        kept = [t.text for t in stream if not t.stopped]
        fate = fates[word] = kept[0].encode("utf-8") if kept else None
        return fate

    def _posting(self, places: tuple) -> tuple[float, bytes]:
        """``(weight, value bytes)`` of a term at ``places`` (remembered)."""
        postings = self.postings
        if len(postings) >= MEMO_LIMIT:
            postings.clear()
        posting = postings[places] = (float(len(places)) * self.field_boost * 1.0,
                                      self.encode(list(places)))
        return posting

    def __call__(self, value: str) -> list[tuple[bytes, int, tuple]]:
        if type(value) is not str:
            return whoosh_analysis(self.field, value)
        fates = self.fates
        terms = [fates[word] if word in fates else self._fate(word)
                 for word in [match[0] for match in self.expression.finditer(value)]]
        if self.renumber:  # the first kept word keeps its place, the next ones follow it
            kept = [term for term in terms if term is not None]
            if not kept:
                return []
            first = next(place for place, term in enumerate(terms) if term is not None)
            placed = zip(range(first, first + len(kept)), kept, strict=True)
        else:
            placed = ((place, term) for place, term in enumerate(terms) if term is not None)
        positions: dict[bytes, list[int]] = {}
        for place, term in placed:
            found = positions.get(term)
            if found is None:
                positions[term] = [place]
            else:
                found.append(place)
        postings = self.postings
        analysed = []
        for term, places in positions.items():
            key = tuple(places)
            posting = postings.get(key) or self._posting(key)
            analysed.append((term, len(places), posting))
        return analysed


_MISSING = object()


class NumericAnalysis:
    """``whoosh_analysis`` of a number for a ``NUMERIC`` field (the pid): the number's
    sortable form is found once and shifted for each term of the field's ranges, where
    ``NUMERIC.index`` finds it again for each term."""

    #: Every term of a number has frequency 1 and weight 1.0, with no value bytes.
    POSTING = (1.0, b"")

    def __init__(self, field):
        self.field = field
        self.shifts = range(0, field.bits, field.shift_step) if field.shift_step else (0,)

    @classmethod
    def of(cls, field) -> NumericAnalysis | None:
        """The analysis for a ``NUMERIC`` field, else None."""
        return cls(field) if type(field) is NUMERIC else None

    def __call__(self, value) -> list[tuple[bytes, int, tuple]]:
        field = self.field
        if type(value) not in (int, float):
            return whoosh_analysis(field, value)
        sortable = to_sortable(field.numtype, field.bits, field.signed,
                               field.prepare_number(value))
        return [(field.sortable_to_bytes(sortable, shift), 1, self.POSTING)
                for shift in self.shifts]


class SegmentBuilder:
    """One new segment of a whoosh index, written from documents added in order.

    ``add(document)`` as ``IndexWriter.add_document(**document)`` would (documents here
    have no boosts); ``finish()`` writes the segment and returns it with its kept
    postings. The segment is not in the index until a TOC lists it
    (``TextIndex.rebuild_parts``).
    """

    def __init__(self, ix):
        self.storage = ix.storage
        self.schema = ix.schema
        codec = default_codec()
        self.segment = codec.new_segment(self.storage, ix.indexname)
        self.perdoc = codec.per_document_writer(self.storage, self.segment)
        self.fieldwriter = codec.field_writer(self.storage, self.segment)
        self.docnum = 0
        self.fields = {}
        for name, field in self.schema.items():
            if field.vector or field.separate_spelling():
                raise ValueError(f"field {name!r}: term vectors and separate spelling "
                                 "words are not written by SegmentBuilder")
            if field.indexed:
                self.fields[name] = field
        #: Per field: term bytes -> (document numbers, (weight, value bytes) per posting).
        self.postings: dict[str, dict[bytes, tuple[array, list]]] = {
            name: {} for name in self.fields}
        #: Per scorable field: each document's length (whoosh's writer reads back the length
        #: it stored, rounded to a byte's precision, for the statistics of each block of
        #: postings; those statistics are stored rounded the same way, so they come out the
        #: same from the exact length).
        self.lengths: dict[str, array] = {name: array("i") for name, field in self.fields.items()
                                          if field.scorable}
        self.pids = array("q")
        self._names = frozenset(self.schema.names())
        #: Per field in name order (as whoosh's writer takes them): what ``add`` needs.
        self._plan = [(name, field, self.postings.get(name), self.lengths.get(name),
                       field.stored, field.column_type)
                      for name, field in sorted(self.schema.items())]
        self._memo: dict[str, dict] = {name: {} for name in self.fields}
        self._analyse = {name: NumericAnalysis.of(field) or TokenwiseAnalysis.of(field)
                         or functools.partial(whoosh_analysis, field)
                         for name, field in self.fields.items()}

    def _analysed(self, name: str, value) -> list[tuple[bytes, int, tuple]]:
        """``whoosh_analysis`` of a field value (remembered per distinct value, but for
        mostly unique fields)."""
        if name in UNIQUE_VALUED or type(value) is not str:
            return self._analyse[name](value)
        memo = self._memo[name]
        found = memo.get(value)
        if found is None:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            found = memo[value] = self._analyse[name](value)
        return found

    def add(self, document: dict) -> None:
        """Add one document (field name -> value, as for ``add_document``)."""
        if not self._names.issuperset(document):
            unknown = sorted(set(document) - self._names)
            raise ValueError(f"SegmentBuilder takes fields of the schema only, not {unknown}")
        perdoc = self.perdoc
        docnum = self.docnum
        perdoc.start_doc(docnum)
        for name, field, postings, lengths, stored, column in self._plan:
            value = document.get(name)
            if value is None:
                if lengths is not None:
                    lengths.append(0)
                continue
            length = 0
            if postings is not None:
                for term, freq, posting in self._analysed(name, value):
                    length += freq
                    found = postings.get(term)
                    if found is None:
                        postings[term] = (array("i", (docnum,)), [posting])
                    else:
                        found[0].append(docnum)
                        found[1].append(posting)
                if lengths is None:  # not scorable: no length kept
                    length = 0
                else:
                    lengths.append(length)
            perdoc.add_field(name, field, value if stored else None, length)
            if column:
                perdoc.add_column_value(name, column, field.to_column_value(value))
        perdoc.finish_doc()
        self.pids.append(int(document["pid"]))
        self.docnum += 1

    def finish(self) -> tuple[object, SegmentPostings] | None:
        """Write the postings, close the segment's files (one compound file, as whoosh's
        writer leaves it) and return ``(segment, kept postings)``; None (and no files)
        when no document was added."""
        self.perdoc.close()
        writer = self.fieldwriter
        if not self.docnum:
            writer.close()
            for filename in self.segment.list_files(self.storage):
                self.storage.delete_file(filename)
            return None
        for name in sorted(self.postings):
            terms = self.postings[name]
            if not terms:
                continue
            field = self.fields[name]
            lengths = self.lengths.get(name)
            writer.start_field(name, field)
            for term in sorted(terms):
                docnums, values = terms[term]
                writer.start_term(term)
                add = writer.add
                if lengths is None:
                    for docnum, (weight, vbytes) in zip(docnums, values, strict=True):
                        add(docnum, weight, vbytes, 0)
                else:
                    for docnum, (weight, vbytes) in zip(docnums, values, strict=True):
                        add(docnum, weight, vbytes, lengths[docnum])
                writer.finish_term()
            writer.finish_field()
        writer.close()
        segment = self.segment
        segment.set_doc_count(self.docnum)
        if segment.should_assemble():
            segment.create_compound_file(self.storage)
        return segment, self.kept_postings()

    def kept_postings(self) -> SegmentPostings:
        """The postings of ``postings.FIELDS`` as ``SegmentPostings.build`` decodes them."""
        fields = {}
        for name in FIELDS:
            terms = self.postings.get(name, {})
            ordered = sorted(terms)
            lengths = [len(terms[term][0]) for term in ordered]
            starts = np.zeros(len(ordered) + 1, dtype=np.int64)
            np.cumsum(lengths, out=starts[1:])
            docs = (np.concatenate([np.frombuffer(terms[term][0], dtype=np.int32)
                                    for term in ordered]) if ordered
                    else np.empty(0, dtype=np.int32))
            decode = self.schema[name].from_bytes
            fields[name] = FieldPostings(np.array([decode(term) for term in ordered], dtype=str),
                                         starts, docs.astype(np.int32))
        return SegmentPostings(np.frombuffer(self.pids, dtype=np.int64).copy(), fields)



def _build_part(ix, part: Callable[[], Iterable[dict]],
                tell: Callable[[int], None] | None = None) -> tuple[object, SegmentPostings] | None:
    """Build one segment of ``ix`` from the documents of ``part()``, telling ``tell(n)``
    of documents added as they are; the kept postings are saved beside the segment."""
    builder = SegmentBuilder(ix)
    added = 0
    for document in part():
        builder.add(document)
        added += 1
        if tell is not None and added == PROGRESS_EVERY:
            tell(added)
            added = 0
    if tell is not None and added:
        tell(added)
    built = builder.finish()
    if built is not None:
        segment, kept = built
        # (after the compound file is assembled: it would take in any file of the segment's)
        kept.save(postings_path(ix.storage.folder, segment.segment_id()))
    return built


def _part_process(ix, index: int, part, counter, results) -> None:
    """A forked process's work: one part's segment, put on ``results`` (or the error)."""
    parent = os.getppid()

    def tell(added: int) -> None:
        if os.getppid() != parent:  # the rebuild was killed: its index will never go live
            raise SystemExit("the rebuilding process is gone")
        with counter.get_lock():
            counter.value += added

    try:
        built = _build_part(ix, part, tell)
        results.put((index, None if built is None else built[0], None))
    except BaseException:
        results.put((index, None, traceback.format_exc()))


def build_segments(ix, parts: Sequence[Callable[[], Iterable[dict]]],
                   progress: Callable[[int], None] | None = None,
                   meanwhile: Callable[[], None] | None = None) -> list:
    """The segments of ``ix`` built from each of ``parts`` (callables giving documents),
    in the order of ``parts``, empty ones left out; not yet committed.

    Several parts are built at the same time, each in a process of its own forked from
    this one (so a part reads its own documents: nothing is pickled but the finished
    segment's description). ``meanwhile()`` runs here while they work; ``progress(n)``
    is told of documents added, as they are.
    """
    if len(parts) <= 1:
        if meanwhile:
            meanwhile()
        built = _build_part(ix, parts[0], progress) if parts else None
        return [] if built is None else [built[0]]
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    results = context.Queue()
    processes = [context.Process(target=_part_process, args=(ix, index, part, counter, results),
                                 name=f"search-rebuild-{index}", daemon=True)
                 for index, part in enumerate(parts)]
    for process in processes:
        process.start()
    reported = 0

    def report() -> None:
        nonlocal reported
        if progress:
            done = counter.value
            if done > reported:
                progress(done - reported)
                reported = done

    segments: dict[int, object] = {}
    try:
        if meanwhile:
            meanwhile()
        while len(segments) < len(parts):
            report()
            try:
                index, segment, error = results.get(timeout=0.2)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in processes):
                    raise RuntimeError("a rebuilding process died") from None
                continue
            if error is not None:
                raise RuntimeError(f"rebuilding part {index} failed:\n{error}")
            segments[index] = segment
        report()
    except BaseException:
        for process in processes:
            if process.is_alive():
                process.terminate()
        raise
    finally:
        for process in processes:
            process.join()
    return [segments[index] for index in range(len(parts)) if segments[index] is not None]
