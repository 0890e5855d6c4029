"""The page of a ranking: the few smallest keys picked from many, as a full sort would."""

import numpy as np
import pytest

from search_index.searcher import ORDER_SAMPLE, smallest


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
