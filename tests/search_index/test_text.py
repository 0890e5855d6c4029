"""The whoosh text index: applying changes, positions, locks, rebuilds, fuzzy search."""

import os

from search_index.text import TextIndex, edit_distance, words


def doc(pid, name, clinic="Harbor Counseling", bio="", credentials="LCSW"):
    return {"pid": pid, "name": name, "clinic": clinic, "bio": bio,
            "credentials": credentials, "version": f"v{pid}"}


def pids(index, text):
    return sorted(index.search(text)[0].tolist())


def test_apply_update_delete_and_position(tmp_path):
    index = TextIndex(str(tmp_path))
    assert index.position() == 0
    assert index.try_apply([doc(1, "Maya Okafor"), doc(2, "Sean Murphy")], [], 5)
    assert index.position() == 5
    assert pids(index, "okafor") == [1]
    assert index.try_apply([doc(1, "Maya Okafor-Reyes")], [2], 6)
    assert pids(index, "murphy") == [] and pids(index, "reyes") == [1]
    assert index.try_apply([doc(3, "Old News")], [], 6) and pids(index, "news") == []
    assert index.stored_versions() == {1: "v1"}


def test_typos_names_clinics_and_bio_words(tmp_path):
    index = TextIndex(str(tmp_path))
    index.try_apply([doc(1, "Maya Okafor", bio="Specializes in perinatal care"),
                     doc(2, "Rachel Nakamura", clinic="Lakeside Wellness"),
                     doc(3, "Maya Lin")], [], 1)
    assert pids(index, "okafr") == [1]
    assert pids(index, "maya") == [1, 3]
    assert pids(index, "maya okafor") == [1]
    assert pids(index, "nakamoora") == [2]
    assert pids(index, "lakeside") == [2]
    assert pids(index, "perinatal") == [1]
    assert index.suggest("okafr zzzz") == "okafor zzzz"
    assert index.suggest("maya") is None


def test_a_busy_writer_makes_try_apply_say_false_without_error(tmp_path):
    index = TextIndex(str(tmp_path))
    name = index.ensure()
    holder = index._open(name).writer()
    try:
        assert index.try_apply([doc(1, "Maya Okafor")], [], 1) is False
    finally:
        holder.cancel()
    assert index.try_apply([doc(1, "Maya Okafor")], [], 1) is True


def test_rebuild_switches_and_cleans_up(tmp_path):
    index = TextIndex(str(tmp_path))
    index.try_apply([doc(1, "Maya Okafor")], [], 1)
    first = index.current_name()
    index.rebuild([doc(2, "Sean Murphy"), doc(3, "Ana Cruz")], 9)
    assert index.current_name() != first and index.position() == 9
    assert pids(index, "murphy") == [2] and pids(index, "okafor") == []
    assert not any(first in name for name in os.listdir(tmp_path))


def test_helpers():
    assert words("Mary-Ann O'Brien") == ["mary", "ann", "o", "brien"]
    assert edit_distance("okafr", "okafor") == 1 and edit_distance("okafr", "omar") == 2


def test_an_empty_index_answers_text_searches_and_suggestions(tmp_path):
    from search_index.text import TextIndex

    index = TextIndex(str(tmp_path / "empty"))
    index.ensure()
    ids, scores = index.search("zzqqzz")
    assert len(ids) == 0 and len(scores) == 0
    assert index.suggest("zzqqzz") is None


def test_remembered_expansions_give_whooshs_own_fuzzy_results(tmp_path):
    import random

    from whoosh import query

    from search_index import text as text_module

    rng = random.Random(5)
    firsts = ["Maya", "Sean", "Rachel", "Tomas", "Aisha", "Priya", "Daniel", "Grace"]
    lasts = ["Okafor", "Murphy", "Nakamura", "Okafur", "Mercer", "Marcer", "Nakamora", "Lindqvist"]
    clinics = ["Harbor Counseling", "Lakeside Wellness", "Harbour Counselling", "Northside"]
    index = TextIndex(str(tmp_path))
    for start in range(0, 300, 100):  # several segments
        index.try_apply([doc(pid, f"{rng.choice(firsts)} {rng.choice(lasts)}",
                             clinic=rng.choice(clinics), bio="works with grief and loss")
                         for pid in range(start + 1, start + 101)], [], start + 100)
    typed = ["okafr", "murphey", "nakamuraa", "mercr", "lindqvst", "harbr", "lakesde grief",
             "maya okafr", "lakeside loss"]
    text_module._EXPANSIONS.clear()
    cold = {t: [a.tolist() for a in index.search(t)] for t in typed}
    assert text_module._EXPANSIONS  # the fuzzy words were remembered
    warm = {t: [a.tolist() for a in index.search(t)] for t in typed}
    assert warm == cold
    assert [t for t in typed if not cold[t][0]] == []
    searcher = index.searcher()
    for word in ("okafr", "harbr", "nakamuraa"):  # the subclass expands exactly as whoosh
        for field in ("name", "clinic"):
            plain = searcher.search(query.FuzzyTerm(field, word, maxdist=2, prefixlength=1),
                                    limit=None)
            cached = searcher.search(text_module.CachedFuzzyTerm(field, word, maxdist=2,
                                                                 prefixlength=1), limit=None)
            assert [(h.docnum, h.score) for h in plain] == [(h.docnum, h.score) for h in cached]
