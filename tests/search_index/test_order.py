"""The fast paths of ranking a page give what the straightforward computations give: the
few smallest keys picked from many as a full sort would, relevance's availability term
looked up per whole wait as computed per row, national searches without distances."""

import numpy as np
import pytest

from search_index.ranking import WEIGHTS
from search_index.searcher import ORDER_SAMPLE, Criteria, _order, relevance, search, smallest
from search_index.table import ProviderTable
from tests.search_index.test_table_and_distance import NOW, VOCAB, record


@pytest.mark.parametrize("size", [0, 1, 50, 8 * ORDER_SAMPLE - 1, 8 * ORDER_SAMPLE, 300_001])
@pytest.mark.parametrize("want", [0, 1, 20, 800, ORDER_SAMPLE // 4, ORDER_SAMPLE // 4 + 1])
@pytest.mark.parametrize("layout", ["random", "ascending", "descending", "smallest_at_end"])
def test_smallest_equals_a_full_sort(size, want, layout):
    rng = np.random.default_rng(size + want)
    key = rng.permutation(np.arange(size, dtype=np.int64) * 7 - 1000)
    if layout == "ascending":
        key.sort()
    elif layout == "descending":
        key = np.sort(key)[::-1].copy()
    elif layout == "smallest_at_end":  # the sample sees none of the smallest keys
        key = np.sort(key)[::-1].copy()
        key[-want:] = np.sort(key[-want:]) if want else key[-want:]
    want = min(want, size)
    expected = np.argsort(key, kind="stable")[:want]
    assert smallest(key, want).tolist() == expected.tolist()


def test_smallest_with_ranking_keys_of_a_large_match_set():
    """Keys like ``_order``'s: few distinct scores, stale rows last, rows breaking ties."""
    rng = np.random.default_rng(17)
    rows = np.sort(rng.choice(1_000_000, size=300_000, replace=False))
    score = rng.integers(0, 12, size=len(rows))
    stale = rng.random(len(rows)) < 0.2
    key = (stale.astype(np.int64) << 62) | ((score + (1 << 34)) << 24) | rows
    for want in (20, 100, 820):
        assert smallest(key, want).tolist() == np.argsort(key)[:want].tolist()


def test_availability_looked_up_per_wait_equals_the_formula_per_row():
    waits = [None, -5, 0, 1, 7, 29, 30, 59, 60, 61, 62, 90, 365, 10_000, 2**31 - 1]
    table = ProviderTable(VOCAB)
    table.upsert(record(pid, wait_days=wait) for pid, wait in enumerate(waits, start=1))
    rows = np.arange(len(waits))
    c = Criteria(now=NOW, modalities=("CBT",), concerns=("depression",))
    score = relevance(table, rows, np.full(len(rows), np.nan), np.zeros(len(rows)), c)
    w = WEIGHTS
    for row, wait in enumerate(waits):
        expected = 0.0 + w.modality * 1 + w.concern * 1
        if wait is not None and wait >= 0:
            expected += w.availability * min(max(1.0 - wait / w.wait_horizon_days, 0.0), 1.0)
        assert score[row] == expected, wait


@pytest.mark.parametrize("sort", ["relevance", "distance", "fee", "availability"])
def test_a_large_national_search_pages_like_a_full_sort(sort):
    """Every page of 30,000 matches (past the sampled bound's size) with no point given:
    the same listings in the same order as sorting every match by the ranking's key."""
    rng = np.random.default_rng(5)
    table = ProviderTable(VOCAB)
    table.upsert(record(pid, wait_days=int(rng.integers(-1, 90)),
                        fee_min=int(rng.integers(-1, 300)), fee_max=-1,
                        modalities=[["CBT"], ["DBT"], ["CBT", "EMDR"]][pid % 3],
                        verified_at=NOW - 86400 * float(rng.integers(0, 200)),
                        reported=bool(pid % 97 == 0))
                 for pid in range(1, 40_001))
    c = Criteria(now=NOW, modalities=("CBT", "DBT"), sort=sort, limit=1_000_000)
    everything = search(table, c, with_facets=False)
    assert everything.total > 8 * ORDER_SAMPLE
    assert np.isnan(everything.distances).all()
    for offset, limit in ((0, 20), (20, 20), (780, 20), (0, 1)):
        page = search(table, Criteria(now=NOW, modalities=("CBT", "DBT"), sort=sort,
                                      offset=offset, limit=limit), with_facets=False)
        assert page.total == everything.total
        assert page.ids.tolist() == everything.ids[offset:offset + limit].tolist()


def _order_as_written_first(primary, stale, rows, want):
    """The ranking key as first written (every step a new array), fully sorted."""
    primary = np.nan_to_num(primary, nan=np.inf, posinf=np.inf)
    finite_max = 1e9
    with np.errstate(over="ignore"):
        quantized = np.where(np.isinf(primary), finite_max, np.clip(
            np.round(primary * 1e4), -finite_max, finite_max)).astype(np.int64)
    key = (stale.astype(np.int64) << 62) | ((quantized + (1 << 34)) << 24) | (rows & 0xFFFFFF)
    return np.argsort(key, kind="stable")[:want]


@pytest.mark.parametrize("size", [10, 5_000, 60_000])
def test_order_keys_equal_the_first_written_ones(size):
    rng = np.random.default_rng(size)
    primary = rng.normal(0, 3, size).round(rng.integers(0, 6))
    specials = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e5 + 0.00004, -0.00005, 0.0]
    primary[rng.integers(0, size, size // 5)] = rng.choice(specials, size // 5)
    stale = rng.random(size) < 0.3
    rows = np.sort(rng.choice(1_000_000, size, replace=False))
    for want in (1, 20, size):
        assert (_order(primary.copy(), stale, rows, want).tolist()
                == _order_as_written_first(primary, stale, rows, want).tolist())
    assert (_order(primary.copy(), np.zeros(size, bool), rows, 20).tolist()
            == _order_as_written_first(primary, np.zeros(size, bool), rows, 20).tolist())


def test_relevance_equals_the_sum_of_its_terms_per_row():
    """Every term of ``relevance`` (text, modality, concern, nearness, availability), the
    modality and concern added only where they apply, equals the sum written per row."""
    rng = np.random.default_rng(3)
    table = ProviderTable(VOCAB)
    table.upsert(record(pid, modalities=[["CBT"], ["DBT"], ["EMDR"], []][pid % 4],
                        concerns=[["depression"], ["ocd"], []][pid % 3],
                        wait_days=int(rng.integers(-1, 80)))
                 for pid in range(1, 501))
    rows = np.arange(len(table))
    distances = rng.uniform(0, 40, len(rows))
    distances[::7] = np.nan
    text = rng.uniform(0, 5, len(rows))
    c = Criteria(now=NOW, modalities=("CBT",), suited_modalities=("DBT",),
                 concerns=("depression",), point=(42.0, -71.0), radius_miles=30.0,
                 text_ids=np.arange(1, 501), text_scores=text)
    score = relevance(table, rows, distances, text, c)
    w = WEIGHTS
    for row in rows:
        expected = 0.0 + w.text * text[row] / text.max()
        if table.column("modalities")[row] & 0b011:
            expected += w.modality
        if table.column("concerns")[row] & 0b01:
            expected += w.concern
        near = 1.0 - distances[row] / 30.0
        expected += w.nearness * (0.0 if np.isnan(near) else min(max(near, 0.0), 1.0))
        wait = table.column("wait_days")[row]
        if wait >= 0:
            expected += w.availability * min(max(1.0 - wait / w.wait_horizon_days, 0.0), 1.0)
        assert score[row] == expected, row
