"""The fast full rebuild (``search_index.bulk``, ``TextIndex.rebuild_parts``) against the
straightforward one (whoosh's own writer, ``TextIndex.rebuild``): the same terms with the
same postings (documents, weights, positions) in every field, the same stored fields,
field lengths and columns, the same kept postings, and the same search answers."""

from __future__ import annotations

import datetime as dt
import os
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh.fields import NUMERIC

from search_index.bulk import (
    NumericAnalysis,
    SegmentBuilder,
    TokenwiseAnalysis,
    whoosh_analysis,
)
from search_index.postings import FIELDS, SegmentPostings, postings_path
from search_index.text import SCHEMA, TextIndex
from seeds.generator import generate_clinics, generate_provider

from .test_postings import typo

NOW = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)

#: Texts that exercise the analysers' corners: stop words first and last, one-letter
#: words, accents, case that changes length when lowered, numbers, apostrophes, hyphens,
#: repeated words, underscores, empty values.
ODD_TEXTS = [
    "The and of a", "a I to Grief grief GRIEF", "Zoë O'Brien-Núñez", "İstanbul İzmir",
    "3.14 and 2024 v1.2.3", "under_score *wild* card", "", "   ", "ß straße STRASSE",
    "works with adults and adolescents on anxiety, depression, grief. Approaches: CBT.",
    "the the the therapy therapies therapist", "Ωmega café naïve résumé", "x",
]


