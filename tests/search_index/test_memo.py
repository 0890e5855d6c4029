"""The search's short cuts give exactly the results of the straightforward way: a memo of
filter masks shared by a search's questions, and free-text matches filtered alone."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest

from referral.schemas.search import SearchQuerySchema
from referral.search import build_criteria, relaxations_for, understand_query
from referral.search_sync import VOCABULARIES, table_record
from referral.vocab import AGE_GROUPS, CONCERNS
from search_index import searcher
from search_index.searcher import SearchMemo, count_matches, search, structured_mask
from search_index.table import ProviderTable
from tests.conftest import generated_directory

COMMON = ("CBT", "DBT", "EMDR", "ACT", "IPT", "ERP", "CPT", "MBCT")


@pytest.fixture(scope="module")
def corpus():
    listings = generated_directory(4000, seed=11)
    table = ProviderTable(VOCABULARIES)
    table.upsert(table_record({**item, "clinic_id": item["clinic"]["id"]}) for item in listings)
    return listings, table


def some_filters(rng, listings) -> dict:
    """Search parameters with a random half of the benchmark's "every filter at once"
    (some find nothing, some a few hundred listings)."""
    wanted = {
        "zip": rng.choice(listings)["zip"], "radius_miles": rng.choice((10, 25, 50, 100)),
        "modality": rng.sample(COMMON, 2), "concern": [rng.choice(CONCERNS)],
        "insurance": [rng.choice(("aetna", "bcbs", "cigna", "medicaid"))],
        "language": rng.choice(("en", "es")), "age_group": rng.choice(AGE_GROUPS),
        "gender": rng.choice(("female", "male")), "role": "therapist",
        "max_fee": rng.choice((150, 200, 250)),
        "sliding_scale": rng.choice(("true", "false")),
        "accepts_coordinated_care": "true",
    }
    kept = {key: value for key, value in wanted.items()
            if key in ("zip", "radius_miles") or rng.random() < 0.5}
    kept.update(rng.choice(({}, {"telehealth": "false"}, {"telehealth": "true"},
                            {"telehealth": "true", "in_person": "false"})))
    return SearchQuerySchema().load(kept)


def criteria_of(params):
    now = dt.datetime.now(dt.UTC)
    return build_criteria(params, understand_query(None), now, 90, 365)[0]


def same_hits(fast, plain):
    assert fast.total == plain.total
    assert fast.ids.tolist() == plain.ids.tolist()
    assert fast.rows.tolist() == plain.rows.tolist()
    np.testing.assert_array_equal(fast.distances, plain.distances)
    assert fast.stale.tolist() == plain.stale.tolist()
    assert fast.facets == plain.facets


def test_counts_and_pages_with_one_memo_per_search_equal_those_without(corpus):
    listings, table = corpus
    rng = random.Random(4)
    questions = found = 0
    for _ in range(40):
        params = some_filters(rng, listings)
        memo = SearchMemo()
        asked = [params] + [option["params"]
                            for option in relaxations_for(params, understand_query(None))]
        for changed in asked:
            c = criteria_of(changed)
            expected = int(np.count_nonzero(structured_mask(table, c)[0]))
            assert count_matches(table, c, memo) == count_matches(table, c) == expected
            same_hits(search(table, c, with_facets=True, memo=memo), search(table, c))
            questions += 1
            found += expected > 0
    assert questions > 300 and found > questions / 3


def test_free_text_matches_are_shared_and_still_narrow(corpus):
    listings, table = corpus
    rng = random.Random(8)
    memo = SearchMemo()
    c = criteria_of(SearchQuerySchema().load({"state": "CA"}))
    for _ in range(30):
        ids = np.array(sorted(rng.sample([item["id"] for item in listings], 300)) + [10**7])
        narrowed = criteria_of(SearchQuerySchema().load({"state": "CA"}))
        narrowed.text_ids, narrowed.text_scores = ids, np.linspace(1.0, 2.0, len(ids))
        assert count_matches(table, narrowed, memo) == count_matches(table, narrowed)
        same_hits(search(table, narrowed, memo=memo), search(table, narrowed))
    assert count_matches(table, c, memo) == count_matches(table, c)


def test_a_memo_forgets_masks_when_the_table_changes(corpus):
    listings, _ = corpus
    table = ProviderTable(VOCABULARIES)
    table.upsert(table_record({**item, "clinic_id": item["clinic"]["id"]})
                 for item in listings[:500])
    c = criteria_of(SearchQuerySchema().load({"state": "NY", "language": "es"}))
    memo = SearchMemo()
    before = count_matches(table, c, memo)
    spanish = [item for item in listings[:500] if "es" in item["languages"]]
    table.upsert(table_record({**item, "clinic_id": item["clinic"]["id"], "languages": ["en"]})
                 for item in spanish)  # rows change in place: same size, same position
    assert count_matches(table, c, memo) == count_matches(table, c) < before or before == 0
    table.remove([item["id"] for item in listings[:500]])
    assert count_matches(table, c, memo) == 0


def test_text_matches_filtered_alone_give_the_whole_tables_results(corpus, monkeypatch):
    listings, table = corpus
    rng = random.Random(12)
    ids = [item["id"] for item in listings]
    compared = found = 0
    for _ in range(60):
        where = rng.choice(listings)
        c = criteria_of(SearchQuerySchema().load(rng.choice((
            {}, {"state": where["state"]}, {"zip": where["zip"], "radius_miles": 250},
            {"zip": where["zip"], "radius_miles": 100, "max_fee": 250, "language": "en"},
            {"role": "therapist", "modality": ["CBT"]}, some_filters(rng, listings)))))
        c.sort = rng.choice(("relevance", "relevance", "distance", "fee", "availability"))
        c.offset = rng.choice((0, 0, 20))
        chosen = rng.sample(ids, rng.choice((5, 100, 1000)))
        chosen += [10**7] + chosen[:3]  # an id not in the table, ids twice (other scores)
        c.text_ids = np.array(chosen, dtype=np.int64)
        c.text_scores = np.array([rng.choice((0.5, 1.0, 2.5)) for _ in chosen])
        answers = {}
        for share in (0.0, 1.0):  # never, always
            monkeypatch.setattr(searcher, "TEXT_CANDIDATE_SHARE", share)
            answers[share] = (search(table, c), count_matches(table, c),
                              count_matches(table, c, SearchMemo()))
        same_hits(answers[1.0][0], answers[0.0][0])
        assert answers[1.0][0].text_scores.tolist() == answers[0.0][0].text_scores.tolist()
        assert answers[1.0][1:] == answers[0.0][1:] == (answers[0.0][0].total,) * 2
        compared += 1
        found += answers[0.0][0].total > 0
    assert compared == 60 and found > 20


def test_one_memo_keeps_apart_what_differs_between_questions(corpus):
    """Each remembered mask is keyed by everything it depends on: one memo asked about
    other places, states, radii and filters still answers as if new."""
    listings, table = corpus
    rng = random.Random(21)
    memo = SearchMemo()
    for _ in range(120):
        where = rng.choice(listings)
        params = rng.choice((
            {"state": where["state"]}, {"state": where["state"], "telehealth": "true"},
            {"zip": where["zip"], "radius_miles": rng.choice((10, 25, 100))},
            {"zip": where["zip"], "in_person": "true"}, some_filters(rng, listings)))
        c = criteria_of(SearchQuerySchema().load(params))
        assert count_matches(table, c, memo) == count_matches(table, c)
        same_hits(search(table, c, memo=memo), search(table, c))
