"""Kept postings (``search_index.postings``) against whoosh's own: the same documents, the
same near terms, and name searches through them equal to searches reading whoosh."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from whoosh.matching.wrappers import FilterMatcher

from search_index.postings import FIELDS, SUFFIX, SegmentPostings
from search_index.text import TextIndex, terms_within
from seeds.generator import FIRST_NAMES, LAST_NAMES

CLINIC_WORDS = ["Harbor", "Harbour", "Counseling", "Counselling", "Lakeside", "Wellness",
                "Mindful", "Path", "Behavioral", "Health", "Psychiatry", "Associates"]
CREDENTIALS = ["LCSW", "LICSW", "LMFT", "MD", "DO", "PsyD", "PhD", "PMHNP-BC"]


def typo(rng: random.Random, word: str) -> str:
    """One or two random edits (drop, double, swap, replace a letter)."""
    for _ in range(rng.choice((1, 1, 2))):
        if len(word) < 2:
            break
        at = rng.randrange(len(word))
        kind = rng.randrange(4)
        if kind == 0:
            word = word[:at] + word[at + 1:]
        elif kind == 1:
            word = word[:at] + word[at] + word[at:]
        elif kind == 2 and at + 1 < len(word):
            word = word[:at] + word[at + 1] + word[at] + word[at + 2:]
        else:
            word = word[:at] + rng.choice("aeioursnt") + word[at + 1:]
    return word


def document(rng: random.Random, pid: int) -> dict:
    last = rng.choice(LAST_NAMES)
    clinic = " ".join(rng.sample(CLINIC_WORDS, 2) + [rng.choice(LAST_NAMES)])
    return {"pid": pid, "name": f"{rng.choice(FIRST_NAMES)} {last}", "clinic": clinic,
            "credentials": rng.choice(CREDENTIALS), "bio": f"works with grief, {last}",
            "version": f"v{pid}"}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A text index of several segments, with updated and removed documents."""
    rng = random.Random(17)
    directory = str(tmp_path_factory.mktemp("postings"))
    index = TextIndex(directory)
    index.names = []  # (first, last) of every document written
    position = 0
    for start in range(0, 1200, 300):
        position += 1
        documents = [document(rng, pid) for pid in range(start + 1, start + 301)]
        index.names += [tuple(d["name"].split()) for d in documents]
        assert index.try_apply(documents, [], position)
    for _ in range(3):  # updates and removals leave deletions in the older segments
        position += 1
        assert index.try_apply([document(rng, rng.randint(1, 1200)) for _ in range(40)],
                               rng.sample(range(1, 1200), 25), position)
    return index


def whoosh_docnums(leaf, field, btext):
    """All documents with the term (deleted ones too), and the live ones."""
    live = np.fromiter(leaf.postings(field, btext).all_ids(), dtype=np.int64)
    matcher = leaf.postings(field, btext)
    if isinstance(matcher, FilterMatcher):
        matcher = matcher.child
        matcher.reset()
    return np.fromiter(matcher.all_ids(), dtype=np.int64), live


def test_kept_postings_are_whooshs_for_every_term_of_every_segment(index):
    leaves = [leaf for leaf, _ in index.searcher().reader().leaf_readers()]
    assert len(leaves) > 1 and any(leaf.has_deletions() for leaf in leaves)
    terms = 0
    for leaf in leaves:
        kept = SegmentPostings.load(os.path.join(
            index.directory, leaf.segment().segment_id() + SUFFIX))
        assert kept is not None  # made by the writer
        built = SegmentPostings.build(leaf)
        pids = np.fromiter(leaf.column_reader("pid"), dtype=np.int64)
        assert kept.pids.tolist() == built.pids.tolist() == pids.tolist()
        for field in FIELDS:
            lexicon = [leaf.schema[field].from_bytes(b) for b in leaf.lexicon(field)]
            assert kept.fields[field].terms.tolist() == lexicon
            deleted = leaf.deleted_docs_set
            for term in lexicon:
                every, live = whoosh_docnums(leaf, field, term)
                docnums = kept.fields[field].docnums(term).tolist()
                assert docnums == every.tolist()
                assert [d for d in docnums if d not in deleted] == live.tolist()
                terms += 1
            assert len(kept.fields[field].docnums("zzzz-not-a-term")) == 0
    assert terms > 300


def test_near_terms_are_whooshs_terms_within(index):
    rng = random.Random(3)
    leaves = index._leaves(index.searcher())
    words = [typo(rng, w.lower()) for w in rng.sample(LAST_NAMES + FIRST_NAMES, 120)]
    words += [w.lower() for w in rng.sample(CLINIC_WORDS + LAST_NAMES, 20)]
    words += ["o", "zz", "a", "ha", "harbr", "councelling", "xqzt"]
    compared = found = 0
    for leaf, postings in leaves:
        for field in ("name", "clinic"):
            for word in words:
                for distance in (1, 2):
                    for prefix in (0, 1, 2):
                        if len(word) < prefix:
                            continue
                        expected = sorted(leaf.terms_within(field, word, distance,
                                                            prefix=prefix))
                        got = postings.fields[field].within(word, distance, prefix)
                        assert got == expected, (field, word, distance, prefix)
                        compared += 1
                        found += bool(got)
    assert compared > 2000 and found > compared / 3


def test_name_searches_equal_searches_reading_whooshs_postings(index):
    straightforward = TextIndex(index.directory, kept_postings=False)
    rng = random.Random(5)
    queries = []
    for _ in range(120):
        first, last = rng.choice(index.names)
        queries += [f"{first} {last}", last, typo(rng, last), f"{first} {typo(rng, last)}",
                    typo(rng, rng.choice(CLINIC_WORDS))]
    queries += ["grief", "lcsw", "harbor psyd", "o'brien", "zzzz qqqq", "harbr grief"]
    nonempty = 0
    for text in queries:
        fast, plain = index.search(text), straightforward.search(text)
        assert fast[0].tolist() == plain[0].tolist(), text
        assert fast[1].tolist() == plain[1].tolist(), text
        nonempty += bool(len(fast[0]))
    assert nonempty > len(queries) * 0.6
    for text in queries[:200:7] + ["okafr zzzz", "harbr", "xqzt"]:
        assert index.suggest(text) == straightforward.suggest(text), text


def test_kept_postings_are_remade_when_missing_and_removed_with_their_segment(tmp_path):
    rng = random.Random(2)
    index = TextIndex(str(tmp_path))
    index.try_apply([document(rng, pid) for pid in range(1, 51)], [], 1)
    kept = [f for f in os.listdir(tmp_path) if f.endswith(SUFFIX)]
    assert len(kept) == 1
    os.unlink(tmp_path / kept[0])
    reader = TextIndex(str(tmp_path))  # another process: makes the missing file itself
    assert len(reader.search("grief")[0]) == 50
    assert [f for f in os.listdir(tmp_path) if f.endswith(SUFFIX)] == kept
    index.rebuild([document(rng, pid) for pid in range(1, 21)], 2)
    after = [f for f in os.listdir(tmp_path) if f.endswith(SUFFIX)]
    assert len(after) == 1 and after != kept  # the old index's are gone with it
    assert len(reader.search("grief")[0]) == 20


def test_module_fuzzy_cache_still_matches_whoosh(index):
    """The per-segment cache of whoosh's own expansions (used by bio-word queries)."""
    leaf = next(iter(index.searcher().reader().leaf_readers()))[0]
    assert sorted(terms_within(leaf, "name", "okafr", 1, 1)) == sorted(
        leaf.terms_within("name", "okafr", 1, prefix=1))