def corpus(count: int, seed: int = 5) -> list[dict]:
    """Documents as ``text_documents`` makes them: generated listings, and odd ones."""
    clinics = generate_clinics(max(3, count // 40), seed)
    documents = []
    for index in range(count):
        _, values = generate_provider(seed, index, clinics, NOW)
        clinic = clinics[index % len(clinics)].name
        documents.append({"pid": 3 * index + 1,
                          "name": f"{values['first_name']} {values['last_name']}",
                          "credentials": values["credentials"].replace(",", " "),
                          "clinic": clinic, "bio": values["bio"], "version": f"v{index}"})
    rng = random.Random(seed)
    for number, text in enumerate(ODD_TEXTS):
        documents.append({"pid": 3 * count + 2 * number + 1, "name": text or "Solo",
                          "credentials": rng.choice(["", "LCSW, MD", "psyd"]),
                          "clinic": text, "bio": " ".join([text] * rng.randint(1, 3)),
                          "version": ""})
    return documents


def contents(index: TextIndex) -> dict:
    """Everything a search can read of an index, keyed by pid rather than document number."""
    reader = index.searcher().reader()
    pid_of = {docnum: fields["pid"] for docnum, fields in reader.iter_docs()}
    found = {"stored": {pid_of[docnum]: fields for docnum, fields in reader.iter_docs()},
             "doc_count": reader.doc_count()}
    for field in SCHEMA.names():
        if not SCHEMA[field].indexed:
            continue
        terms = {}
        for term in reader.lexicon(field):
            matcher = reader.postings(field, term)
            postings = []
            while matcher.is_active():
                postings.append((pid_of[matcher.id()], matcher.weight(), matcher.value()))
                matcher.next()
            info = reader.term_info(field, term)  # (lengths and weights as the codec got them)
            terms[term] = (sorted(postings), info.weight(), info.doc_frequency(),
                           info.min_length(), info.max_length(), info.max_weight())
        found[field] = terms
        found[field + " lengths"] = {pid_of[docnum]: reader.doc_field_length(docnum, field)
                                     for docnum in pid_of}
        found[field + " total"] = reader.field_length(field)
        if SCHEMA[field].scorable:
            found[field + " extremes"] = (reader.min_field_length(field),
                                          reader.max_field_length(field))
    column = reader.column_reader("pid")
    found["pid column"] = sorted(column[docnum] for docnum in pid_of)
    return found


def blocks(index: TextIndex) -> dict:
    """Per term of a one-segment index, each posting with the statistics of its block of
    postings (what the codec wrote as it was given the postings and their lengths)."""
    (leaf, _), = index.searcher().reader().leaf_readers()
    found = {}
    for field in SCHEMA.names():
        if not SCHEMA[field].indexed:
            continue
        for term in leaf.lexicon(field):
            matcher, postings = leaf.postings(field, term), []
            while matcher.is_active():
                postings.append((matcher.id(), matcher.block_min_length(),
                                 matcher.block_max_length(), matcher.block_max_weight(),
                                 matcher.block_max_id()))
                matcher.next()
            found[field, term] = postings
    return found


def split(documents: list[dict], parts: int) -> list:
    """``parts`` callables giving consecutive shares of ``documents``."""
    size = -(-len(documents) // parts)
    return [lambda start=start: iter(documents[start:start + size])
            for start in range(0, len(documents), size)]


@pytest.fixture(scope="module")
def documents():
    return corpus(1500)


@pytest.fixture(scope="module")
def straightforward(tmp_path_factory, documents):
    index = TextIndex(str(tmp_path_factory.mktemp("plain")))
    index.rebuild(iter(documents), 7)
    return index


@pytest.mark.parametrize("parts", [1, 3])
def test_the_fast_rebuild_writes_what_whooshs_writer_writes(tmp_path, documents,
                                                            straightforward, parts):
    index = TextIndex(str(tmp_path))
    index.try_apply([{"pid": 1, "name": "Old Index", "clinic": "", "bio": "",
                      "credentials": "", "version": ""}], [], 1)
    told = []
    name, count = index.rebuild_parts(split(documents, parts), 7, progress=told.append)
    assert name == index.current_name() and index.position() == 7
    assert count == sum(told) == len(documents)
    leaves = list(index.searcher().reader().leaf_readers())
    assert len(leaves) == parts
    assert contents(index) == contents(straightforward)
    if parts == 1:  # the same documents in the same order: the same blocks
        assert blocks(index) == blocks(straightforward)
    # The kept postings written with the segments are those decoded from them.
    for leaf, _ in leaves:
        kept = SegmentPostings.load(postings_path(str(tmp_path), leaf.segment().segment_id()))
        decoded = SegmentPostings.build(leaf)
        assert np.array_equal(kept.pids, decoded.pids)
        for field in FIELDS:
            for part in ("terms", "starts", "docs"):
                mine, whooshs = (getattr(kept.fields[field], part),
                                 getattr(decoded.fields[field], part))
                assert mine.dtype == whooshs.dtype and np.array_equal(mine, whooshs), field
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_the_fast_rebuild_answers_searches_as_the_straightforward_one(tmp_path, documents,
                                                                      straightforward):
    index = TextIndex(str(tmp_path))
    index.rebuild_parts(split(documents, 2), 7)
    rng = random.Random(3)
    queries = ["grief", "anxiety depression", "adolescents", "cbt", "lcsw", "the",
               "obrien", "zoe", "nunez", "istanbul", "3.14", "strasse", "therapies"]
    for document in rng.sample(documents, 150):
        first, *rest = document["name"].split() or ["solo"]
        queries += [document["name"], first, typo(rng, rest[-1] if rest else first),
                    document["clinic"], " ".join(document["bio"].split()[3:6])]
    for text in queries:
        fast, plain = index.search(text), straightforward.search(text)
        assert fast[0].tolist() == plain[0].tolist(), text
        assert fast[1].tolist() == plain[1].tolist(), text
        assert index.suggest(text) == straightforward.suggest(text), text


def test_an_empty_part_makes_no_segment_and_no_files(tmp_path, documents):
    index = TextIndex(str(tmp_path))
    name, count = index.rebuild_parts([lambda: iter(()), lambda: iter(documents[:10])], 3)
    assert count == 10 and len(list(index.searcher().reader().leaf_readers())) == 1
    name, count = index.rebuild_parts([lambda: iter(())], 4)
    assert count == 0 and index.search("grief")[0].tolist() == []
    assert set(os.listdir(tmp_path)) == {"CURRENT", f"_{name}_1.toc", f"{name}.position",
                                         f"{name}_WRITELOCK"}


def test_a_failing_part_leaves_the_old_index_serving(tmp_path, documents):
    index = TextIndex(str(tmp_path))
    index.rebuild_parts(split(documents[:20], 1), 2)
    before = index.current_name()

    def broken():
        yield documents[0]
        raise OSError("the database went away")

    with pytest.raises(RuntimeError, match="the database went away"):
        index.rebuild_parts([lambda: iter(documents[20:40]), broken], 3)
    assert index.current_name() == before and index.position() == 2
    assert index.search(documents[5]["name"])[0].tolist()
    index.rebuild_parts(split(documents[:5], 1), 4)  # the half-built one is cleaned up
    assert not [f for f in os.listdir(tmp_path) if before in f]


def test_the_builder_refuses_what_it_does_not_write(tmp_path):
    from whoosh import index as whoosh_index
    from whoosh.fields import TEXT, Schema

    ix = whoosh_index.create_in(str(tmp_path), Schema(body=TEXT(vector=True)))
    with pytest.raises(ValueError, match="vectors"):
        SegmentBuilder(ix)


WORDS = st.sampled_from(["the", "and", "a", "I", "Grief", "grief", "GRIEFS", "therapy",
                         "therapies", "Zoë", "Núñez", "İzmir", "straße", "3.14", "v1.2",
                         "under_score", "*", "O'Brien", "x", "to", "be", "is"])
TEXTS = st.one_of(st.text(), st.lists(st.one_of(WORDS, st.text(max_size=4)), max_size=30).map(
    lambda parts: " ".join(parts)))


@given(TEXTS)
@settings(max_examples=400, deadline=None)
def test_tokenwise_analysis_is_whooshs_analysis(text):
    for name in ("name", "clinic", "bio"):
        field = SCHEMA[name]
        analysis = TokenwiseAnalysis.of(field)
        assert analysis(text) == whoosh_analysis(field, text), name
        assert analysis(text) == whoosh_analysis(field, text), name  # words remembered


def test_tokenwise_analysis_is_for_positions_with_tokenwise_filters_only():
    from whoosh.analysis import NgramFilter, RegexTokenizer
    from whoosh.fields import TEXT

    assert TokenwiseAnalysis.of(SCHEMA["credentials"]) is None  # keywords: frequencies only
    assert TokenwiseAnalysis.of(TEXT(phrase=False)) is None
    assert TokenwiseAnalysis.of(TEXT(analyzer=RegexTokenizer() | NgramFilter(2))) is None
    assert TokenwiseAnalysis.of(TEXT(analyzer=RegexTokenizer(gaps=True))) is None
    assert TokenwiseAnalysis.of(TEXT()) is not None


NUMBERS = [NUMERIC(int, bits=64, signed=False), NUMERIC(int), NUMERIC(int, bits=32),
           NUMERIC(float), NUMERIC(int, shift_step=0), NUMERIC(int, decimal_places=2)]


@given(st.integers(min_value=0, max_value=2**31 - 1), st.floats(allow_nan=False, width=32))
@settings(max_examples=200, deadline=None)
def test_numeric_analysis_is_whooshs_analysis(whole, fraction):
    assert NumericAnalysis.of(SCHEMA["pid"]) is not None
    for field in [SCHEMA["pid"], *NUMBERS]:
        for value in (whole, -whole, fraction):
            try:
                expected = whoosh_analysis(field, value)
            except (ValueError, OverflowError) as error:
                with pytest.raises(type(error)):
                    NumericAnalysis.of(field)(value)
                continue
            assert NumericAnalysis.of(field)(value) == expected
