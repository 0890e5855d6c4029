"""The phrase table read case by case: real-world queries (tests/data/queries.csv) and
how each must be understood; and the table itself (referral/data/phrases.csv) is sound."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from referral.search import FILLER, PHRASES, QUERY_FIELDS, read_phrase_file, understand_query
from referral.vocab import VOCABULARIES

QUERIES = Path(__file__).parent / "data" / "queries.csv"


def _cases():
    with open(QUERIES, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    return [pytest.param(row["query"], row["terms"], row["words"], id=row["query"])
            for row in rows]


CASES = _cases()


def test_the_query_set_is_large_enough():
    assert len(CASES) >= 150


@pytest.mark.parametrize("query, terms, words", CASES)
def test_each_query_is_understood_as_expected(query, terms, words):
    understood = understand_query(query)
    found = {(name, value) for name, values in understood.terms.items() for value in values}
    assert found == {tuple(term.split("=", 1)) for term in terms.split(";") if term}
    assert understood.text_words == words.split()


def test_every_phrase_names_a_known_vocabulary_value():
    for phrase, name, value in read_phrase_file():
        if name == FILLER:
            assert value == "", phrase
        else:
            assert name in QUERY_FIELDS, phrase
            assert VOCABULARIES[name].lookup(value) is not None, (phrase, value)
    assert PHRASES["spanishspeaking"] == (("language", "es"),)
